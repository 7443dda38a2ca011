"""Provider feedback in one vocabulary, applied to the subscribers, over a real SQLite file."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from newsletter.subscriptions.feedback import Applied, Event, Feedback, Kind
from newsletter.subscriptions.subscribers import Status, Subscribers
from tests.announce_helpers import add_subscribers

NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)


@pytest.fixture
def world(make_settings):
    settings = make_settings()
    people = add_subscribers(settings, {f"r{n}@example.com": Status.CONFIRMED for n in range(4)})
    store = Subscribers.open(settings.database)
    yield Feedback(store.database, soft_limit=3, soft_days=30), store, people
    store.close()


def event(kind, email="r0@example.com", days_ago=0.0, key=None, reason="550 5.1.1 no such user"):
    return Event(kind, email, "test", NOW - timedelta(days=days_ago), reason, "<m@x>", key)


def test_a_hard_bounce_bounces_and_a_complaint_complains_at_once(world):
    feedback, store, _ = world
    assert feedback.record(event(Kind.HARD_BOUNCE)) == Applied.BOUNCED
    assert store.find("r0@example.com").status == Status.BOUNCED
    assert feedback.record(event(Kind.COMPLAINT, "r1@example.com")) == Applied.COMPLAINED
    assert store.find("r1@example.com").status == Status.COMPLAINED
    # A complaint is worse than a bounce: it wins; nothing beats a complaint.
    assert feedback.record(event(Kind.COMPLAINT)) == Applied.COMPLAINED
    assert feedback.record(event(Kind.HARD_BOUNCE, "r1@example.com")) == Applied.UNCHANGED
    assert store.find("r1@example.com").status == Status.COMPLAINED
    assert "no such user" in feedback.last_reason(store.find("r1@example.com").id)


def test_soft_bounces_bounce_at_the_limit_within_the_window(world):
    feedback, store, _ = world
    assert feedback.record(event(Kind.SOFT_BOUNCE, days_ago=40)) == Applied.COUNTED  # too old
    assert feedback.record(event(Kind.SOFT_BOUNCE, days_ago=20)) == Applied.COUNTED
    assert feedback.record(event(Kind.SOFT_BOUNCE, days_ago=10)) == Applied.COUNTED
    assert store.find("r0@example.com").status == Status.CONFIRMED
    assert feedback.record(event(Kind.SOFT_BOUNCE)) == Applied.BOUNCED  # 3 within 30 days
    assert store.find("r0@example.com").status == Status.BOUNCED


def test_the_same_report_twice_changes_nothing_and_strangers_are_not_stored(world):
    feedback, store, _ = world
    first = event(Kind.SOFT_BOUNCE, key="mailgun:abc")
    assert feedback.record(first) == Applied.COUNTED
    for _ in range(3):
        assert feedback.record(first) == Applied.DUPLICATE
    assert store.find("r0@example.com").status == Status.CONFIRMED
    assert feedback.record(event(Kind.HARD_BOUNCE, "stranger@example.com")) == Applied.UNKNOWN
    count = store.database.db.execute("SELECT count(*) FROM feedback_events").fetchone()[0]
    assert count == 1


def test_unsubscribed_readers_keep_their_choice_and_forget_erases_the_events(world):
    feedback, store, people = world
    store.unsubscribe(people["r2@example.com"].public_id)
    assert feedback.record(event(Kind.COMPLAINT, "r2@example.com")) == Applied.UNCHANGED
    assert store.find("r2@example.com").status == Status.UNSUBSCRIBED
    feedback.record(event(Kind.HARD_BOUNCE, "r3@example.com"))
    store.forget("r3@example.com")
    rows = store.database.db.execute("SELECT subscriber_id FROM feedback_events").fetchall()
    assert [row[0] for row in rows] == [people["r2@example.com"].id]
