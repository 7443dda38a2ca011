"""Addresses from outside: normalised, or refused with a sentence a reader can act on; the one
parser that finds the address in a report's field or a provider's recipient (display names,
angle brackets, `rfc822;` types, IDN domains, NFC/NFD, control characters, oversized input)."""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from newsletter.subscriptions.addresses import (
    MAX_TEXT,
    InvalidAddress,
    extract,
    extract_all,
    key_of,
    normalize,
    parse,
)


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


# The one parser of addresses in outside text: the reports' fields, the webhooks' recipients --
@pytest.mark.parametrize(
    "text, address",
    [
        ("reader@example.com", "reader@example.com"),
        ("  <reader@example.com>  ", "reader@example.com"),
        ("Reader <reader@example.com>", "reader@example.com"),
        ('"Doe, Jo" <jo@example.com>', "jo@example.com"),  # a comma inside quotes
        ('"Doe; Jo" <jo@example.com>', "jo@example.com"),  # not an address type
        ("jo@example.com (Jo Doe)", "jo@example.com"),  # a comment
        ("rfc822; reader@example.com", "reader@example.com"),  # DSN fields (RFC 3464)
        ("RFC822;<Reader@Example.com>", "Reader@Example.com"),
        ("rfc822;reader@example.com", "reader@example.com"),
        ("utf-8; rosé@bücher.de", "rosé@bücher.de"),  # RFC 6533
        ("<r@host.example> (expanded from <rosa@example.org>)", "r@host.example"),
        ("Reader\r\n <reader@example.com>", "reader@example.com"),  # a folded header
        ("Ünïcödé Näme <ü@bücher.de>", "ü@bücher.de"),
    ],
)
def test_the_address_in_a_field_from_outside_is_found(text, address):
    assert extract(text) == address


@pytest.mark.parametrize(
    "text",
    [
        "",
        "   ",
        "no address here",
        "x400; /C=us/ADMD=/PRMD=x/O=y/S=z",  # another address type
        "a@example.com, b@example.com",  # two: whose?
        "<a@example.com> <b@example.com>",
        "a@example.com\r\nBcc: b@example.com",  # a header injection: two addresses
        "a@example.com\x00",  # control characters
        "a@exa\x1bmple.com",
        "Name <a@example.com>" + " " * MAX_TEXT,  # oversized input
        "x" * 5000 + "@example.com",
        None,
        b"a@example.com",
        ["a@example.com"],
    ],
)
def test_a_field_without_exactly_one_address_gives_none(text):
    assert extract(text) == ""
    assert key_of(text) is None
    with pytest.raises(InvalidAddress):
        parse(text)


@pytest.mark.parametrize(
    "text, key",
    [
        ("Reader <Reader@Example.COM>", "reader@example.com"),
        ("rfc822; user@xn--bcher-kva.de", "user@xn--bcher-kva.de"),  # punycode
        ("User <user@bu\u0308cher.de>", "user@xn--bcher-kva.de"),  # NFD
        ("utf-8; USER@BÜCHER.DE", "user@xn--bcher-kva.de"),  # Unicode, upper case
        ("<a\u0308b@x.example>", "äb@x.example"),  # NFD in the local part: NFC
        ("Sam <ſam@example.com>", "ſam@example.com"),  # another mailbox than sam@
        ("fullwidth <sam@ｅｘａｍｐｌｅ.com>", "sam@example.com"),  # the domain is IDNA-mapped
    ],
)
def test_a_field_is_keyed_like_a_sign_up(text, key):
    assert key_of(text) == key
    assert parse(text)[1] == key


@pytest.mark.parametrize(
    "text",
    [
        "Evil <a\u202eb@example.com>",  # right-to-left override
        "<a\u200bb@example.com>",  # zero width space
        "rfc822; a@b",  # no dot in the domain
        "rfc822; " + "x" * 65 + "@example.com",  # over 64 before the @
        "Name <" + "x" * 60 + "@" + "d" * 63 + "." + "e" * 63 + "." + "f" * 63 + ".com>",  # 256
        "<a@example.com\ufffd>",  # garbled bytes
    ],
)
def test_a_field_naming_an_address_we_cannot_write_to_has_no_key(text):
    assert key_of(text) is None
    with pytest.raises(InvalidAddress):
        parse(text)


def test_every_address_in_header_values_is_found():
    values = ["Ana <ana@example.com>, bo@example.com", "<cy@example.com>", "junk", None, "a\x00@b"]
    assert extract_all(values) == ["ana@example.com", "bo@example.com", "cy@example.com"]
    assert extract_all(["x@example.com" + " " * MAX_TEXT]) == []


@given(st.text(max_size=300))
def test_no_text_makes_the_parser_raise_anything_but_invalid_address(text):
    found = extract(text)
    assert found == "" or ("@" in found and not any(c.isspace() for c in found))
    try:
        email, key = parse(text)
    except InvalidAddress:
        return
    assert normalize(email)[1] == key and "\n" not in email and "\r" not in email
