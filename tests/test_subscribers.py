"""Subscribers on a real SQLite file: consent, the states and their timestamps, forgetting."""

import pytest

from newsletter.database import INTEGRITY
from newsletter.outgoing.ledger import MailLedger
from newsletter.subscriptions.addresses import normalize
from newsletter.subscriptions.subscribers import (
    CONFIRMATION,
    Confirmation,
    Outcome,
    Status,
    Subscribers,
)


@pytest.fixture
def store(database_target, clock):
    store = Subscribers.open(database_target, clock=clock)
    yield store
    store.close()


def subscribe(store, address, **kwargs):
    email, key = normalize(address)
    return store.request_subscription(email, key, **kwargs)


def test_addresses_are_normalised_and_unique_case_insensitively(store):
    assert normalize("  Mark.Williams@Example.COM ") == (
        "Mark.Williams@example.com",
        "mark.williams@example.com",
    )
    assert subscribe(store, "Mark.Williams@Example.COM") == Outcome.QUEUED
    assert subscribe(store, "mark.williams@example.com") == Outcome.THROTTLED
    (only,) = store.list()
    assert only.email == "Mark.Williams@example.com" and only.status == Status.UNCONFIRMED
    with pytest.raises(INTEGRITY):
        with store.database.transaction() as db:
            db.execute(
                "INSERT INTO subscribers (public_id, email, email_key, confirm_nonce, created_at,"
                " status_changed_at) VALUES ('p', 'x', 'mark.williams@example.com', 'n', 't', 't')"
            )
    with pytest.raises(INTEGRITY):  # the status enum is enforced by SQLite too
        with store.database.transaction() as db:
            db.execute("UPDATE subscribers SET status = 'maybe'")


def test_one_row_per_mailbox_never_two_mailboxes_in_one_row(store):
    """Issue 17: casefold() keys merged `ſam@` with `sam@` and `straße.de` with `strasse.de`, so
    whoever signed up the odd spelling first received every confirmation the owner asked for."""
    for address in ["ſam@example.com", "sam@example.com", "joe@straße.de", "joe@strasse.de",
                    "user@bücher.de"]:  # fmt: skip
        assert subscribe(store, address) == Outcome.QUEUED, address
    for spelling in ["user@xn--bcher-kva.de", "user@bu\u0308cher.de", "USER@Bücher.de"]:
        assert subscribe(store, spelling) == Outcome.THROTTLED, spelling  # the same mailbox
    emails = sorted(s.email for s in store.list())
    assert emails == sorted(["ſam@example.com", "sam@example.com", "joe@straße.de",
                             "joe@strasse.de", "user@bücher.de"])  # fmt: skip
    queued = MailLedger(store.database).counts(CONFIRMATION)["queued"]
    assert queued == 5  # one confirmation for each mailbox, to that mailbox


def test_subscribe_records_consent_and_queues_one_email_in_the_same_transaction(store, clock):
    subscribe(store, "a@example.com", source="http://localhost:8000/2026/x/", ip_hash="h1")
    (s,) = store.list()
    assert (s.consent_source, s.consent_ip_hash) == ("http://localhost:8000/2026/x/", "h1")
    assert s.consent_at == s.created_at == s.confirmation_sent_at == s.status_changed_at
    assert len(s.public_id) >= 20 and s.public_id != str(s.id)  # random, not the row id
    (email,) = MailLedger(store.database).rows(CONFIRMATION, subscriber_id=s.id)
    assert (email["kind"], email["status"]) == ("confirmation", "queued")


def test_resend_limit_is_ten_minutes(store, clock):
    subscribe(store, "a@example.com")
    clock.advance(minutes=9, seconds=59)
    assert subscribe(store, "a@example.com") == Outcome.THROTTLED
    clock.advance(seconds=2)
    assert subscribe(store, "a@example.com", source="second") == Outcome.QUEUED
    (s,) = store.list()
    assert (
        len(MailLedger(store.database).rows(CONFIRMATION, subscriber_id=s.id)) == 2
        and s.consent_source == "second"
    )


def test_states_and_their_timestamps(store, clock):
    subscribe(store, "a@example.com")
    s = store.list()[0]
    clock.advance(seconds=5)
    outcome, confirmed = store.confirm(s.public_id, s.confirm_nonce)
    assert outcome == Confirmation.CONFIRMED and confirmed.status == Status.CONFIRMED
    assert confirmed.confirmed_at > s.created_at
    # Idempotent: a replayed confirmation changes nothing.
    assert store.confirm(s.public_id, s.confirm_nonce) == (
        Confirmation.ALREADY_CONFIRMED,
        confirmed,
    )
    assert subscribe(store, "a@example.com") == Outcome.ALREADY_CONFIRMED
    clock.advance(seconds=5)
    left = store.unsubscribe(s.public_id)
    assert left.status == Status.UNSUBSCRIBED and left.unsubscribed_at > confirmed.confirmed_at
    assert store.unsubscribe(s.public_id) == left  # idempotent
    # The old confirmation link cannot bring them back ...
    assert store.confirm(s.public_id, s.confirm_nonce)[0] == Confirmation.STALE
    # ... but asking again (after the re-send interval) starts a new opt-in.
    clock.advance(minutes=11)
    assert subscribe(store, "a@example.com") == Outcome.QUEUED
    again = store.get(s.public_id)
    assert again.status == Status.UNCONFIRMED and again.confirm_nonce != s.confirm_nonce
    assert store.confirm(s.public_id, again.confirm_nonce)[0] == Confirmation.CONFIRMED
    # Bounces and complaints keep their status; a complainer is never announced to again ...
    complained = store.set_status(s.public_id, Status.COMPLAINED)
    assert store.unsubscribe(s.public_id).status == Status.COMPLAINED
    assert store.confirm(s.public_id, again.confirm_nonce)[0] == Confirmation.STALE
    # ... unless they sign up again and confirm: a fresh double opt-in, complained until then.
    clock.advance(minutes=11)
    assert subscribe(store, "a@example.com") == Outcome.QUEUED
    pending = store.get(s.public_id)
    assert pending.status == Status.COMPLAINED and pending.confirm_nonce != complained.confirm_nonce
    assert len(MailLedger(store.database).rows(CONFIRMATION, subscriber_id=s.id)) == 3
    assert store.confirm(s.public_id, pending.confirm_nonce)[0] == Confirmation.CONFIRMED
    assert store.get(s.public_id).complained_at is not None  # the record stays
    assert store.confirm("no-such-id", "x") == (Confirmation.UNKNOWN, None)


def test_forget_deletes_every_trace(store):
    subscribe(store, "a@example.com", source="page", ip_hash="h")
    subscribe(store, "b@example.com")
    gone = store.forget("a@example.com")
    assert gone.email == "a@example.com"
    assert [s.email for s in store.list()] == ["b@example.com"]
    rows = store.database.db.execute("SELECT * FROM outgoing_mail").fetchall()
    assert [row["subscriber_id"] for row in rows] == [store.list()[0].id]
    assert store.forget("a@example.com") is None


def test_recipients_are_what_by_ids_says_in_short(store):
    """Bulk email reads (status, public id, address) per page: the same facts as `by_ids`, for
    the subscribers that still exist, whatever their status."""
    subscribe(store, "a@example.com")
    subscribe(store, "b@example.com")
    first, second = store.list()
    store.confirm(first.public_id, first.confirm_nonce)
    ids = [first.id, second.id, 10**6]  # the last one does not exist
    full = store.by_ids(ids)
    short = store.recipients(ids)
    assert set(short) == set(full) == {first.id, second.id}
    for sid, person in full.items():
        assert short[sid] == (person.status, person.public_id, person.email)
    assert short[first.id][0] == Status.CONFIRMED and short[second.id][0] == Status.UNCONFIRMED
