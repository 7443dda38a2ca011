"""Links in our emails: signed, opaque, 48 hours to confirm, unsubscribe forever."""

import base64
import secrets
import time

import pytest

from newsletter.subscriptions.tokens import ExpiredToken, InvalidToken, Tokens

KEY = "k" * 40
PUBLIC_ID = "q3Zb8kq0Vt1mYwVb6xv1Tg"


@pytest.fixture
def tokens():
    return Tokens(KEY)


def decoded_payload(token):
    payload = token.split(".")[0]
    return base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)).decode()


def test_confirm_token_round_trip_carries_only_the_public_id_and_nonce(tokens):
    token = tokens.confirm_token(PUBLIC_ID, "n0nce")
    assert tokens.read_confirm(token) == (PUBLIC_ID, "n0nce")
    assert "@" not in decoded_payload(token)
    assert all(ch.isalnum() or ch in "-_." for ch in token)  # safe in a URL path


def test_confirm_token_works_for_48_hours_then_expires(tokens):
    made_47h_ago = Tokens(KEY, clock=lambda: time.time() - 47 * 3600)
    assert tokens.read_confirm(made_47h_ago.confirm_token(PUBLIC_ID, "n")) == (PUBLIC_ID, "n")
    made_49h_ago = Tokens(KEY, clock=lambda: time.time() - 49 * 3600)
    with pytest.raises(ExpiredToken, match="expired.*48 hours"):
        tokens.read_confirm(made_49h_ago.confirm_token(PUBLIC_ID, "n"))


def test_unsubscribe_token_never_expires_and_is_stable(tokens):
    years_ago = Tokens(KEY, clock=lambda: time.time() - 5 * 365 * 86400)
    token = years_ago.unsubscribe_token(PUBLIC_ID)
    assert token == tokens.unsubscribe_token(PUBLIC_ID)
    assert tokens.read_unsubscribe(token) == PUBLIC_ID


def test_tampered_forged_truncated_and_crossed_tokens_are_refused(tokens):
    confirm = tokens.confirm_token(PUBLIC_ID, "n")
    unsubscribe = tokens.unsubscribe_token(PUBLIC_ID)
    payload, rest = unsubscribe.split(".", 1)
    other = base64.urlsafe_b64encode(b'"someone-else"').decode().rstrip("=")
    forged = Tokens("another-key-" + "x" * 30)
    bad = [
        other + "." + rest,  # tampered payload, original signature
        unsubscribe[:-3],  # cut short
        forged.unsubscribe_token(PUBLIC_ID),  # signed with another key
        confirm,  # a confirmation token used to unsubscribe
        "",
        "x" * 500,
        "not a token",
    ]
    for token in bad:
        with pytest.raises(InvalidToken, match="not valid"):
            tokens.read_unsubscribe(token)
    for token in (unsubscribe, confirm[:-2], forged.confirm_token(PUBLIC_ID, "n")):
        with pytest.raises(InvalidToken, match="not valid") as error:
            tokens.read_confirm(token)
        assert not isinstance(error.value, ExpiredToken)


def test_the_fast_unsubscribe_and_preferences_tokens_are_itsdangerous_own():
    """Bulk email makes these two tokens fast (the key derived once); every one must be the very
    token itsdangerous makes for the same key and purpose, and read back."""
    from itsdangerous import URLSafeSerializer

    tokens = Tokens("s" * 40)
    values = ["", "a" * 60, "x" * 13, "pub-00000001-xxxxxxxxxx", "é", "a b", '"\\', "\x7f"]
    values += [secrets.token_urlsafe(n) for n in range(1, 40)]
    for salt, make, read in (
        ("newsletter-unsubscribe", tokens.unsubscribe_token, tokens.read_unsubscribe),
        ("newsletter-preferences", tokens.preferences_token, tokens.read_preferences),
    ):
        reference = URLSafeSerializer("s" * 40, salt=salt)
        for value in values:
            assert make(value) == reference.dumps(value)
            if value:
                assert read(make(value)) == value
