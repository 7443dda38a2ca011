"""Per announcement and for the last 30 days: sent, bounces, complaints, the complaint rate, and
the warnings, from a real ledger and real feedback events; and `invoke subscribers.stats` and
`subscribers.list --status` printing them."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from newsletter.announcements.feed import FeedItem
from newsletter.announcements.ledger import Draft, Ledger
from newsletter.announcements.stats import stats
from newsletter.database import Database
from newsletter.subscriptions.feedback import Event, Feedback, Kind
from newsletter.subscriptions.subscribers import Status
from tests.announce_helpers import add_subscribers

ROOT = Path(__file__).resolve().parent.parent


def announce(ledger, guid):
    item = FeedItem(guid=guid, link=f"https://walkagain.example/{guid}/", title=f"About {guid}")
    (announcement,) = ledger.plan([], [Draft("article", guid, item.title, [item])])
    ids = [r["id"] for r in ledger.deliveries(announcement.id)]
    ledger.outgoing.sent(ids)
    return announcement


def test_events_count_against_the_announcement_sent_before_them(make_settings):
    settings = make_settings()
    readers = {f"r{n}@example.com": Status.CONFIRMED for n in range(500)}
    people = add_subscribers(settings, readers)
    database = Database(settings.database)
    try:
        ledger, feedback = Ledger(database), Feedback(database)
        p1, p2, p3 = (people[f"r{n}@example.com"].public_id for n in (1, 2, 3))
        first = announce(ledger, "one")
        later = datetime.now(UTC) + timedelta(hours=1)
        feedback.record(Event(Kind.HARD_BOUNCE, p1, "ses", later, "no such user"))
        feedback.record(Event(Kind.COMPLAINT, p2, "mailgun", later, "spam"))
        database.db.execute("UPDATE outgoing_mail SET sent_at = '2026-01-01T00:00:00.000000Z'")
        announce(ledger, "two")  # sent now: 498 confirmed subscribers left
        even_later = datetime.now(UTC) + timedelta(hours=2)
        feedback.record(Event(Kind.SOFT_BOUNCE, p3, "ses", even_later, "full"))
        result = stats(database)
        one, two = result.announcements
        assert (one.label, one.sent, one.counts) == (
            f"#{first.id} About one", 500, {"hard_bounce": 1, "soft_bounce": 0, "complaint": 1},
        )  # fmt: skip
        assert (two.sent, two.counts["soft_bounce"], two.counts["complaint"]) == (498, 1, 0)
        assert result.window.sent == 498  # the first one went out long ago
        assert result.window.counts == {"hard_bounce": 1, "soft_bounce": 1, "complaint": 1}
        assert one.complaint_rate == 1 / 500  # 0.2 %: over the 0.1 % warning line
        warnings = result.warnings()
        assert any(w.startswith(f"#{first.id} About one: complaint rate 0.20%") for w in warnings)
        assert not any("bounce rate" in w for w in warnings)
    finally:
        database.close()


def run_task(settings, *args):
    env = {k: v for k, v in os.environ.items() if not k.startswith("NEWSLETTER_")}
    env.update(NEWSLETTER_DATABASE=str(settings.database), NEWSLETTER_OUTBOX=str(settings.outbox))
    invoke = Path(sys.executable).parent / "invoke"
    return subprocess.run([str(invoke), *args], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=60)  # fmt: skip


@pytest.mark.slow
def test_the_tasks_print_the_stats_and_the_last_reason(make_settings):
    settings = make_settings()
    people = add_subscribers(
        settings, {"a@example.com": Status.CONFIRMED, "b@example.com": Status.CONFIRMED}
    )
    database = Database(settings.database)
    try:
        announce(Ledger(database), "one")
        reader = people["a@example.com"].public_id
        Feedback(database).record(Event(Kind.HARD_BOUNCE, reader, "mailbox",
                                        datetime.now(UTC) + timedelta(minutes=5),
                                        "550 5.1.1 mailbox unavailable"))  # fmt: skip
    finally:
        database.close()
    out = run_task(settings, "subscribers.stats")
    assert out.returncode == 0, out.stderr
    assert "Announcements and what came back:" in out.stdout
    assert "WARNING" in out.stdout and "bounce rate 50.00%" in out.stdout
    listed = run_task(settings, "subscribers.list", "--status", "bounced")
    assert listed.returncode == 0, listed.stderr
    assert "a@example.com" in listed.stdout and "550 5.1.1 mailbox unavailable" in listed.stdout
    assert "b@example.com" not in listed.stdout
