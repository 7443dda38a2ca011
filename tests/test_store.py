"""The subscriber store on a real SQLite file: schema, states, the email queue, many writers."""

import sqlite3
import threading
from datetime import timedelta

import pytest

from newsletter.subscriptions.addresses import InvalidAddress, normalize
from newsletter.subscriptions.subscribers import (
    SCHEMA,
    Confirmation,
    Outcome,
    Status,
    Store,
    StoreError,
    migrations,
    split_statements,
    utcnow,
)


class Clock:
    def __init__(self):
        self.now = utcnow()

    def __call__(self):
        return self.now

    def advance(self, **kwargs):
        self.now += timedelta(**kwargs)


@pytest.fixture
def clock():
    return Clock()


@pytest.fixture
def store(tmp_path, clock):
    store = Store(tmp_path / "var" / "newsletter.sqlite3", clock=clock)
    yield store
    store.close()


def subscribe(store, address, **kwargs):
    email, key = normalize(address)
    return store.request_subscription(email, key, **kwargs)


def schema_of(path):
    db = sqlite3.connect(path)
    try:
        rows = db.execute(
            "SELECT type, name, tbl_name FROM sqlite_master WHERE name NOT LIKE 'sqlite_%'"
            " ORDER BY name"
        ).fetchall()
        columns = {
            name: db.execute(f"PRAGMA table_info({name})").fetchall()
            for kind, name, _ in rows
            if kind == "table"
        }
        indexes = {
            name: db.execute(f"PRAGMA index_info({name})").fetchall()
            for kind, name, _ in rows
            if kind == "index"
        }
        checks = {
            name: sql for name, sql in db.execute("SELECT name, sql FROM sqlite_master")
        }  # CHECK and REFERENCES clauses live only in the SQL text
        version = db.execute("PRAGMA user_version").fetchone()[0]
    finally:
        db.close()
    normalised = {name: " ".join(sql.split()) if sql else sql for name, sql in checks.items()}
    return rows, columns, indexes, normalised, version


def test_new_database_is_wal_with_the_schema_and_latest_version(store):
    assert store.path.is_file()
    assert store.db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert store.db.execute("PRAGMA busy_timeout").fetchone()[0] >= 5000
    assert store.db.execute("PRAGMA foreign_keys").fetchone()[0] == 1
    assert store.version == migrations()[-1][0]
    assert Store(store.path).migrate() == store.version  # running again changes nothing


def test_schema_sql_equals_the_migrations_applied_one_by_one(tmp_path):
    fresh = Store(tmp_path / "fresh.sqlite3")  # from schema.sql
    fresh.close()
    stepwise = tmp_path / "stepwise.sqlite3"
    db = sqlite3.connect(stepwise)
    for number, path in migrations():
        for statement in split_statements(path.read_text()):
            db.execute(statement)
        db.execute(f"PRAGMA user_version = {number}")
        db.commit()
    db.close()
    assert schema_of(tmp_path / "fresh.sqlite3") == schema_of(stepwise)
    assert "CREATE TABLE subscribers" in SCHEMA.read_text()


def test_an_old_database_is_migrated_and_a_newer_one_refused(tmp_path):
    path = tmp_path / "old.sqlite3"
    db = sqlite3.connect(path)
    db.execute("CREATE TABLE unrelated (x)")  # a database from before migration 0001
    db.commit()
    db.close()
    store = Store(path)
    assert store.version == migrations()[-1][0]
    assert store.subscribers() == []
    store.db.execute("PRAGMA user_version = 999")
    store.close()
    with pytest.raises(StoreError, match="newer than this code"):
        Store(path)


def test_addresses_are_normalised_and_unique_case_insensitively(store):
    assert normalize("  Mark.Williams@Example.COM ") == (
        "Mark.Williams@example.com",
        "mark.williams@example.com",
    )
    assert subscribe(store, "Mark.Williams@Example.COM") == Outcome.QUEUED
    assert subscribe(store, "mark.williams@example.com") == Outcome.THROTTLED
    (only,) = store.subscribers()
    assert only.email == "Mark.Williams@example.com" and only.status == Status.UNCONFIRMED
    with pytest.raises(sqlite3.IntegrityError):
        with store.transaction() as db:
            db.execute(
                "INSERT INTO subscribers (public_id, email, email_key, confirm_nonce, created_at,"
                " status_changed_at) VALUES ('p', 'x', 'mark.williams@example.com', 'n', 't', 't')"
            )
    with pytest.raises(sqlite3.IntegrityError):  # the status enum is enforced by SQLite too
        with store.transaction() as db:
            db.execute("UPDATE subscribers SET status = 'maybe'")


@pytest.mark.parametrize(
    "raw, words",
    [
        ("", "Please enter"),
        ("   ", "Please enter"),
        (None, "Please enter"),
        ("not-an-address", "not a valid email address"),
        ("a@b.c\r\nBcc: x@y.z", "line breaks"),
        ("x" * 290 + "@example.com", "too long"),
        (["a@example.com"], "must be text"),
    ],
)
def test_bad_addresses_are_refused_with_a_reason(raw, words):
    with pytest.raises(InvalidAddress, match=words):
        normalize(raw)


def test_subscribe_records_consent_and_queues_one_email_in_the_same_transaction(store, clock):
    subscribe(store, "a@example.com", source="http://localhost:8000/2026/x/", ip_hash="h1")
    (s,) = store.subscribers()
    assert (s.consent_source, s.consent_ip_hash) == ("http://localhost:8000/2026/x/", "h1")
    assert s.consent_at == s.created_at == s.confirmation_sent_at == s.status_changed_at
    assert len(s.public_id) >= 20 and s.public_id != str(s.id)  # random, not the row id
    (email,) = store.emails(s.id)
    assert (email["kind"], email["status"]) == ("confirmation", "queued")


def test_resend_limit_is_ten_minutes(store, clock):
    subscribe(store, "a@example.com")
    clock.advance(minutes=9, seconds=59)
    assert subscribe(store, "a@example.com") == Outcome.THROTTLED
    clock.advance(seconds=2)
    assert subscribe(store, "a@example.com", source="second") == Outcome.QUEUED
    (s,) = store.subscribers()
    assert len(store.emails(s.id)) == 2 and s.consent_source == "second"


def test_states_and_their_timestamps(store, clock):
    subscribe(store, "a@example.com")
    s = store.subscribers()[0]
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
    # Bounces and complaints keep their status; a complained address is never mailed again.
    store.set_status(s.public_id, Status.COMPLAINED)
    assert store.unsubscribe(s.public_id).status == Status.COMPLAINED
    clock.advance(minutes=11)
    assert subscribe(store, "a@example.com") == Outcome.BLOCKED
    assert store.get(s.public_id).complained_at is not None
    assert store.confirm("no-such-id", "x") == (Confirmation.UNKNOWN, None)


def test_forget_deletes_every_trace(store):
    subscribe(store, "a@example.com", source="page", ip_hash="h")
    subscribe(store, "b@example.com")
    gone = store.forget("a@example.com")
    assert gone.email == "a@example.com"
    assert [s.email for s in store.subscribers()] == ["b@example.com"]
    rows = store.db.execute("SELECT * FROM email_queue").fetchall()
    assert [row["subscriber_id"] for row in rows] == [store.subscribers()[0].id]
    assert store.forget("a@example.com") is None


def test_queue_claims_each_email_once_and_retries_with_a_lease(store, clock):
    for n in range(3):
        subscribe(store, f"r{n}@example.com")
    first = store.claim(limit=2)
    assert [e.attempts for e in first] == [1, 1]
    second = store.claim(limit=5)
    assert len(second) == 1 and {e.id for e in first}.isdisjoint({e.id for e in second})
    assert store.claim() == []
    store.mark_sent(first[0].id)
    store.mark_retry(first[1].id, "451 try later", delay=60)
    store.mark_failed(second[0].id, "550 no such user")
    assert store.claim() == []
    clock.advance(seconds=61)
    (retry,) = store.claim()
    assert retry.id == first[1].id and retry.attempts == 2
    # A sender that died mid-send: after the lease its email is claimed again.
    clock.advance(minutes=11)
    (again,) = store.claim()
    assert again.id == retry.id and again.attempts == 3
    counts = store.counts()["emails"]
    assert counts == {"queued": 0, "sending": 1, "sent": 1, "failed": 1, "skipped": 0}


def test_many_threads_write_without_database_is_locked(tmp_path):
    stores = [Store(tmp_path / "busy.sqlite3") for _ in range(2)]  # two "processes"
    errors = []

    def work(n):
        try:
            store = stores[n % 2]
            for i in range(25):
                subscribe(store, f"user{i}@example.com")  # everyone races on the same 25
                subscribe(store, f"t{n}-{i}@example.com")
                store.claim(limit=3)
        except Exception as error:  # noqa: BLE001 - collected and asserted below
            errors.append(repr(error))

    threads = [threading.Thread(target=work, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    counts = stores[0].counts()
    assert sum(counts["subscribers"].values()) == 25 + 8 * 25
    assert sum(counts["emails"].values()) == 25 + 8 * 25  # one confirmation per address
    for store in stores:
        store.close()
