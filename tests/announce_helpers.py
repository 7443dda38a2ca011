"""Helpers for the announcement tests: fixture sites built by Pelican, settings over tmp_path,
subscribers in every state, and an SMTP sink on 127.0.0.1 that counts and misbehaves."""

from __future__ import annotations

import email
import email.policy
import threading
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

from aiosmtpd.smtp import SMTP

from newsletter.settings import Settings
from newsletter.subscriptions.addresses import normalize
from newsletter.subscriptions.subscribers import Status, Subscribers
from tests.conftest import build_site
from tests.smtp_server import _Controller

SITEURL = "https://walkagain.example"
SECRET = "announce-tests-secret-key-" + "k" * 20


def recent(hours: float = 2) -> str:
    """A Pelican date string `hours` ago (the site's timezone is UTC+0 in winter: a margin)."""
    return (datetime.now(UTC) - timedelta(hours=hours)).strftime("%Y-%m-%d %H:%M")


def settings_for(tmp_path: Path, **changes) -> Settings:
    values = dict(
        database=tmp_path / "var" / "newsletter.sqlite3",
        outbox=tmp_path / "var" / "outbox",
        secret_key=SECRET,
        sender="Walk Again <news@walkagain.example>",
        site_url=SITEURL,
        base_url=f"{SITEURL}/newsletter",
        postal_address="Walk Again, 2 Mill Lane, Leeds LS1 1AA",
        announce_retry_delay=0.0,
        announce_retries=3,
    )
    values.update(changes)
    return Settings(**values)


def build(content: Path, output: Path, siteurl: str = SITEURL) -> Path:
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


class _CountingSMTP(SMTP):
    """aiosmtpd's SMTP protocol, counting connections for the handler."""

    def connection_made(self, transport):
        self.event_handler.connections += 1
        super().connection_made(transport)


class Sink:
    """A real SMTP server on 127.0.0.1 that records (recipient, Message-ID) per accepted message.

    Faults: `refuse` = addresses answered 550 at RCPT TO; `temporary` = {address: [codes]}:
    each attempt for that address takes the next code ("421" at MAIL FROM, "451" at DATA,
    "drop": the connection closes after the data, with no answer) until the list is empty.
    `parse=False` keeps only the envelope (fast, for thousands of messages)."""

    def __init__(self, *, refuse=(), temporary=None, parse=True):
        self.refuse = {address.lower() for address in refuse}
        self.temporary = {k.lower(): list(v) for k, v in (temporary or {}).items()}
        self.parse = parse
        self.lock = threading.Lock()
        self.accepted: Counter[str] = Counter()
        self.messages: list = []
        self.connections = 0
        self.transactions = 0
        self.controller = _Controller(
            self,
            hostname="127.0.0.1",
            port=0,
            ready_timeout=10,
        )
        self.controller.factory = lambda: _CountingSMTP(self, **self.controller.SMTP_kwargs)

    def __enter__(self) -> Sink:
        self.controller.start()
        self.connections = 0  # not the controller's own check that the server is up
        return self

    def __exit__(self, *exc) -> None:
        self.controller.stop()

    @property
    def port(self) -> int:
        return self.controller.port

    def _fault(self, envelope, stage: str) -> str | None:
        rcpt = envelope.rcpt_tos[0].lower() if envelope.rcpt_tos else ""
        with self.lock:
            codes = self.temporary.get(rcpt)
            if codes and _stage(codes[0]) == stage:
                return codes.pop(0)
        return None

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if address.lower() in self.refuse:
            return "550 5.1.1 No such user here"
        envelope.rcpt_tos.append(address)
        with self.lock:
            codes = self.temporary.get(address.lower())
            if codes and codes[0] == "421":
                codes.pop(0)  # the client hangs up after a 421, as smtplib does
                return "421 4.3.2 Service not available, closing transmission channel"
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        fault = self._fault(envelope, "data")
        if fault == "451":
            return "451 4.3.0 Mailbox busy, try again later"
        if fault == "drop":
            server.transport.close()
            return "250 never seen"
        with self.lock:
            self.transactions += 1
            for rcpt in envelope.rcpt_tos:
                self.accepted[rcpt.lower()] += 1
            if self.parse:
                self.messages.append(
                    email.message_from_bytes(envelope.content, policy=email.policy.default)
                )
        return "250 2.0.0 Message accepted for delivery"

    def wait_for(self, count: int, timeout: float = 10.0) -> None:
        deadline = time.monotonic() + timeout
        while sum(self.accepted.values()) < count and time.monotonic() < deadline:
            time.sleep(0.02)


def _stage(code: str) -> str:
    return "rcpt" if code == "421" else "data"
