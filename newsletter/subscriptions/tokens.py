"""Signed, opaque tokens for the links in our emails (itsdangerous).

Contract: a token carries only a subscriber's random public id (and, for confirmation, the nonce
of their current opt-in request): never the row id, never the address. `Tokens(secret)`:
- `confirm_token(public_id, nonce)` / `read_confirm(token)`: valid for 48 hours;
- `unsubscribe_token(public_id)` / `read_unsubscribe(token)`: never expires, and is the same
  string every time, so every email to a subscriber carries the same working link.
A token signed with another key, altered, cut short or meant for the other purpose raises
`InvalidToken`; an expired confirmation token raises `ExpiredToken` (a subclass). Both carry a
sentence for the reader.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from itsdangerous import BadData, SignatureExpired, URLSafeSerializer, URLSafeTimedSerializer

CONFIRM_MAX_AGE = 48 * 3600
MAX_TOKEN_LENGTH = 200


class InvalidToken(ValueError):
    """The link is not one we made (tampered, forged, truncated or for another purpose)."""


class ExpiredToken(InvalidToken):
    """The link was ours, but its time is up."""


class _Clocked(URLSafeTimedSerializer):
    """A timed serializer whose clock can be set (to sign tokens in the past, in tests)."""

    def __init__(self, *args, clock: Callable[[], float], **kwargs):
        super().__init__(*args, **kwargs)
        self._clock = clock

    def make_signer(self, salt=None):
        signer = super().make_signer(salt)
        signer.get_timestamp = lambda: int(self._clock())
        return signer


class Tokens:
    def __init__(
        self,
        secret_key: str,
        *,
        max_age: int = CONFIRM_MAX_AGE,
        clock: Callable[[], float] = time.time,
    ):
        self.max_age = max_age
        self._confirm = _Clocked(secret_key, salt="newsletter-confirm", clock=clock)
        self._unsubscribe = URLSafeSerializer(secret_key, salt="newsletter-unsubscribe")

    def confirm_token(self, public_id: str, nonce: str) -> str:
        return self._confirm.dumps([public_id, nonce])

    def read_confirm(self, token: str) -> tuple[str, str]:
        """(public_id, nonce) from a confirmation token."""
        _check_shape(token)
        try:
            value = self._confirm.loads(token, max_age=self.max_age)
        except SignatureExpired:
            raise ExpiredToken(
                f"This confirmation link has expired: links work for {self.max_age // 3600} "
                "hours. Subscribe again to get a new one."
            ) from None
        except BadData:
            raise InvalidToken(_INVALID.format(what="confirmation")) from None
        if not (
            isinstance(value, list) and len(value) == 2 and all(isinstance(v, str) for v in value)
        ):
            raise InvalidToken(_INVALID.format(what="confirmation"))
        return value[0], value[1]

    def unsubscribe_token(self, public_id: str) -> str:
        return self._unsubscribe.dumps(public_id)

    def read_unsubscribe(self, token: str) -> str:
        """The public id from an unsubscribe token."""
        _check_shape(token)
        try:
            value = self._unsubscribe.loads(token)
        except BadData:
            raise InvalidToken(_INVALID.format(what="unsubscribe")) from None
        if not isinstance(value, str):
            raise InvalidToken(_INVALID.format(what="unsubscribe"))
        return value


_INVALID = (
    "This {what} link is not valid: it may have been cut short or changed on the way. "
    "Open the link from the email again, or copy the whole address into your browser."
)


def _check_shape(token: object) -> None:
    if not isinstance(token, str) or not token or len(token) > MAX_TOKEN_LENGTH:
        raise InvalidToken(_INVALID.format(what="email"))


__all__ = ["CONFIRM_MAX_AGE", "ExpiredToken", "InvalidToken", "Tokens"]
