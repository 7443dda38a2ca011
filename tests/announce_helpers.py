"""Helpers for the announcement tests: fixture sites built by Pelican, subscribers in every state,
and the emails in an outbox. (The settings: tests.conftest; the SMTP sink: tests.smtp_server.)"""

from __future__ import annotations

import email
import email.policy
from datetime import UTC, datetime, timedelta
from pathlib import Path

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


def add_subscribers(settings: Settings, statuses: dict[str, Status]) -> dict[str, object]:
    """Subscribers with the given statuses (set through the store's own transitions)."""
    store = Subscribers.open(settings.database)
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
