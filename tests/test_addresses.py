"""Addresses from outside: normalised, or refused with a sentence a reader can act on."""

import pytest

from newsletter.subscriptions.addresses import InvalidAddress, normalize


def test_addresses_are_normalised_with_a_case_insensitive_key():
    assert normalize("  Mark.Williams@Example.COM ") == (
        "Mark.Williams@example.com",
        "mark.williams@example.com",
    )


@pytest.mark.parametrize(
    "one, other",
    [
        ("sam@example.com", "ſam@example.com"),  # long s: casefold() made it "s"
        ("strasse@example.com", "straße@example.com"),  # casefold() made ß "ss"
        ("office@example.org", "oﬃce@example.org"),  # the ffi ligature
        ("sam@example.com", "Ｓam@example.com"),  # a fullwidth S
        ("joe@strasse.de", "joe@straße.de"),  # IDNA 2008 keeps ß: another domain
        ("äb@x.example", "ÄB@x.example"),  # non-ASCII letters keep their case
    ],
)
def test_one_key_is_one_mailbox(one, other):
    """Spellings that another mail system delivers to another mailbox get another key, so whoever
    signs up one cannot receive the confirmations of the other."""
    assert normalize(one)[1] != normalize(other)[1]


@pytest.mark.parametrize(
    "spellings, key",
    [
        (["user@bücher.de", "user@xn--bcher-kva.de", "user@bu\u0308cher.de", "USER@BÜCHER.DE"],
         "user@xn--bcher-kva.de"),
        (["a\u0308b@x.example", "äb@x.example"], "äb@x.example"),  # NFC in the local part too
        (["Sam@Example.COM", "sam@example.com", "sam@ｅｘａｍｐｌｅ.com"], "sam@example.com"),
    ],
)  # fmt: skip
def test_spellings_of_one_mailbox_are_one_key(spellings, key):
    assert {normalize(spelling)[1] for spelling in spellings} == {key}


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
