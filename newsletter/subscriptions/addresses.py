"""Email addresses from outside: checked and normalised before anything stores or sends them.

Contract: `normalize(raw)` returns `(email, key)`: the address as email-validator normalises it
(syntax only, no DNS: the domain lowercased and IDNA-checked, the local part in Unicode NFC) and
its key, which the store keeps unique: one key is one mailbox. The key lowercases the ASCII
letters of the local part and keeps every other character as it is (so `ſam`, `straße`, `oﬃce`
and fullwidth letters stay distinct from `sam`, `strasse`, `office`: other mailboxes), and
writes the domain as its IDNA 2008 ASCII form (`xn--bcher-kva.de`), so the Unicode, NFD and
punycode spellings of one domain are one key, and `straße.de` and `strasse.de` are two. Every
address from outside (the form, the tasks, providers' reports) is keyed by this one function.
Anything else raises `InvalidAddress` with a sentence a reader can act on (also beyond 254 bytes
in all, or 64 before the @: RFC 5321). Line breaks never pass, so an address can never inject a
header.
"""

from __future__ import annotations

import unicodedata

from email_validator import EmailNotValidError, validate_email

MAX_LENGTH = 254  # octets: RFC 5321's limit for a forward path (less its angle brackets)
MAX_LOCAL = 64  # octets: RFC 5321's limit for the part before the @


class InvalidAddress(ValueError):
    """The text is not an email address we can write to; str() says why, for the reader."""


def normalize(raw: object) -> tuple[str, str]:
    if raw is None or (isinstance(raw, str) and not raw.strip()):
        raise InvalidAddress("Please enter your email address.")
    if not isinstance(raw, str):
        raise InvalidAddress("The email address must be text.")
    value = raw.strip()
    if any(unicodedata.category(char) == "Cc" for char in value):
        raise InvalidAddress(
            "An email address cannot contain line breaks or other control characters."
        )
    if "\ufffd" in value:  # what a decoder leaves of bytes that were not valid UTF-8
        raise InvalidAddress("That is not a valid email address: some characters were garbled.")
    octets = len(value.encode("utf-8", "replace"))
    if octets > MAX_LENGTH:
        raise InvalidAddress(
            f"That email address is too long ({octets} bytes; at most {MAX_LENGTH})."
        )
    try:
        result = validate_email(value, check_deliverability=False)
    except EmailNotValidError as error:
        raise InvalidAddress(f"That is not a valid email address: {error}") from None
    local = result.normalized.rpartition("@")[0]
    if len(local.encode("utf-8")) > MAX_LOCAL:
        raise InvalidAddress(
            f"That email address is too long before the @ (at most {MAX_LOCAL} bytes)."
        )
    return result.normalized, mailbox_key(result.local_part, result.ascii_domain)


def mailbox_key(local: str, ascii_domain: str) -> str:
    """The key of one mailbox: ASCII letters of the local part lowercased (mail systems treat
    them alike), every other character kept; the domain in its ASCII (IDNA) form, lowercased."""
    return local.translate(_ASCII_LOWER) + "@" + ascii_domain.lower()


_ASCII_LOWER = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz")


__all__ = ["InvalidAddress", "MAX_LENGTH", "mailbox_key", "normalize"]
