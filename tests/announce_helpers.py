"""Helpers for the announcement tests: fixture sites built by Pelican, subscribers in every state,
and the emails in an outbox. (The settings: tests.conftest; the SMTP sink: tests.smtp_server.)"""

from __future__ import annotations

import email
import email.policy
import re
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from html import escape
from pathlib import Path

from bs4 import BeautifulSoup

from blog.feed_contract import NAMESPACE
from newsletter.settings import Settings
from newsletter.subscriptions.addresses import normalize
from newsletter.subscriptions.subscribers import Status, Subscribers
from tests.conftest import SITE_URL, build_site


def recent(hours: float = 2) -> str:
    """A Pelican date string `hours` ago (the site's timezone is UTC+0 in winter: a margin)."""
    return (datetime.now(UTC) - timedelta(hours=hours)).strftime("%Y-%m-%d %H:%M")


def build(content: Path, output: Path, siteurl: str = SITE_URL) -> Path:
    """Build the fixture content with Pelican; return the RSS feed's path."""
    build_site(output, siteurl, PATH=content)
    return output / "feeds" / "all.rss.xml"


def add_subscribers(
    settings: Settings, statuses: dict[str, Status], *, since: datetime | None = None
) -> dict[str, object]:
    """Subscribers with the given statuses (set through the store's own transitions), as of
    `since` (default: now)."""
    store = Subscribers.open(settings.database, **({"clock": lambda: since} if since else {}))
    try:
        made = {}
        for address, status in statuses.items():
            email_, key = normalize(address)
            initial = Status.UNCONFIRMED if status == Status.UNCONFIRMED else Status.CONFIRMED
            subscriber = store.add(email_, key, status=initial)
            if status not in (Status.UNCONFIRMED, Status.CONFIRMED):
                subscriber = store.set_status(subscriber.public_id, status)
            made[address] = subscriber
        return made
    finally:
        store.close()


def add_confirmed_bulk(settings: Settings, count: int, domain: str = "example.com") -> None:
    """Many confirmed subscribers at once (one transaction), for the crash test and benches."""
    store = Subscribers.open(settings.database)
    try:
        now = store.database.now()
        with store.database.transaction() as db:
            db.executemany(
                "INSERT INTO subscribers (public_id, email, email_key, status, confirm_nonce,"
                " created_at, status_changed_at, confirmed_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                [(f"pub-{n:07d}", f"reader{n}@{domain}", f"reader{n}@{domain}", "confirmed",
                  "n", now, now, now) for n in range(count)],
            )  # fmt: skip
    finally:
        store.close()


def outbox_messages(folder: Path) -> list[email.message.EmailMessage]:
    return [
        email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
        for path in sorted(Path(folder).glob("*.eml"))
    ]


def recipients(messages) -> list[str]:
    return sorted(str(message["To"]) for message in messages)


# Hostile feed text: what once steered the bytes of an email ------------------------------------
OLD_MARKS = (  # the composer's fixed placeholders before issue 17
    "to-placeholder-7f3a9c@placeholder.invalid",
    "<id-placeholder-7f3a9c@placeholder.invalid>",
    "https://unsubscribe-placeholder-7f3a9c.invalid/u",
    "TEXTBODYPLACEHOLDER7f3a9c",
    "HTMLBODYPLACEHOLDER7f3a9c",
)
HOSTILE_TEXTS = (
    *OLD_MARKS,
    "%recipient.unsubscribe_url%",  # Mailgun's recipient variables
    "%recipient.message_id%",
    "Hello\r\nReply-To: attacker@evil.example",  # header text
)
ATTACKER_DEK = "Reply-To: attacker@evil.example"


def write_feed(path: Path, items, *, old: bool = False) -> Path:
    """An RSS feed as the blog writes it, each item (n, title, dek, summary_html) with its own
    guid and link, published in the last two days (item n: (n % 48) + 1 hours ago); `old`: with
    the one item of the first run."""
    entries = [] if not old else [(0, "Old one", "", "<p>Old.</p>")]
    entries += list(items)
    xml = "".join(
        f"<item><title>{escape(title)}</title><link>{SITE_URL}/2026/item-{n}/</link>"
        f'<guid isPermaLink="false">urn:uuid:item-{n}</guid>'
        f"<st:subtitle>{escape(dek)}</st:subtitle><description>{escape(summary)}</description>"
        f"<pubDate>{format_datetime(datetime.now(UTC) - timedelta(hours=n % 48 + 1))}</pubDate>"
        "</item>"
        for n, title, dek, summary in entries
    )
    path.write_text(
        '<?xml version="1.0" encoding="UTF-8"?><rss version="2.0" '
        f'xmlns:st="{NAMESPACE}"><channel><title>Walk Again</title><link>{SITE_URL}/</link>'
        f"<description>d</description>{xml}</channel></rss>",
        encoding="utf-8",
    )
    return path


def as_words(text: str) -> str:
    return " ".join(text.split())


def assert_whole_email(message, settings: Settings, to: str, *, subject: str, shows: str) -> None:
    """`message` (as a mail program reads it) has every header an announcement has, each once
    and with our values (Reply-To only when the settings set it), is multipart/alternative text
    + HTML, its Subject is `subject`, and it shows `shows` as plain words in the text and the
    HTML."""
    names = ["From", "To", "Subject", "Date", "Message-ID", "List-Unsubscribe",
             "List-Unsubscribe-Post", "List-Id", "MIME-Version", "Content-Type"]  # fmt: skip
    names += ["Reply-To"] if settings.reply_to else []
    assert sorted(message.keys()) == sorted(names), message.keys()
    assert message["From"] == settings.sender and message["To"] == to
    assert message["Subject"] == subject
    assert message["Date"].datetime is not None
    assert message["Reply-To"] == (settings.reply_to or None)
    domain = settings.from_address.domain
    assert re.fullmatch(rf"<[0-9a-zA-Z._-]+\.announce@{re.escape(domain)}>", message["Message-ID"])
    url = str(message["List-Unsubscribe"]).strip("<>")
    assert re.fullmatch(rf"{re.escape(settings.base_url)}/unsubscribe/[\w.-]+", url)
    assert message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert message["List-Id"] == settings.list_id and message["MIME-Version"] == "1.0"
    assert message.get_content_type() == "multipart/alternative"
    assert [p.get_content_type() for p in message.iter_parts()] == ["text/plain", "text/html"]
    text = message.get_body(("plain",)).get_content()
    html = message.get_body(("html",)).get_content()
    assert as_words(shows) in as_words(text) and as_words(shows) in as_words(
        BeautifulSoup(html, "html.parser").get_text()
    )
    # The reader's own values are where they belong, and only there.
    assert to not in message["Subject"] and url not in message["Subject"]
    assert f"Unsubscribe with one click: {url}" in as_words(text)
    assert BeautifulSoup(html, "html.parser").find("a", string="Unsubscribe")["href"] == url


def archive(count: int, start: int = 1) -> list[tuple[int, str, str, str]]:
    """`count` items for `write_feed`: what a feed that re-guids its archive looks like."""
    return [(n, f"Archive item {n}", "", f"<p>Item {n}.</p>") for n in range(start, start + count)]
