"""The one address parser: the address in text from outside, checked, normalised and keyed.

For the form, the reports of the bounce mailbox and the webhooks alike.

Contract:
- `extract(text)` finds the one address in a field from outside, as written: `a@b`, `<a@b>`,
  `Name <a@b>`, `"Doe, Jo" <a@b>`, `a@b (comment)`, a DSN or ARF field `rfc822; a@b` (RFC 3464's
  address type; `utf-8;` too, any other type names no email address). It returns "" for a field
  that names none, several, or is not text, longer than `MAX_TEXT` characters, or holds a
  control character other than folding whitespace; it checks nothing else (`normalize` does).
  `extract_all(values)` gives every address in header values (a `To:` with several).
- `normalize(raw)` returns `(email, key)` for a bare address (what the form takes): the address as
  email-validator normalises it (syntax only, no DNS: the domain lowercased and IDNA-checked, the
  local part in Unicode NFC) and its key, which the store keeps unique: one key is one mailbox.
  The key (`mailbox_key`) lowercases the ASCII letters of the local part and keeps every other
  character as it is (so `ſam`, `straße`, `oﬃce` and fullwidth letters stay distinct from `sam`,
  `strasse`, `office`: other mailboxes), and writes the domain as its IDNA 2008 ASCII form
  (`xn--bcher-kva.de`), so the Unicode, NFD and punycode spellings of one domain are one key, and
  `straße.de` and `strasse.de` are two. Anything else raises `InvalidAddress` with a sentence a
  reader can act on (also beyond 254 bytes in all, or 64 before the @: RFC 5321). Line breaks
  never pass, so an address can never inject a header.
- `parse(text)` is `normalize(extract(text))`, for a field of a provider's report; `key_of(text)`
  is its key, or None when the text names no address we could write to.
Every address from outside (the form, the tasks, providers' reports) is keyed by `normalize`.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable
from email.utils import getaddresses

from email_validator import EmailNotValidError, validate_email

MAX_LENGTH = 254  # octets: RFC 5321's limit for a forward path (less its angle brackets)
MAX_LOCAL = 64  # octets: RFC 5321's limit for the part before the @
MAX_TEXT = 1000  # characters of one field read for an address (a header line is at most 998)
ADDRESS_TYPES = ("rfc822", "utf-8")  # RFC 3464 / RFC 6533 address types that are email
_ADDRESS_TYPE = re.compile(r"([A-Za-z0-9][A-Za-z0-9.-]*)[ \t]*;(.*)", re.DOTALL)
_FOLDING = "\t\r\n"


class InvalidAddress(ValueError):
    """The text is not an email address we can write to; str() says why, for the reader."""


def extract(text: object) -> str:
    """The one address in a field from outside, as written, or "" (see the module's contract)."""
    if not isinstance(text, str) or len(text) > MAX_TEXT:
        return ""
    if any(unicodedata.category(c) == "Cc" and c not in _FOLDING for c in text):
        return ""
    value = " ".join(text.split())  # unfolded
    typed = _ADDRESS_TYPE.fullmatch(value)
    if typed and "@" not in typed.group(1):
        if typed.group(1).lower() not in ADDRESS_TYPES:
            return ""  # an X.400 or other address type: no email address
        value = typed.group(2).strip()
    found = [address for _name, address in getaddresses([value]) if address]
    if len(found) != 1:
        return ""
    address = found[0].strip()
    if "@" not in address or any(c.isspace() for c in address):
        return ""
    return address


def extract_all(values: Iterable[object]) -> list[str]:
    """Every address in header values (several per value, as in `To: a@b, Name <c@d>`), as
    written; values that are not text, or too long, or hold control characters, give none."""
    texts = [
        " ".join(value.split())
        for value in values
        if isinstance(value, str) and len(value) <= MAX_TEXT
        and not any(unicodedata.category(c) == "Cc" and c not in _FOLDING for c in value)
    ]  # fmt: skip
    found = [address.strip() for _name, address in getaddresses(texts)]
    return [a for a in found if "@" in a and not any(c.isspace() for c in a)]


def normalize(raw: object) -> tuple[str, str]:
    """(the address normalised, its key) of a bare address, or `InvalidAddress` saying why."""
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


def parse(text: object) -> tuple[str, str]:
    """(email, key) of the address in a field of a provider's report (`extract`, then
    `normalize`), or `InvalidAddress`."""
    address = extract(text)
    if not address:
        raise InvalidAddress("That is not a valid email address: no single address found.")
    return normalize(address)


def key_of(text: object) -> str | None:
    """The key of the address in a field from outside, or None when it names none we could
    write to."""
    try:
        return parse(text)[1]
    except InvalidAddress:
        return None


def mailbox_key(local: str, ascii_domain: str) -> str:
    """The key of one mailbox: ASCII letters of the local part lowercased (mail systems treat
    them alike), every other character kept; the domain in its ASCII (IDNA) form, lowercased."""
    return local.translate(_ASCII_LOWER) + "@" + ascii_domain.lower()


_ASCII_LOWER = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz")


__all__ = [
    "InvalidAddress",
    "MAX_LENGTH",
    "MAX_TEXT",
    "extract",
    "extract_all",
    "key_of",
    "mailbox_key",
    "normalize",
    "parse",
]
