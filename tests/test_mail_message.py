"""Composing email: deterministic Message-IDs, the list headers in one place, no injection."""

import re
from email.message import EmailMessage

import pytest

from newsletter.mail import message as compose
from tests.conftest import newsletter_settings

SETTINGS = newsletter_settings(
    sender="Walk Again <news@walkagain.example>",
    site_url="https://walkagain.example",
    base_url="https://walkagain.example/newsletter",
)  # the values the tests below read back, spelled out (they are also the factory's defaults)


def test_message_id_is_deterministic_per_email():
    first = compose.message_id(SETTINGS, "confirmation", 7)
    assert compose.message_id(SETTINGS, "confirmation", 7) == first
    assert compose.message_id(SETTINGS, "confirmation", 8) != first
    assert re.fullmatch(r"<[0-9a-f]{32}\.confirmation@walkagain\.example>", first)
    other_key = SETTINGS.replace(secret_key="k" * 32)
    assert compose.message_id(other_key, "confirmation", 7) != first  # reveals no counts


def test_list_headers_are_set_once_by_one_function():
    message = EmailMessage()
    compose.set_list_headers(
        message, SETTINGS, "https://walkagain.example/newsletter/unsubscribe/a"
    )
    compose.set_list_headers(
        message, SETTINGS, "https://walkagain.example/newsletter/unsubscribe/b"
    )
    assert message.get_all("List-Unsubscribe") == [
        "<https://walkagain.example/newsletter/unsubscribe/b>"
    ]
    assert len(message.get_all("List-Unsubscribe-Post")) == 1


def test_no_header_can_be_injected():
    with pytest.raises(ValueError):
        compose.new_message(SETTINGS, "a@b.c\r\nBcc: x@y.z", "Hi", "<x@y>")
    with pytest.raises(ValueError):
        compose.new_message(SETTINGS, "a@example.com", "Hi\r\nBcc: x@y.z", "<x@y>")


def test_wire_bytes_have_crlf_and_utf8_only_for_an_international_address():
    message = compose.new_message(SETTINGS, "reader@example.com", "Hi", "<x@y>")
    message.set_content("Hello")
    data = compose.wire(message)
    assert b"\r\nTo: reader@example.com\r\n" in data and b"\n" not in data.replace(b"\r\n", b"")
    international = compose.new_message(SETTINGS, "józef@example.com", "Hi", "<x@y>")
    international.set_content("Hello")
    assert "To: józef@example.com".encode() in compose.wire(international)
