"""The proof of our own mail: Message-IDs and VERP return paths that only we can make, so that a
bounce or complaint quoting one proves that we mailed that subscriber.

Contract:
- `seal(settings, kind, key, public_id)`: 32 lowercase hex digits. The first 8 name what was sent
  to whom (a keyed digest of the kind, the key of the email, e.g. the announcement's key or the
  queued email's id, and the subscriber's public id: deterministic, so an email re-sent after a
  crash is recognisably the same); the other 24 prove it (HMAC-SHA256 with NEWSLETTER_SECRET_KEY
  over those 8 and the public id).
- `message_id(settings, kind, key, public_id=None)`: `<seal.public_id.kind@sender-domain>`.
  Without a public id (an email to nobody on the list) `<32 hex digits.kind@sender-domain>`,
  which proves nothing.
- `verp_address(settings, kind, key, public_id)`: `bounces+public_id.seal@NEWSLETTER_VERP_DOMAIN`
  (63 octets before the @, within RFC 5321's 64); `return_path(...)` is it, or "" without
  NEWSLETTER_VERP_DOMAIN (the envelope sender is then the From address).
- `proven_by_message_id(settings, text)` and `proven_by_verp(settings, address)`: the public id
  that a Message-ID or VERP address of ours names, checked by recomputing the seal (a constant
  time comparison), else None. The shape proves nothing: a Message-ID of the right form with
  another seal, or one made with another secret key, names nobody. The sender domain is not
  checked (the seal is the proof), so reports about email sent before a change of NEWSLETTER_FROM
  still count; a new secret key ends the proof of everything sent before it.
This module is the one place that writes and checks the proof.
"""

from __future__ import annotations

import hmac
import re

from newsletter.settings import Settings

VERP_PREFIX = "bounces+"
SEAL = re.compile(r"[0-9a-fA-F]{32}")
PUBLIC_ID = re.compile(r"[A-Za-z0-9_-]{8,64}")
KIND = re.compile(r"[A-Za-z0-9_-]{1,40}")


def _mac(settings: Settings, text: str) -> str:
    return hmac.digest(settings.core.secret_key.encode(), text.encode(), "sha256").hex()


def _tag(settings: Settings, what: str, public_id: str) -> str:
    return _mac(settings, f"proof\x00{what}\x00{public_id}")[:24]


def seal(settings: Settings, kind: str, key: str | int, public_id: str) -> str:
    what = _mac(settings, f"what\x00{kind}\x00{key}\x00{public_id}")[:8]
    return what + _tag(settings, what, public_id)


def message_id(settings: Settings, kind: str, key: str | int, public_id: str | None = None) -> str:
    """A deterministic Message-ID; with a public id, one that proves whom it was sent to."""
    domain = settings.mail.from_address.domain
    if public_id is None:
        return f"<{_mac(settings, f'{kind}:{key}')[:32]}.{kind}@{domain}>"
    return f"<{seal(settings, kind, key, public_id)}.{public_id}.{kind}@{domain}>"


def verp_address(settings: Settings, kind: str, key: str | int, public_id: str) -> str:
    """The return path (SMTP envelope sender) that proves whom this email was sent to; needs
    NEWSLETTER_VERP_DOMAIN, whose mail must reach the bounce mailbox."""
    domain = settings.mail.verp_domain
    if not domain:
        raise ValueError("NEWSLETTER_VERP_DOMAIN is not set: there is no VERP return path")
    return f"{VERP_PREFIX}{public_id}.{seal(settings, kind, key, public_id)}@{domain}"


def return_path(settings: Settings, kind: str, key: str | int, public_id: str) -> str:
    """The envelope sender: the VERP address with NEWSLETTER_VERP_DOMAIN, else "" (From)."""
    return verp_address(settings, kind, key, public_id) if settings.mail.verp_domain else ""


def _proven(settings: Settings, public_id: str, sealed: str) -> str | None:
    if not (PUBLIC_ID.fullmatch(public_id) and SEAL.fullmatch(sealed)):
        return None
    sealed = sealed.lower()
    expected = _tag(settings, sealed[:8], public_id)
    return public_id if hmac.compare_digest(expected, sealed[8:]) else None


def proven_by_message_id(settings: Settings, text: object) -> str | None:
    """The public id that a Message-ID of ours proves (`<seal.public_id.kind@domain>`, angle
    brackets optional, as providers quote it), or None."""
    value = str(text or "").strip()
    if len(value) > 300:
        return None
    value = value[1:-1] if value.startswith("<") and value.endswith(">") else value
    left, at, _domain = value.rpartition("@")
    parts = left.split(".")
    if not at or len(parts) != 3 or not KIND.fullmatch(parts[2]):
        return None
    return _proven(settings, parts[1], parts[0])


def proven_by_verp(settings: Settings, address: object) -> str | None:
    """The public id that a VERP return path of ours proves (`bounces+public_id.seal@domain`
    of NEWSLETTER_VERP_DOMAIN), or None (also when no VERP domain is set)."""
    ours = settings.mail.verp_domain
    if not ours:
        return None
    value = str(address or "").strip().strip("<>").strip()
    if len(value) > 300:
        return None
    local, _, domain = value.rpartition("@")
    if domain.lower() != ours.lower() or not local.lower().startswith(VERP_PREFIX):
        return None
    public_id, _, sealed = local[len(VERP_PREFIX) :].rpartition(".")
    return _proven(settings, public_id, sealed)


__all__ = [
    "message_id",
    "proven_by_message_id",
    "proven_by_verp",
    "return_path",
    "seal",
    "verp_address",
]
