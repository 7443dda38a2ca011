"""The queue and the background sender against a real SMTP server that fails, then recovers."""

import time

import pytest

from newsletter.subscriptions.addresses import normalize
from newsletter.subscriptions.queue import EmailQueue
from newsletter.subscriptions.sender import Sender
from newsletter.subscriptions.subscribers import Status, Subscribers
from newsletter.subscriptions.tokens import Tokens
from tests.conftest import newsletter_settings
from tests.smtp_server import SmtpSink


def make(tmp_path, port=None, **changes):
    settings = newsletter_settings(
        tmp_path,
        transport="smtp" if port else "outbox",
        smtp_host="127.0.0.1",
        smtp_port=port or 0,
        smtp_security="none",
        smtp_timeout=2,
        retry_delay=0.05,
        **changes,
    )
    store = Subscribers.open(settings.database)
    return settings, store, Sender(settings, store.database, Tokens(settings.secret_key))


def subscribe(store, address):
    return store.request_subscription(*normalize(address))


@pytest.mark.parametrize("faults", [["421"], ["451", "451"], ["drop"], ["421", "drop", "451"]])
def test_confirmation_arrives_exactly_once_after_the_server_recovers(tmp_path, faults):
    with SmtpSink(faults=faults) as server:
        settings, store, sender = make(tmp_path, server.port)
        subscribe(store, "reader@example.com")
        counts = sender.drain(timeout=15)
        received = server.wait_for(1)
        time.sleep(0.1)  # nothing else is on its way
        assert len(server.messages) == 1
    assert counts == {"queued": 0, "sending": 0, "sent": 1, "failed": 0, "skipped": 0}
    assert received[0]["To"] == "reader@example.com"
    assert server.transactions == len(faults) + 1
    (row,) = EmailQueue(store.database).emails()
    assert row["attempts"] == len(faults) + 1 and row["last_error"] is None
    store.close()


def test_permanent_refusal_fails_without_retrying_and_keeps_the_others_going(tmp_path):
    with SmtpSink(faults=["550"]) as server:
        settings, store, sender = make(tmp_path, server.port)
        subscribe(store, "gone@example.com")
        subscribe(store, "here@example.com")
        counts = sender.drain(timeout=10)
        assert [m["To"] for m in server.wait_for(1)] == ["here@example.com"]
    assert (counts["failed"], counts["sent"]) == (1, 1)
    failed = [row for row in EmailQueue(store.database).emails() if row["status"] == "failed"]
    assert "550" in failed[0]["last_error"] and failed[0]["attempts"] == 1
    store.close()


def test_gives_up_after_max_attempts_with_backoff(tmp_path):
    with SmtpSink(faults=["451"] * 10) as server:
        settings, store, sender = make(tmp_path, server.port, max_attempts=3)
        subscribe(store, "reader@example.com")
        counts = sender.drain(timeout=10)
    assert counts["failed"] == 1 and server.transactions == 3
    (row,) = EmailQueue(store.database).emails()
    assert row["last_error"].startswith("gave up after 3 attempts") and "451" in row["last_error"]
    store.close()


def test_outdated_confirmation_is_skipped_not_sent(tmp_path):
    settings, store, sender = make(tmp_path)
    subscribe(store, "reader@example.com")
    store.unsubscribe(store.list()[0].public_id)  # left before the email went out
    assert sender.drain(timeout=5)["skipped"] == 1
    assert not list(settings.outbox.glob("*.eml"))
    store.close()


def test_background_thread_sends_as_soon_as_woken_and_stops(tmp_path):
    settings, store, sender = make(tmp_path)
    sender.start()
    try:
        started = time.monotonic()
        subscribe(store, "reader@example.com")
        sender.wake()
        while not list(settings.outbox.glob("*.eml")) and time.monotonic() - started < 5:
            time.sleep(0.01)
        assert time.monotonic() - started < 1.0
        assert store.list()[0].status == Status.UNCONFIRMED
    finally:
        sender.stop()
    assert not sender.running
    store.close()
