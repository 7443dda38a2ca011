"""Moving house (`newsletter.dbcopy`, `invoke db.copy`): a list of 10,000 readers, with their
consent records, the ledger of outgoing mail, feedback and a report kept for review, copied
from a SQLite file into an empty PostgreSQL database and back into a new file: every row of
every table comes back the same; a non-empty target, or the source itself, is refused and left
as it was."""

from __future__ import annotations

import subprocess
import sys

import pytest

from newsletter import dbcopy
from newsletter.database import Database, stamp, utcnow
from newsletter.outgoing.ledger import MailLedger
from newsletter.subscriptions.subscribers import Status, Subscribers
from tests import backends
from tests.conftest import ROOT

pytestmark = pytest.mark.slow

READERS = 10_000


def fill(target) -> None:
    """10,000 readers (every status, consent records), owed emails, feedback, a review."""
    database = Database(target)
    now = stamp(utcnow())
    statuses = ["confirmed", "unconfirmed", "unsubscribed", "bounced", "complained"]
    with database.transaction() as db:
        db.executemany(
            "INSERT INTO subscribers (public_id, email, email_key, status, confirm_nonce,"
            " created_at, status_changed_at, consent_at, consent_source, consent_ip_hash,"
            " topics, frequency) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [(f"p{n}", f"Reader.{n}@Example.com", f"Reader.{n}@example.com",
              statuses[n % 5], f"n{n}", now, now, now, "https://walkagain.example/2026/x/",
              f"h{n:08x}", None if n % 3 else '["knees"]', "weekly" if n % 7 == 0 else "each")
             for n in range(READERS)],
        )  # fmt: skip
        ids = [row[0] for row in db.execute("SELECT id FROM subscribers ORDER BY id")]
        MailLedger.add(db, "confirmation", ids[:2000], now=now)
        db.executemany(
            "INSERT INTO feedback_events (subscriber_id, kind, provider, reason, message_id,"
            " occurred_at, received_at, event_key) VALUES (?, 'hard_bounce', 'mailgun',"
            " '550 5.1.1 \u00e9t\u00e9 \U0001f600', ?, ?, ?, ?)",
            [(sid, f"<m{sid}@walkagain.example>", now, now, f"mailgun:{sid}") for sid in ids[:300]],
        )  # fmt: skip
        db.execute(
            "INSERT INTO rate_limits (scope, key, tokens, updated) VALUES ('subscribe', ?, 2.5,"
            " 1764900000.123456)",
            (bytes(range(16)),),
        )
        review = db.execute(
            "INSERT INTO feedback_reviews (report_key, provider, kind, why, received_at)"
            " VALUES ('mailbox:1', 'mailbox', 'hard_bounce', 'no proof', ?) RETURNING id",
            (now,),
        ).fetchone()[0]
        db.execute(
            "INSERT INTO feedback_review_names (review_id, email, email_key) VALUES (?, ?, ?)",
            (review, "Reader.1@Example.com", "Reader.1@example.com"),
        )
    database.close()


@pytest.fixture
def postgres(postgres_server):
    return postgres_server.empty()


def test_a_list_of_ten_thousand_goes_to_postgres_and_back_unchanged(tmp_path, postgres):
    source = tmp_path / "list.sqlite3"
    fill(source)
    before = backends.contents(source)
    assert len(before["subscribers"]) == READERS and len(before["feedback_events"]) == 300

    copied = dbcopy.copy(source, postgres)
    assert copied["subscribers"] == READERS and copied["outgoing_mail"] == 2000
    assert backends.contents(postgres) == before

    back = tmp_path / "backup.sqlite3"
    dbcopy.copy(postgres, back)
    assert backends.contents(back) == before

    # The copy is a working list: the next reader gets the next id, on both.
    for target in (postgres, back):
        store = Subscribers.open(target)
        try:
            added = store.add("new@example.com", "new@example.com", status=Status.CONFIRMED)
            assert added.id > max(row[0] for row in before["subscribers"])
        finally:
            store.close()


def test_a_target_that_is_not_empty_or_is_the_source_is_refused_and_unchanged(tmp_path, postgres):
    source = tmp_path / "list.sqlite3"
    fill(source)
    with pytest.raises(dbcopy.CopyRefused, match="the source itself"):
        dbcopy.copy(source, tmp_path / "." / "list.sqlite3")
    dbcopy.copy(source, postgres)
    before = backends.contents(postgres)
    with pytest.raises(dbcopy.CopyRefused, match=r"is not empty: .*subscribers \(10000\)"):
        dbcopy.copy(source, postgres)
    assert backends.contents(postgres) == before
    other = tmp_path / "other.sqlite3"
    fill(other)
    with pytest.raises(dbcopy.CopyRefused, match="is not empty"):
        dbcopy.copy(source, other)


def test_invoke_db_copy(tmp_path, postgres):
    source = tmp_path / "list.sqlite3"
    fill(source)
    env = {"NEWSLETTER_DATABASE": str(source), "PATH": "/usr/bin:/bin"}
    with_password = postgres.replace("postgres@", "postgres:s3cret-pw@")  # trust: accepted
    done = invoke_copy(env, with_password)
    assert done.returncode == 0, done.stderr
    assert "subscribers: 10000" in done.stdout and "counts checked" in done.stdout
    assert "postgres:***@" in done.stdout  # the target named, its password hidden
    again = invoke_copy(env, with_password)
    assert again.returncode == 1 and "is not empty" in again.stderr
    for run in (done, again):
        assert "s3cret-pw" not in run.stdout + run.stderr


def invoke_copy(env: dict, target: str) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "invoke", "db.copy", "--to", target]
    return subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
