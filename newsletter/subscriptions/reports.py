"""The pure parser of DSN and ARF reports: bytes in, a `Notice` out; no I/O, settings or database.

One message's bytes give its failures, the proofs it offers, or why it is no report.

Contract:
- `parse(raw) -> Notice` never raises: a message that cannot be read is junk. An abuse report
  (ARF, RFC 5965: multipart/report; report-type=feedback-report, Feedback-Type: abuse) is one
  complaint about Original-Rcpt-To (or the original's To); any other feedback type is junk. A
  delivery status notification (RFC 3464) gives one failure per recipient block whose Action is
  failed or delayed, its kind from Status (`classify`) and its reason from Diagnostic-Code; one
  without such a block is junk. Any other message is an auto-reply (RFC 3834: junk) or left to
  flufl.bounce's detectors (`all_failures`: permanent -> hard, temporary -> soft; no failed
  recipient: junk).
- What a report offers as proof that we sent the message it is about, unchecked (the secret key
  checks it: `report_feedback`): `return_paths`, the addresses it was delivered to (To,
  Delivered-To, X-Original-To, Envelope-To, X-Envelope-To; for a complaint also
  Original-Mail-From) and the original's Return-Path; `message_ids`, the original's Message-ID
  from the returned message or headers (message/rfc822, text/rfc822-headers),
  X-Original-Message-ID, In-Reply-To, or a copy quoted in the text. At most `MAX_CANDIDATES` of
  each, `MAX_FAILURES` failures; every address is read by `addresses.extract`.
- A detector of flufl.bounce that raises on a hostile message logs nothing: the notice says
  which one failed, and how (`problems`), for the caller to report in one line.
"""

from __future__ import annotations

import email
import email.errors
import email.header
import email.parser
import email.utils
import hashlib
import logging
import re
import threading
from collections.abc import Iterable
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from email.message import Message

from flufl.bounce import all_failures

from newsletter.subscriptions.addresses import extract, extract_all
from newsletter.subscriptions.feedback import Kind

MAX_FAILURES = 50  # failures read from one report; the rest are not looked at
MAX_CANDIDATES = 20  # Message-IDs and return paths offered as proof, per report
# 5.x.x that say nothing about the address itself: counted as soft bounces. Mailbox full, message
# too big, and 5.7.x (refused by policy: spam filters, our sender's reputation, DMARC).
SOFT_PERMANENT = ("5.2.2", "5.3.4", "5.7.")
ENVELOPE_HEADERS = ("To", "Delivered-To", "X-Original-To", "Envelope-To", "X-Envelope-To")
HEADER_PARTS = ("text/rfc822-headers", "message/rfc822-headers")
AUTO_REPLY_SUBJECT = re.compile(
    r"out of (the )?office|automatic reply|auto[- ]?reply|autorespon|vacation|away from|"
    r"abwesen|absence|r[ée]ponse automatique|risposta automatica|respuesta autom",
    re.IGNORECASE,
)
DAEMON = re.compile(r"mailer-daemon|postmaster|mail delivery|mail system", re.IGNORECASE)
STATUS = re.compile(r"\b([245])\.(\d{1,3})\.(\d{1,3})\b")
SMTP_REPLY = re.compile(r"\b[45]\d\d[ -]\S.*")


@dataclass(frozen=True)
class Failure:
    """One recipient's failure, as the report tells it: `addresses` are the candidates for who
    it was, the likeliest first (Original-Recipient, then Final-Recipient)."""

    kind: Kind
    addresses: tuple[str, ...]
    reason: str = ""


@dataclass(frozen=True)
class Notice:
    """One message, read: what it reports and what it offers as proof (unchecked)."""

    report_id: str  # its own Message-ID, or a digest of its bytes
    failures: tuple[Failure, ...] = ()
    original_message_id: str | None = None  # the message it reports on, when it says
    message_ids: tuple[str, ...] = ()  # Message-IDs it quotes: proof when one is ours
    return_paths: tuple[str, ...] = ()  # addresses it went to: proof when one is our VERP path
    occurred_at: datetime | None = None
    junk: str = ""  # why it is not a report we act on ("" when it is one)
    subject: str = ""
    problems: tuple[str, ...] = ()  # a detector that failed on it, and how


def parse(raw: bytes) -> Notice:
    """What one message says (see the module's contract). Never raises."""
    digest = "sha256:" + hashlib.sha256(raw).hexdigest()[:32]
    try:
        message = email.message_from_bytes(raw)  # compat32: the Message flufl.bounce reads
    except Exception as error:  # noqa: BLE001 - MIME beyond what the email package forgives
        return Notice(report_id=digest, junk=f"unreadable ({type(error).__name__}: {error})")
    report_id = _message_id(message.get("Message-ID")) or digest
    subject = ""
    with _QuietDetectors() as quiet:
        try:
            subject = _text(message.get("Subject"))
            notice = _parse(message, report_id, subject)
        except Exception as error:  # noqa: BLE001 - MIME beyond what the email package forgives
            notice = Notice(report_id=report_id, subject=subject,
                            junk=f"unreadable ({type(error).__name__})")  # fmt: skip
    if quiet.failed:
        problems = tuple(f"{name} ({why})" for name, why in zip(quiet.failed, quiet.errors,
                                                                strict=True))  # fmt: skip
        notice = replace(notice, problems=problems)
    return notice


class _Evidence:
    """What a report offers as proof that we sent the message it is about: return paths and
    Message-IDs, at most `MAX_CANDIDATES` of each."""

    def __init__(self):
        self.paths: list[str] = []
        self.ids: list[str] = []

    def path(self, *addresses: str) -> None:
        self.paths += [a for a in addresses if a][: MAX_CANDIDATES - len(self.paths)]

    def message_id(self, *values) -> None:
        found = [i for v in values if (i := _message_id(v))]
        self.ids += found[: MAX_CANDIDATES - len(self.ids)]


def _parse(message: Message, report_id: str, subject: str) -> Notice:
    evidence = _Evidence()
    evidence.path(*_header_addresses(message, ENVELOPE_HEADERS))
    base = dict(report_id=report_id, occurred_at=_date(message.get("Date")), subject=subject)
    feedback = _first_part(message, "message/feedback-report")
    report_type = str(message.get_param("report-type") or "").lower()
    if feedback is not None or report_type == "feedback-report":
        return _complaint(message, feedback, base, evidence)
    original = _original(message)
    if original is not None:
        evidence.message_id(original.get("Message-ID"))
        evidence.path(*_header_addresses(original, ("Return-Path",)))
    evidence.message_id(message.get("X-Original-Message-ID"), message.get("In-Reply-To"))
    text = _body_text(message)
    quoted = re.findall(r"^[ \t>]*Message-ID:\s*(<[^<>\s]+>)", text[:200_000],
                        re.IGNORECASE | re.MULTILINE)  # fmt: skip
    statuses = [part for part in message.walk() if part.get_content_type() in
                ("message/delivery-status", "message/global-delivery-status")]  # fmt: skip
    if statuses:
        blocks = [block for part in statuses for block in _blocks(part)]
        failures = tuple(failure for block in blocks if (failure := _block_failure(block)))
        evidence.message_id(*(block.get("X-Original-Message-ID") for block in blocks), *quoted)
        if not failures:
            return Notice(**base, junk="a delivery report without a failure (delivered, relayed)")
        return _notice(base, failures, evidence)
    if _auto_reply(message):
        return Notice(**base, junk="an auto-reply")
    temporary, permanent = all_failures(message)
    if not (temporary or permanent):
        return Notice(**base, junk="no failed recipient found: not a bounce, or one not understood")

    def failure(kind: Kind, address: str) -> Failure:
        # the SMTP reply that follows the address in the notice, else the first one, else the
        # subject; a reply with an enhanced status code can make a permanent failure soft
        at = text.casefold().find(address.casefold())
        reply = SMTP_REPLY.search(text, at if at >= 0 else 0) or SMTP_REPLY.search(text)
        if reply is None:
            return Failure(kind, (address,), subject)
        if kind == Kind.HARD_BOUNCE:
            kind = classify("failed", reply.group(0)) or kind
        return Failure(kind, (address,), _squash(reply.group(0))[:300])

    failures = tuple(
        [failure(Kind.HARD_BOUNCE, address) for address in _decoded(permanent)[:MAX_FAILURES]]
        + [failure(Kind.SOFT_BOUNCE, address) for address in _decoded(temporary)[:MAX_FAILURES]]
    )
    evidence.message_id(*quoted)
    return _notice(base, failures, evidence)


def _notice(base: dict, failures, evidence: _Evidence) -> Notice:
    return Notice(
        **base,
        failures=tuple(failures)[:MAX_FAILURES],
        original_message_id=evidence.ids[0] if evidence.ids else None,
        message_ids=tuple(evidence.ids),
        return_paths=tuple(evidence.paths),
    )


def classify(action: str, status: str) -> Kind | None:
    """A DSN recipient block's kind: failed with 5.x.x is a hard bounce, except the codes that
    say nothing about the address (mailbox full, message too big, refused by policy 5.7.x);
    those, 4.x.x, and delayed are soft. Any other action (delivered, relayed, expanded): None."""
    action = action.strip().lower()
    if action.startswith("delayed"):
        return Kind.SOFT_BOUNCE
    if not action.startswith(("fail", "error")):  # opensmtpd writes "error"
        return None
    code = STATUS.search(status or "")
    if code and code.group(1) == "4":
        return Kind.SOFT_BOUNCE
    if code and code.group(0).startswith(SOFT_PERMANENT):
        return Kind.SOFT_BOUNCE
    return Kind.HARD_BOUNCE


def _complaint(message: Message, part: Message | None, base: dict, evidence: _Evidence) -> Notice:
    fields = _fields(part) if part is not None else Message()
    feedback_type = (fields.get("Feedback-Type") or "").strip().lower()
    if feedback_type != "abuse":
        return Notice(**base, junk=f"a feedback report of type {feedback_type or 'none'!r}")
    original = _original(message, skip=part)
    addresses = [extract(_text(value)) for value in fields.get_all("Original-Rcpt-To", [])]
    evidence.path(*(extract(_text(value)) for value in fields.get_all("Original-Mail-From", [])))
    if original is not None:
        addresses += extract_all(_text(value) for value in original.get_all("To", []))
        evidence.path(*(extract(_text(value)) for value in original.get_all("Return-Path", [])))
        evidence.message_id(original.get("Message-ID"))
    evidence.message_id(fields.get("Message-ID"))  # some reporters copy it here
    reason = f"abuse report ({_text(fields.get('User-Agent')) or 'ARF'})"
    occurred = _date(fields.get("Arrival-Date") or fields.get("Received-Date"))
    base = {**base, "occurred_at": occurred or base["occurred_at"]}
    failure = Failure(Kind.COMPLAINT, _unique(addresses)[:MAX_FAILURES], reason)
    return _notice(base, (failure,), evidence)


def _block_failure(block: Message) -> Failure | None:
    kind = classify(block.get("Action") or "", block.get("Status") or "")
    if kind is None:
        return None
    addresses = _unique(
        extract(_text(block.get(name)))
        for name in ("Original-Recipient", "Final-Recipient", "X-Actual-Recipient")
    )
    if not addresses:
        return None
    diagnostic = _squash(_text(block.get("Diagnostic-Code")))
    kind_of, _, words = diagnostic.partition(";")
    reason = (words if words and " " not in kind_of.strip() else diagnostic).strip()
    status = _squash(_text(block.get("Status")))
    return Failure(kind, addresses, reason or f"{block.get('Action', '').strip()} {status}".strip())


def _blocks(part: Message) -> list[Message]:
    """A delivery-status part's header blocks (per message, then per recipient). The email
    package splits message/delivery-status itself; the global variant, or a part it could not
    split, is split here."""
    payload = part.get_payload(decode=False)
    if isinstance(payload, list) and part.get_content_type() == "message/delivery-status":
        return [block for block in payload if isinstance(block, Message)]
    text = str(payload[0]) if isinstance(payload, list) and payload else str(payload or "")
    if part.get("Content-Transfer-Encoding", "").lower() in ("base64", "quoted-printable"):
        text = (part.get_payload(decode=True) or b"").decode("utf-8", "replace")
    parser = email.parser.HeaderParser()
    chunks = re.split(r"\r?\n[ \t]*\r?\n", text.replace("\r\n", "\n"))
    return [parser.parsestr(chunk.strip("\n") + "\n") for chunk in chunks if chunk.strip()]


def _original(message: Message, skip: Message | None = None) -> Message | None:
    """The headers of the message the report is about (message/rfc822 or rfc822-headers part)."""
    for part in message.walk():
        kind = part.get_content_type()
        if part is skip or part is message:
            continue
        if kind in ("message/rfc822", "message/global"):
            payload = part.get_payload()
            if isinstance(payload, list) and payload and isinstance(payload[0], Message):
                return payload[0]
            if isinstance(payload, str) and payload.strip():
                return email.message_from_string(payload)
        elif kind in HEADER_PARTS:
            data = part.get_payload(decode=True) or b""
            return email.parser.BytesHeaderParser().parsebytes(data)
    return None


def _fields(part: Message) -> Message:
    """The fields of a message/feedback-report part (the email package parses the part's body
    as a message of headers; a part it did not parse is parsed here)."""
    payload = part.get_payload()
    if isinstance(payload, list) and payload and isinstance(payload[0], Message):
        return payload[0]
    data = part.get_payload(decode=True) or b""
    return email.parser.BytesHeaderParser().parsebytes(data)


def _first_part(message: Message, content_type: str) -> Message | None:
    return next((p for p in message.walk() if p.get_content_type() == content_type), None)


def _auto_reply(message: Message) -> bool:
    """A vacation message or other auto-reply (RFC 3834), not a bounce: bounces come from a mail
    system (MAILER-DAEMON, postmaster) or name the failed recipients (X-Failed-Recipients)."""
    if message.get("X-Failed-Recipients") or DAEMON.search(_text(message.get("From"))):
        return False
    auto = (message.get("Auto-Submitted") or "").strip().lower()
    precedence = (message.get("Precedence") or "").strip().lower()
    return (
        auto.startswith("auto-replied")
        or precedence == "auto_reply"
        or bool(message.get("X-Autoreply") or message.get("X-Autorespond"))
        or bool(AUTO_REPLY_SUBJECT.search(_text(message.get("Subject"))))
    )


def _body_text(message: Message) -> str:
    """The plain text a person would read first (the notice of a text bounce)."""
    for part in message.walk():
        if part.get_content_type() == "text/plain":
            data = part.get_payload(decode=True) or b""
            charset = part.get_content_charset() or "utf-8"
            try:
                return data.decode(charset, "replace")
            except LookupError:
                return data.decode("utf-8", "replace")
    return ""


# Small readers -----------------------------------------------------------------------------------
def _text(value) -> str:
    """A header's value as text (RFC 2047 words decoded), or ""."""
    if value is None:
        return ""
    try:
        return str(email.header.make_header(email.header.decode_header(str(value))))
    except (LookupError, UnicodeError, ValueError, email.errors.HeaderParseError):
        return str(value)


def _squash(text: str) -> str:
    return " ".join(text.split())


def _message_id(value) -> str | None:
    found = re.search(r"<[^<>\s]+@[^<>\s]+>", str(value or ""))
    return found.group(0) if found else None


def _header_addresses(message: Message, names: Iterable[str]) -> list[str]:
    return extract_all(_text(value) for name in names for value in message.get_all(name, []))


def _decoded(addresses: Iterable[bytes]) -> list[str]:
    return sorted(address.decode("ascii", "replace") for address in addresses)


def _unique(addresses: Iterable[str]) -> tuple[str, ...]:
    seen, result = set(), []
    for address in addresses:
        if address and address.casefold() not in seen:
            seen.add(address.casefold())
            result.append(address)
    return tuple(result)


def _date(value) -> datetime | None:
    try:
        moment = email.utils.parsedate_to_datetime(str(value)) if value else None
    except (TypeError, ValueError, IndexError):
        return None
    if moment is None:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


class _QuietDetectors(logging.Filter):
    """While a report is parsed: a flufl.bounce detector's exception becomes a note (which
    detector, which error) instead of a logged traceback; the notice carries it (`problems`)."""

    _logger = logging.getLogger("flufl.bounce")
    _local = threading.local()

    def __enter__(self) -> _QuietDetectors:
        self.failed: list[str] = []
        self.errors: list[str] = []
        self._local.current = self
        self._logger.addFilter(self)
        return self

    def __exit__(self, *_exc) -> None:
        self._logger.removeFilter(self)
        self._local.current = None

    def filter(self, record: logging.LogRecord) -> bool:
        if getattr(self._local, "current", None) is not self:
            return True  # another thread's parse, or none
        if record.exc_info:
            name = getattr(record.args[0], "__name__", str(record.args[0])) if record.args else "?"
            error = record.exc_info[1]
            self.failed.append(f"detector {name}")
            self.errors.append(f"{type(error).__name__}: {str(error)[:80]}")
            return False
        return True


__all__ = ["Failure", "MAX_CANDIDATES", "MAX_FAILURES", "Notice", "classify", "parse"]
