"""Signed, opaque tokens for the links in our emails (itsdangerous).

Contract: a token carries only a subscriber's random public id (and, for confirmation, the nonce
of their current opt-in request): never the row id, never the address. `Tokens(secret)`:
- `confirm_token(public_id, nonce)` / `read_confirm(token)`: valid for 48 hours;
- `unsubscribe_token(public_id)` / `read_unsubscribe(token)`: never expires, and is the same
  string every time, so every email to a subscriber carries the same working link.
- A plan follow's links, with their own keys (salts): `plan_confirm_token(public_id, nonce)` /
  `read_plan_confirm(token)` (48 hours, as above), `plan_stop_token(public_id, every=False)` /
  `read_plan_stop(token, every=False)` (never expire; `every`: the "stop all plans" link).
- `preferences_token(public_id)` / `read_preferences(token)`: the preferences page's link in
  every email's footer; like the unsubscribe token (never expires, the same string every time),
  signed for its own purpose, so neither link opens the other's page.
- `address_token(public_id, nonce)` / `read_address(token)`: the link that confirms a change of
  address (the nonce of that one request); valid as long as a confirmation link.
A token signed with another key, altered, cut short or meant for the other purpose raises
`InvalidToken`; an expired confirmation token raises `ExpiredToken` (a subclass). Both carry a
sentence for the reader.
"""

from __future__ import annotations

import binascii
import functools
import hmac
import re
import time
import zlib
from collections.abc import Callable

from itsdangerous import BadData, SignatureExpired, URLSafeSerializer, URLSafeTimedSerializer

CONFIRM_MAX_AGE = 48 * 3600
MAX_TOKEN_LENGTH = 200


class InvalidToken(ValueError):
    """The link is not one we made (tampered, forged, truncated or for another purpose)."""


class ExpiredToken(InvalidToken):
    """The link was ours, but its time is up."""


_PLAIN = re.compile(r"[A-Za-z0-9_.~-]*")  # a public id: its JSON is itself in quotes


class _Lasting(URLSafeSerializer):
    """A serializer for links that never expire, fast for bulk email (two tokens in each one):
    a plain text's token is made with the key derived once and one HMAC, and is the very token
    itsdangerous makes (compared when this is made: otherwise itsdangerous' own path)."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        signer = self.make_signer()
        self._key, self._sep = signer.derive_key(), signer.sep  # Signer's defaults: HMAC-SHA1
        slow = super().dumps
        self._fast = all(self._plain(probe) == slow(probe) for probe in ("probe-1", "a" * 40))

    def _plain(self, value: str) -> str:
        payload = _payload(value)
        signature = _base64(hmac.digest(self._key, payload, "sha1"))
        return (payload + self._sep + signature).decode("ascii")

    def dumps(self, obj, salt=None):
        if self._fast and salt is None and type(obj) is str and _PLAIN.fullmatch(obj):
            return self._plain(obj)
        return super().dumps(obj, salt)


_URL_SAFE = bytes.maketrans(b"+/", b"-_")


@functools.lru_cache(maxsize=8)  # one email's unsubscribe and preferences tokens share it
def _payload(value: str) -> bytes:
    """itsdangerous' payload of a plain text: its JSON, compressed when that is shorter."""
    payload = b'"' + value.encode() + b'"'
    compressed = zlib.compress(payload)
    if len(compressed) < len(payload) - 1:
        return b"." + _base64(compressed)
    return _base64(payload)


def _base64(data: bytes) -> bytes:
    """itsdangerous' base64_encode (URL-safe, no padding), without its checks."""
    return binascii.b2a_base64(data, newline=False).translate(_URL_SAFE).rstrip(b"=")


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
        self._unsubscribe = _Lasting(secret_key, salt="newsletter-unsubscribe")
        self._plan_confirm = _Clocked(secret_key, salt="newsletter-plan-confirm", clock=clock)
        self._plan_stop = URLSafeSerializer(secret_key, salt="newsletter-plan-stop")
        self._plan_stop_all = URLSafeSerializer(secret_key, salt="newsletter-plan-stop-all")
        self._preferences = _Lasting(secret_key, salt="newsletter-preferences")
        self._address = _Clocked(secret_key, salt="newsletter-address", clock=clock)

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

    def preferences_token(self, public_id: str) -> str:
        return self._preferences.dumps(public_id)

    def read_preferences(self, token: str) -> str:
        """The public id from a preferences token."""
        _check_shape(token)
        try:
            value = self._preferences.loads(token)
        except BadData:
            raise InvalidToken(_INVALID.format(what="preferences")) from None
        if not isinstance(value, str):
            raise InvalidToken(_INVALID.format(what="preferences"))
        return value

    def address_token(self, public_id: str, nonce: str) -> str:
        return self._address.dumps([public_id, nonce])

    def read_address(self, token: str) -> tuple[str, str]:
        """(public_id, nonce) from the link that confirms a change of address."""
        _check_shape(token)
        try:
            value = self._address.loads(token, max_age=self.max_age)
        except SignatureExpired:
            raise ExpiredToken(
                f"This link has expired: links work for {self.max_age // 3600} hours. Ask for "
                "the change again on your preferences page to get a new one."
            ) from None
        except BadData:
            raise InvalidToken(_INVALID.format(what="confirmation")) from None
        if not (
            isinstance(value, list) and len(value) == 2 and all(isinstance(v, str) for v in value)
        ):
            raise InvalidToken(_INVALID.format(what="confirmation"))
        return value[0], value[1]

    # A plan follow's links (plan_follows): the follow's random public id, never the address.
    def plan_confirm_token(self, public_id: str, nonce: str) -> str:
        return self._plan_confirm.dumps([public_id, nonce])

    def read_plan_confirm(self, token: str) -> tuple[str, str]:
        """(public_id, nonce) from a plan's confirmation token; expires as `confirm_token`."""
        _check_shape(token)
        try:
            value = self._plan_confirm.loads(token, max_age=self.max_age)
        except SignatureExpired:
            raise ExpiredToken(
                f"This confirmation link has expired: links work for {self.max_age // 3600} "
                "hours. Ask to follow the plan again to get a new one."
            ) from None
        except BadData:
            raise InvalidToken(_INVALID.format(what="confirmation")) from None
        if not (
            isinstance(value, list) and len(value) == 2 and all(isinstance(v, str) for v in value)
        ):
            raise InvalidToken(_INVALID.format(what="confirmation"))
        return value[0], value[1]

    def plan_stop_token(self, public_id: str, *, every: bool = False) -> str:
        """Stop this plan (or, `every`, all the plans of its address); never expires."""
        return (self._plan_stop_all if every else self._plan_stop).dumps(public_id)

    def read_plan_stop(self, token: str, *, every: bool = False) -> str:
        """The follow's public id from a stop (or, `every`, stop-all) token."""
        _check_shape(token)
        try:
            value = (self._plan_stop_all if every else self._plan_stop).loads(token)
        except BadData:
            raise InvalidToken(_INVALID.format(what="stop")) from None
        if not isinstance(value, str):
            raise InvalidToken(_INVALID.format(what="stop"))
        return value


_INVALID = (
    "This {what} link is not valid: it may have been cut short or changed on the way. "
    "Open the link from the email again, or copy the whole address into your browser."
)


def _check_shape(token: object) -> None:
    if not isinstance(token, str) or not token or len(token) > MAX_TOKEN_LENGTH:
        raise InvalidToken(_INVALID.format(what="email"))


__all__ = ["CONFIRM_MAX_AGE", "ExpiredToken", "InvalidToken", "Tokens"]
