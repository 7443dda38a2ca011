"""The background sender (confirmations through the one outgoing-mail ledger and dispatcher)
against a real SMTP server that fails, then recovers."""

import os
import signal
import subprocess
import sys
import time
from datetime import timedelta

import pytest

from blog.build import ROOT
from newsletter.database import utcnow
from newsletter.outgoing.ledger import LEASE, MailLedger
from newsletter.subscriptions.addresses import normalize
from newsletter.subscriptions.sender import Sender
from newsletter.subscriptions.subscribers import CONFIRMATION, Status, Subscribers
from newsletter.subscriptions.tokens import Tokens
from tests.conftest import newsletter_settings
from tests.smtp_server import SmtpSink

pytestmark = pytest.mark.usefixtures("backend")  # on both databases


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
    (row,) = MailLedger(store.database).rows(CONFIRMATION)
    assert row["attempts"] == len(faults) + 1 and row["last_error"] is None
    store.close()


def test_permanent_refusal_fails_without_retrying_bounces_and_keeps_the_others_going(tmp_path):
    with SmtpSink(faults=["550"]) as server:
        settings, store, sender = make(tmp_path, server.port)
        subscribe(store, "gone@example.com")
        subscribe(store, "here@example.com")
        counts = sender.drain(timeout=10)
        assert [m["To"] for m in server.wait_for(1)] == ["here@example.com"]
    assert (counts["failed"], counts["sent"]) == (1, 1)
    failed = [
        row for row in MailLedger(store.database).rows(CONFIRMATION) if row["status"] == "failed"
    ]
    assert "550" in failed[0]["last_error"] and failed[0]["attempts"] == 1
    # The refusal is a hard bounce: that address is never mailed again.
    assert [s.email for s in store.list(Status.BOUNCED)] == ["gone@example.com"]
    store.close()


def test_gives_up_after_max_attempts_with_backoff(tmp_path):
    with SmtpSink(faults=["451"] * 10) as server:
        settings, store, sender = make(tmp_path, server.port, max_attempts=3)
        subscribe(store, "reader@example.com")
        counts = sender.drain(timeout=10)
    assert counts["failed"] == 1 and server.transactions == 3
    (row,) = MailLedger(store.database).rows(CONFIRMATION)
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


@pytest.mark.slow
@pytest.mark.both_backends  # a promise to keep on PostgreSQL too
def test_sigkill_in_the_middle_of_600_confirmations_then_a_rerun_after_the_lease(tmp_path):
    """The crash promise for confirmations (as for announcements, tests/test_announce_smtp.py):
    a sender killed with SIGKILL mid-send (no cleanup at all) loses nothing: a sender that looks
    once the dead one's lease has run out sends every confirmation it had not, and at most the
    one in flight at the kill (the sender sends one at a time) arrives twice."""
    count = 600
    with SmtpSink(parse=False) as server:
        settings, store, _ = make(tmp_path, server.port)
        pairs = [normalize(f"reader{n}@example.com") for n in range(count)]
        assert len(store.add_many(pairs, status=Status.UNCONFIRMED, source="import")) == count
        store.close()
        env = {k: v for k, v in os.environ.items() if not k.startswith("NEWSLETTER_")}
        env.update(
            NEWSLETTER_DATABASE=str(settings.database),
            NEWSLETTER_SECRET_KEY=settings.secret_key,
            NEWSLETTER_TRANSPORT="smtp",
            NEWSLETTER_SMTP_HOST="127.0.0.1",
            NEWSLETTER_SMTP_PORT=str(server.port),
            NEWSLETTER_SMTP_SECURITY="none",
            NEWSLETTER_FROM=settings.sender,
            NEWSLETTER_SITE_URL=settings.site_url,
            NEWSLETTER_BASE_URL=settings.base_url,
            NEWSLETTER_POSTAL_ADDRESS=settings.postal_address,
        )
        script = (
            "from newsletter.settings import load\n"
            "from newsletter.subscriptions import admin\n"
            "admin.send_queued(load(), timeout=120)\n"
        )
        sender = subprocess.Popen([sys.executable, "-c", script], env=env, cwd=ROOT)
        try:
            deadline = time.monotonic() + 60
            while sum(server.accepted.values()) < 150 and time.monotonic() < deadline:
                time.sleep(0.005)
            os.kill(sender.pid, signal.SIGKILL)
            sender.wait(10)
        finally:
            if sender.poll() is None:
                sender.kill()
        killed_at = sum(server.accepted.values())
        assert 150 <= killed_at < count, "the sender must die in the middle"
        # Eleven minutes later (the lease is ten), another sender looks.
        later = Subscribers.open(
            settings.database, clock=lambda: utcnow() + LEASE + timedelta(minutes=1)
        )
        try:
            rerun = Sender(settings, later.database, Tokens(settings.secret_key))
            counts = rerun.drain(timeout=60)
        finally:
            later.close()
    assert counts["queued"] == counts["sending"] == 0 and counts["sent"] == count
    assert set(server.accepted) == {f"reader{n}@example.com" for n in range(count)}
    assert 0 <= sum(server.accepted.values()) - count <= 1  # the one in flight at the kill
