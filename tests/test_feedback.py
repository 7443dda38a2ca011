"""Provider feedback in one vocabulary, applied to the subscriber its proof names, over a real
SQLite file; reports without proof are kept for review and change nobody."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from newsletter.subscriptions.addresses import normalize
from newsletter.subscriptions.feedback import (
    MAX_NAMES,
    Applied,
    Claim,
    Event,
    Feedback,
    Kind,
)
from newsletter.subscriptions.subscribers import Status, Subscribers

NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
JOINED = NOW - timedelta(days=60)  # when the readers subscribed


@pytest.fixture
def world(make_settings):
    settings = make_settings()
    moment = [JOINED]
    store = Subscribers.open(settings.database, clock=lambda: moment[0])
    people = {}
    for n in range(4):
        email, key = normalize(f"r{n}@example.com")
        people[email] = store.add(email, key, status=Status.CONFIRMED)
    moment[0] = NOW
    yield Feedback(store.database, soft_limit=3, soft_days=30), store, people
    store.close()


@pytest.fixture
def record(world):
    feedback, _store, people = world

    def record(
        kind, email="r0@example.com", days_ago=0.0, key=None, reason="550 5.1.1 no such user"
    ):
        public_id = people[email].public_id if email in people else "nobody-we-know-0000"
        return feedback.record(Event(kind, public_id, "test", NOW - timedelta(days=days_ago),
                                     reason, "<m@x>", key))  # fmt: skip

    return record


def test_a_hard_bounce_bounces_and_a_complaint_complains_at_once(world, record):
    feedback, store, _ = world
    assert record(Kind.HARD_BOUNCE) == Applied.BOUNCED
    assert store.find("r0@example.com").status == Status.BOUNCED
    assert record(Kind.COMPLAINT, "r1@example.com") == Applied.COMPLAINED
    assert store.find("r1@example.com").status == Status.COMPLAINED
    # A complaint is worse than a bounce: it wins; nothing beats a complaint.
    assert record(Kind.COMPLAINT) == Applied.COMPLAINED
    assert record(Kind.HARD_BOUNCE, "r1@example.com") == Applied.UNCHANGED
    assert store.find("r1@example.com").status == Status.COMPLAINED
    assert "no such user" in feedback.last_reason(store.find("r1@example.com").id)


def test_soft_bounces_bounce_at_the_limit_within_the_window(world, record):
    _feedback, store, _ = world
    assert record(Kind.SOFT_BOUNCE, days_ago=40) == Applied.COUNTED  # too old to count later
    assert record(Kind.SOFT_BOUNCE, days_ago=20) == Applied.COUNTED
    assert record(Kind.SOFT_BOUNCE, days_ago=10) == Applied.COUNTED
    assert store.find("r0@example.com").status == Status.CONFIRMED
    assert record(Kind.SOFT_BOUNCE) == Applied.BOUNCED  # 3 within 30 days
    assert store.find("r0@example.com").status == Status.BOUNCED


def test_the_same_report_twice_changes_nothing_and_strangers_are_not_stored(world, record):
    _feedback, store, _ = world
    assert record(Kind.SOFT_BOUNCE, key="mailgun:abc") == Applied.COUNTED
    for _ in range(3):
        assert record(Kind.SOFT_BOUNCE, key="mailgun:abc") == Applied.DUPLICATE
    assert store.find("r0@example.com").status == Status.CONFIRMED
    assert record(Kind.HARD_BOUNCE, "stranger@example.com") == Applied.UNKNOWN
    count = store.database.db.execute("SELECT count(*) FROM feedback_events").fetchone()[0]
    assert count == 1


def test_an_event_from_before_the_current_subscription_is_stale(world, record):
    """A genuine report from before someone (re)subscribed, replayed after: it touches nobody,
    and nothing is stored."""
    _feedback, store, people = world
    assert record(Kind.HARD_BOUNCE, days_ago=61) == Applied.STALE  # before they joined
    store.unsubscribe(people["r1@example.com"].public_id)
    store.request_subscription("r1@example.com", "r1@example.com", resend_interval=0)  # at NOW
    store.confirm(people["r1@example.com"].public_id, store.find("r1@example.com").confirm_nonce)
    assert store.find("r1@example.com").status == Status.CONFIRMED
    assert record(Kind.COMPLAINT, "r1@example.com", days_ago=1) == Applied.STALE
    assert store.find("r1@example.com").status == Status.CONFIRMED
    assert store.database.db.execute("SELECT count(*) FROM feedback_events").fetchone()[0] == 0


def test_unsubscribed_readers_keep_their_choice_and_forget_erases_the_events(world, record):
    _feedback, store, people = world
    store.unsubscribe(people["r2@example.com"].public_id)
    assert record(Kind.COMPLAINT, "r2@example.com") == Applied.UNCHANGED
    assert store.find("r2@example.com").status == Status.UNSUBSCRIBED
    record(Kind.HARD_BOUNCE, "r3@example.com")
    store.forget("r3@example.com")
    rows = store.database.db.execute("SELECT subscriber_id FROM feedback_events").fetchall()
    assert [row[0] for row in rows] == [people["r2@example.com"].id]


def test_a_claim_without_proof_is_kept_once_capped_and_changes_nobody(world):
    feedback, store, _ = world
    names = ["r0@example.com", "R1@Example.com", *(f"x{n}@example.org" for n in range(30))]
    claim = Claim("mailbox", "mailbox:<forged@evil>", "hard_bounce", tuple(names),
                  "no proof", reason="x" * 5000, subject="y" * 5000,
                  message_id="<" + "z" * 5000 + ">")  # fmt: skip
    assert feedback.review(claim) == Applied.REVIEW
    assert feedback.review(claim) == Applied.REVIEW  # read again: kept once
    [review] = feedback.reviews()
    assert len(review.addresses) == MAX_NAMES and list(review.addresses[:2]) == names[:2]
    assert len(review.reason) <= 300 and len(review.subject) <= 200
    assert len(review.message_id) <= 300
    assert {s.status for s in store.list()} == {Status.CONFIRMED}
    assert store.database.db.execute("SELECT count(*) FROM feedback_events").fetchone()[0] == 0
    # about nobody on the list: not kept at all
    stranger = Claim("mailbox", "mailbox:<other>", "complaint", ("who@example.net",), "no proof")
    assert feedback.review(stranger) == Applied.UNKNOWN
    assert len(feedback.reviews()) == 1
    # forgetting an address erases the reviews that name it
    assert feedback.forget_reviews(normalize("r1@example.com")[1]) == 1
    assert feedback.reviews() == []


def test_a_long_event_key_is_stored_as_a_digest_and_still_deduplicates(world, record):
    key = "mailbox:<" + "k" * 5000 + "@evil>:r0@example.com"
    assert record(Kind.SOFT_BOUNCE, key=key) == Applied.COUNTED
    assert record(Kind.SOFT_BOUNCE, key=key) == Applied.DUPLICATE
    feedback, _store, _ = world
    [(stored,)] = feedback.database.db.execute("SELECT event_key FROM feedback_events")
    assert len(stored) < 150
