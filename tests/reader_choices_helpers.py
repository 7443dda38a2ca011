"""Helpers for the topics-and-frequency tests (issue 20): a feed whose items say their topic,
readers with a choice, and who received what in an outbox."""

from __future__ import annotations

import email
import email.policy
from datetime import datetime
from email.utils import format_datetime
from html import escape
from pathlib import Path

from blog.feed_contract import NAMESPACE, TOPIC_DOMAIN
from newsletter.database import Database
from newsletter.settings import Settings
from newsletter.subscriptions.addresses import normalize
from newsletter.subscriptions.choices import Choice, Choices
from newsletter.subscriptions.subscribers import Status, Subscribers
from tests.conftest import SITE_URL


def topic_feed(path: Path, items: list[tuple[int, str, str, datetime]]) -> Path:
    """An RSS feed as the blog writes it: items (n, title, topic, published), each with its
    guid, link and `<category domain="topic">`."""
    xml = "".join(
        f"<item><title>{escape(title)}</title><link>{SITE_URL}/2026/item-{n}/</link>"
        f'<guid isPermaLink="false">urn:uuid:item-{n}</guid>'
        f'<category>{escape(topic.title())}</category><category domain="{TOPIC_DOMAIN}">'
        f"{escape(topic)}</category><description>&lt;p&gt;About {escape(title)}.&lt;/p&gt;"
        f"</description><pubDate>{format_datetime(published)}</pubDate></item>"
        for n, title, topic, published in items
    )
    path.write_text(
        '<?xml version="1.0" encoding="UTF-8"?><rss version="2.0" '
        f'xmlns:st="{NAMESPACE}"><channel><title>Walk Again</title><link>{SITE_URL}/</link>'
        f"<description>d</description>{xml}</channel></rss>",
        encoding="utf-8",
    )
    return path


def add_readers(settings: Settings, choices: dict[str, Choice], clock=None) -> dict[str, int]:
    """Confirmed readers with these choices; their row ids by address."""
    database = Database(settings.database, **({"clock": clock} if clock else {}))
    try:
        store, made = Subscribers(database), {}
        for address, choice in choices.items():
            email, key = normalize(address)
            subscriber = store.add(email, key, status=Status.CONFIRMED)
            Choices(database).set(subscriber.id, choice)
            made[address] = subscriber.id
        return made
    finally:
        database.close()


def set_choice(settings: Settings, subscriber_id: int, choice: Choice, clock=None) -> None:
    database = Database(settings.database, **({"clock": clock} if clock else {}))
    try:
        Choices(database).set(subscriber_id, choice)
    finally:
        database.close()


def take(settings: Settings) -> dict[str, list[str]]:
    """What the outbox holds now, taken out of it: each address -> the titles it received,
    sorted (a digest: each of its items, and "digest: N" for the email itself)."""
    got: dict[str, list[str]] = {}
    for path in sorted(Path(settings.outbox).glob("*.eml")):
        (message,) = outbox_messages_of(path)
        text = message.get_body(("plain",)).get_content()
        titles = [line.split(". ", 1)[1] for line in text.splitlines() if _numbered(line)]
        if titles:
            titles.append(f"digest: {len(titles)}")
        else:  # one article: its subject is its title
            titles = [str(message["Subject"])]
        got.setdefault(str(message["To"]), []).extend(titles)
        path.unlink()
    return {address: sorted(titles) for address, titles in got.items()}


def outbox_messages_of(path: Path):
    return [email.message_from_bytes(path.read_bytes(), policy=email.policy.default)]


def _numbered(line: str) -> bool:
    head, _, rest = line.partition(". ")
    return head.isdigit() and bool(rest)
