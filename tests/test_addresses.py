"""Addresses from outside: normalised, or refused with a sentence a reader can act on."""

import pytest

from newsletter.subscriptions.addresses import InvalidAddress, normalize


def test_addresses_are_normalised_with_a_case_insensitive_key():
    assert normalize("  Mark.Williams@Example.COM ") == (
        "Mark.Williams@example.com",
        "mark.williams@example.com",
    )


@pytest.mark.parametrize(
    "raw, words",
    [
        ("", "Please enter"),
        ("   ", "Please enter"),
        (None, "Please enter"),
        ("not-an-address", "not a valid email address"),
        ("a@b.c\r\nBcc: x@y.z", "line breaks"),
        ("x" * 290 + "@example.com", "too long"),
        (["a@example.com"], "must be text"),
    ],
)
def test_bad_addresses_are_refused_with_a_reason(raw, words):
    with pytest.raises(InvalidAddress, match=words):
        normalize(raw)
