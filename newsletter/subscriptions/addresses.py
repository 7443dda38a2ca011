"""Email addresses from outside: checked and normalised before anything stores or sends them.

Contract: `normalize(raw)` returns `(email, key)`: the address as email-validator normalises it
(syntax only, no DNS: the domain lowercased and IDNA-checked, the local part kept) and its
case-insensitive key, which the store keeps unique. Anything else raises `InvalidAddress` with a
sentence a reader can act on. Line breaks never pass, so an address can never inject a header.
"""

from __future__ import annotations

import unicodedata

from email_validator import EmailNotValidError, validate_email

MAX_LENGTH = 254  # RFC 5321's limit for a forward path


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
    if len(value) > MAX_LENGTH:
        raise InvalidAddress(
            f"That email address is too long ({len(value)} characters; at most {MAX_LENGTH})."
        )
    try:
        result = validate_email(value, check_deliverability=False)
    except EmailNotValidError as error:
        raise InvalidAddress(f"That is not a valid email address: {error}") from None
    return result.normalized, result.normalized.casefold()


__all__ = ["InvalidAddress", "MAX_LENGTH", "normalize"]
