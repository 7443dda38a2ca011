"""The confirmation email, read back with the standard `email` package as a mail program would."""

import email
import email.policy
import re

import pytest
from bs4 import BeautifulSoup

from newsletter.mail.message import message_id
from newsletter.subscriptions import emails
from newsletter.subscriptions.addresses import normalize
from newsletter.subscriptions.subscribers import Subscribers
from newsletter.subscriptions.tokens import Tokens
from tests.conftest import newsletter_settings

SETTINGS = newsletter_settings(
    sender="Walk Again <news@walkagain.example>",
    site_url="https://walkagain.example",
    base_url="https://walkagain.example/newsletter",
    postal_address="Walk Again, 2 Mill Lane, Leeds LS1 1AA",
)  # the values the tests below read back, spelled out (they are also the factory's defaults)


@pytest.fixture
def subscriber(tmp_path):
    store = Subscribers.open(tmp_path / "db.sqlite3")
    store.request_subscription(
        *normalize("Reader@Example.com"), source="https://walkagain.example/"
    )
    yield store.list()[0]
    store.close()


def confirmation(subscriber, queue_id=7):
    tokens = Tokens(SETTINGS.secret_key)
    message = emails.confirmation_email(
        SETTINGS,
        subscriber,
        **emails.links(SETTINGS, tokens, subscriber),
        message_id=message_id(SETTINGS, "confirmation", queue_id),
    )
    # What arrives: bytes on the wire, parsed back.
    return email.message_from_bytes(message.as_bytes(), policy=email.policy.default), tokens


def test_headers(subscriber):
    msg, tokens = confirmation(subscriber)
    assert msg["From"] == "Walk Again <news@walkagain.example>"
    assert msg["From"].addresses[0].display_name == "Walk Again"
    assert msg["To"] == "Reader@example.com"
    assert msg["Subject"] == "Confirm your subscription to Walk Again"
    assert msg["Date"].datetime is not None
    assert msg["Auto-Submitted"] == "auto-generated"
    unsubscribe = f"https://walkagain.example/newsletter/unsubscribe/{tokens.unsubscribe_token(subscriber.public_id)}"
    assert msg["List-Unsubscribe"] == f"<{unsubscribe}>"
    assert msg["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert msg["List-Id"] == "Walk Again <newsletter.walkagain.example>"
    assert "@" not in msg["List-Unsubscribe"].split("/unsubscribe/")[1]  # no address in links


def test_list_unsubscribe_is_a_literal_url_on_the_wire(subscriber):
    tokens = Tokens(SETTINGS.secret_key)
    links = emails.links(SETTINGS, tokens, subscriber)
    message = emails.confirmation_email(
        SETTINGS, subscriber, **links, message_id=message_id(SETTINGS, "confirmation", 1)
    )
    for raw in (message.as_bytes(), message.as_bytes(policy=message.policy.clone(linesep="\r\n"))):
        unfolded = re.sub(rb"\r?\n[ \t]+", b" ", raw.split(b"\n\n", 1)[0].split(b"\r\n\r\n")[0])
        headers = dict(
            line.split(b": ", 1) for line in re.split(rb"\r?\n", unfolded) if b": " in line
        )
        assert headers[b"List-Unsubscribe"] == f"<{links['unsubscribe_url']}>".encode()
        assert headers[b"List-Unsubscribe-Post"] == b"List-Unsubscribe=One-Click"
        assert b"=?" not in headers[b"List-Unsubscribe"]


def test_parts_text_then_html_with_inlined_css(subscriber):
    msg, tokens = confirmation(subscriber)
    assert msg.get_content_type() == "multipart/alternative"
    parts = list(msg.iter_parts())
    assert [p.get_content_type() for p in parts] == ["text/plain", "text/html"]
    text, html = parts[0].get_content(), parts[1].get_content()
    confirm_url = re.search(r"https://\S+/confirm/\S+", text).group(0)
    public_id, nonce = tokens.read_confirm(confirm_url.rsplit("/", 1)[1])
    assert (public_id, nonce) == (subscriber.public_id, subscriber.confirm_nonce)
    assert "48 hours" in text
    assert "Walk Again, 2 Mill Lane, Leeds LS1 1AA" in text
    assert "Unsubscribe: https://walkagain.example/newsletter/unsubscribe/" in text

    page = BeautifulSoup(html, "html.parser")
    assert page.find("style") is None, "CSS must be inlined, not left in a <style> block"
    button = page.find("a", string="Yes, subscribe me")
    assert button["href"] == confirm_url
    assert "background: #1f6b5c" in button["style"]
    assert "Walk Again, 2 Mill Lane, Leeds LS1 1AA" in page.get_text()
    unsubscribe = page.find("a", string="Unsubscribe")
    assert unsubscribe["href"] == msg["List-Unsubscribe"].strip("<>")
