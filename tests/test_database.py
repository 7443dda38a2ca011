"""The database on a real SQLite file: WAL, migrations only, nested transactions, many writers."""

import shutil
import sqlite3
import threading
from datetime import timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa

from newsletter import schema
from newsletter.database import (
    Database,
    DatabaseError,
    _run_python,
    migrations,
    parse_stamp,
    split_statements,
)
from newsletter.subscriptions.addresses import normalize
from newsletter.subscriptions.subscribers import Subscribers
from tests.race import race_each


@pytest.fixture
def database(tmp_path):
    database = Database(tmp_path / "var" / "newsletter.sqlite3")
    yield database
    database.close()


def test_a_new_database_is_wal_and_runs_every_migration(database):
    assert database.path.is_file()
    assert database.db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert database.db.execute("PRAGMA busy_timeout").fetchone()[0] >= 5000
    assert database.db.execute("PRAGMA foreign_keys").fetchone()[0] == 1
    assert database.version == schema.HEAD
    assert database.db.execute("PRAGMA user_version").fetchone()[0] == 0  # never the old files
    tables = {row[0] for row in database.db.execute("SELECT name FROM sqlite_master")}
    assert {"subscribers", "outgoing_mail", "announcements", "feed_items"} <= tables
    assert not {"email_queue", "deliveries"} & tables  # 0009: one ledger of outgoing mail
    assert "announce_lock" not in tables  # 0003: the run lock is a file lock now
    assert Database(database.path).migrate() == database.version  # again: nothing changes


def differences(path) -> list:
    engine = sa.create_engine(f"sqlite:///{path}")
    try:
        with engine.connect() as connection:
            return schema.differences(connection)
    finally:
        engine.dispose()


def test_a_new_file_has_exactly_the_schema_the_code_describes(database):
    assert differences(database.path) == []
    database.db.execute("ALTER TABLE subscribers ADD COLUMN extra TEXT")
    database.db.execute("DROP INDEX outgoing_mail_due")
    found = str(differences(database.path))
    assert "extra" in found and "outgoing_mail_due" in found  # the comparison can fail


def test_a_database_at_each_earlier_version_migrates_in_place(tmp_path):
    """A file made by an earlier release (the numbered SQL files, PRAGMA user_version) keeps
    its rows, is stamped with the baseline of the one schema history, and ends with exactly the
    schema the code describes (newsletter/schema/tables.py), as a new file does."""
    for stop in range(1, len(migrations()) + 1):
        path = tmp_path / f"v{stop}.sqlite3"
        db = sqlite3.connect(path)
        for number, script in migrations()[:stop]:
            if script.suffix == ".py":
                _run_python(script, db)
            else:
                for statement in split_statements(script.read_text()):
                    db.execute(statement)
            db.execute(f"PRAGMA user_version = {number}")
        db.execute(
            "INSERT INTO subscribers (public_id, email, email_key, confirm_nonce, created_at,"
            " status_changed_at) VALUES ('p', 'a@example.com', 'a@example.com', 'n', 't', 't')"
        )
        db.commit()
        db.close()
        migrated = Database(path)
        assert [tuple(r) for r in migrated.db.execute("SELECT email FROM subscribers")] == [
            ("a@example.com",)
        ]
        assert migrated.version == schema.HEAD
        migrated.close()
        assert differences(path) == [], f"after the file at version {stop}"


def test_a_newer_database_is_refused(database):
    database.db.execute("UPDATE alembic_version SET version_num = '9999'")
    database.close()
    with pytest.raises(DatabaseError, match="revision 9999, newer than this code"):
        Database(database.path)


def test_a_newer_file_of_before_the_one_history_is_refused(tmp_path):
    path = tmp_path / "old.sqlite3"
    db = sqlite3.connect(path)
    db.execute("PRAGMA user_version = 999")
    db.close()
    with pytest.raises(DatabaseError, match="newer than this code"):
        Database(path)


def test_a_migration_that_fails_changes_nothing(tmp_path, monkeypatch):
    """One transaction: a revision that fails halfway leaves no table behind, and the next
    open (with the fault gone) migrates from the start."""
    path = tmp_path / "newsletter.sqlite3"
    real = schema.tables.metadata.create_all

    def half(bind, **options):
        bind.exec_driver_sql("CREATE TABLE half_done (x INTEGER)")
        raise sa.exc.OperationalError("CREATE TABLE", {}, Exception("disk full"))

    monkeypatch.setattr(schema.tables.metadata, "create_all", half)
    with pytest.raises(DatabaseError, match="disk full"):
        Database(path)
    monkeypatch.setattr(schema.tables.metadata, "create_all", real)
    db = sqlite3.connect(path)
    assert db.execute("SELECT name FROM sqlite_master WHERE type = 'table'").fetchall() == []
    db.close()
    database = Database(path)
    assert database.version == schema.HEAD
    database.close()


def test_the_revisions_follow_one_another_from_the_baseline():
    """One history: each revision names the one before it; while the baseline is the only one
    it may build tables.py as it is, and no later revision may exist while it still does."""
    from alembic.script import ScriptDirectory

    from newsletter.schema import _config

    script = ScriptDirectory.from_config(_config(None))
    chain = [rev.revision for rev in reversed(list(script.walk_revisions()))]
    assert chain == schema.revisions() and chain[0] == schema.BASELINE
    baseline = (schema.VERSIONS / "0011_baseline.py").read_text()
    if len(chain) > 1:
        assert "schema import tables" not in baseline, "freeze the baseline's tables first"


def test_a_nested_transaction_joins_the_outer_one_and_never_waits_on_itself(database):
    """Today's defect: a nested transaction in one thread deadlocked on the writer lock."""
    done = threading.Event()

    def nested():
        with database.transaction() as outer:
            outer.execute("CREATE TABLE t (x)")
            with database.transaction() as inner:
                assert inner is outer
                inner.execute("INSERT INTO t VALUES (1)")
            outer.execute("INSERT INTO t VALUES (2)")
        done.set()

    worker = threading.Thread(target=nested, daemon=True)
    worker.start()
    worker.join(3)
    assert done.is_set(), "a nested transaction hung"
    assert [tuple(r) for r in database.db.execute("SELECT x FROM t ORDER BY x").fetchall()] == [
        (1,),
        (2,),
    ]


def test_an_error_inside_a_nested_transaction_rolls_back_both(database):
    with database.transaction() as db:
        db.execute("CREATE TABLE t (x)")
    with pytest.raises(RuntimeError):
        with database.transaction() as outer:
            outer.execute("INSERT INTO t VALUES (1)")
            with database.transaction() as inner:
                inner.execute("INSERT INTO t VALUES (2)")
                raise RuntimeError("boom")
    assert database.db.execute("SELECT count(*) FROM t").fetchone()[0] == 0
    with database.transaction() as db:  # the lock was released: the next writer goes at once
        db.execute("INSERT INTO t VALUES (3)")
    assert [tuple(r) for r in database.db.execute("SELECT x FROM t")] == [(3,)]


def test_two_connections_and_eight_threads_write_in_turn(tmp_path):
    databases = [Database(tmp_path / "busy.sqlite3") for _ in range(2)]  # two "processes"
    with databases[0].transaction() as db:
        db.execute("CREATE TABLE counter (n INTEGER)")
        db.execute("INSERT INTO counter VALUES (0)")

    def work(number):
        database = databases[number % 2]
        for _ in range(50):
            with database.transaction() as db:
                (n,) = db.execute("SELECT n FROM counter").fetchone()
                db.execute("UPDATE counter SET n = ?", (n + 1,))

    race_each(work, 8)  # any error (say "database is locked") fails the test
    assert databases[1].db.execute("SELECT n FROM counter").fetchone()[0] == 400  # no lost update
    for database in databases:
        database.close()


BEFORE_17 = Path(__file__).parent / "fixtures" / "newsletter-before-issue-17.sqlite3"


def test_opening_the_file_again_in_the_same_process_keeps_the_first_ones_locks(tmp_path):
    """Closing any descriptor of the file drops every SQLite lock this process holds on it
    (POSIX locks): a second `Database` on a live file must not open the file itself, or another
    process, believing itself the last, deletes the write-ahead log under the first one's feet
    ("disk I/O error", "file is not a database": seen with the app and `invoke reminders`)."""
    import subprocess
    import sys

    path = tmp_path / "live.sqlite3"
    first = Database(path)
    second = None
    try:
        first.db.execute("SELECT count(*) FROM subscribers").fetchone()  # a connection, open
        second = Database(path)  # e.g. a task's helper in the web app's process
        other_process = (  # another process writes, then closes: the last one, it believes
            "import sqlite3, sys; c = sqlite3.connect(sys.argv[1]); "
            "c.execute(\"INSERT INTO announce_state VALUES ('k', 'v')\"); c.commit(); c.close()"
        )
        subprocess.run([sys.executable, "-c", other_process, str(path)], check=True, timeout=30)
        assert path.with_name(path.name + "-wal").exists(), "the WAL of a live connection went"
        assert first.db.execute("SELECT value FROM announce_state").fetchone()[0] == "v"
    finally:
        first.close()
        if second is not None:
            second.close()


def test_a_file_written_before_the_mailbox_key_upgrades_in_place(tmp_path, caplog):
    """tests/fixtures/newsletter-before-issue-17.sqlite3 was written by the code before migration
    0008 (schema 5): its keys were casefold(), which merged `Sam@` into `ſam@`'s row and
    `straße.de` with `strasse.de`. Upgraded: every row kept, each keyed as its own mailbox, the
    feedback and the pending sign-up request kept, and a warning names the rows that may have
    stood for two mailboxes."""
    path = tmp_path / "newsletter.sqlite3"
    shutil.copy(BEFORE_17, path)
    before = sqlite3.connect(path)
    old = dict(before.execute("SELECT email, email_key FROM subscribers").fetchall())
    events = before.execute("SELECT * FROM feedback_events").fetchall()
    assert before.execute("PRAGMA user_version").fetchone()[0] == 5
    assert old["ſam@example.com"] == "sam@example.com" and "Sam@example.com" not in old
    before.close()

    with caplog.at_level("WARNING", logger="newsletter.migrations"):
        database = Database(path)
    try:
        assert database.version == schema.HEAD
        db = database.db
        keys = dict(db.execute("SELECT email, email_key FROM subscribers").fetchall())
        assert set(keys) == set(old)  # no row lost
        assert keys == {
            "Mark.Williams@example.com": "mark.williams@example.com",
            "ſam@example.com": "ſam@example.com",
            "joe@straße.de": "joe@xn--strae-oqa.de",
            "user@bücher.de": "user@xn--bcher-kva.de",
            "oﬃce@example.org": "oﬃce@example.org",
            "ann@example.net": "ann@example.net",
        }
        assert [tuple(r) for r in db.execute("SELECT * FROM feedback_events")] == [
            tuple(r) for r in events
        ]
        [(request_key,)] = db.execute("SELECT email_key FROM signup_requests").fetchall()
        assert request_key == "joe@strasse.de"  # another mailbox than joe@straße.de
        # Sign-ups now find each mailbox by its own key
        store = Subscribers(database)
        assert store.find(normalize("sam@example.com")[1]) is None  # sam gets a row of his own
        assert store.find(normalize("ſam@example.com")[1]).email == "ſam@example.com"
        assert store.find(normalize("user@xn--bcher-kva.de")[1]).email == "user@bücher.de"
        assert store.find(normalize("user@bu\u0308cher.de")[1]).email == "user@bücher.de"
    finally:
        database.close()
    warned = " ".join(r.getMessage() for r in caplog.records)
    assert "ſ" in warned and "ﬃ" in warned and "joe" not in warned


def test_rows_the_new_key_would_merge_are_both_kept(tmp_path, caplog):
    """Rows written by other means than `addresses.normalize` (an old import) that are one
    mailbox under the new key: both kept, one under a key no address matches, and a warning."""
    path = tmp_path / "newsletter.sqlite3"
    db = sqlite3.connect(path)
    for number, script in migrations()[:5]:
        for statement in split_statements(script.read_text()):
            db.execute(statement)
        db.execute(f"PRAGMA user_version = {number}")
    for n, (email, key) in enumerate([("A@b.example", "a@b.example"), ("a@B.example", "x")]):
        db.execute(
            "INSERT INTO subscribers (public_id, email, email_key, confirm_nonce, created_at,"
            " status_changed_at) VALUES (?, ?, ?, 'n', 't', 't')",
            (f"p{n}", email, key),
        )
    db.commit()
    db.close()
    with caplog.at_level("WARNING", logger="newsletter.migrations"):
        database = Database(path)
    try:
        rows = database.db.execute("SELECT id, email_key FROM subscribers ORDER BY id").fetchall()
        assert [r[1] for r in rows] == ["a@b.example", "a@b.example#row2"]
    finally:
        database.close()
    assert "rows 1 and 2 are one mailbox" in caplog.text


BEFORE_18 = Path(__file__).parent / "fixtures" / "newsletter-before-issue-18.sqlite3"


def test_a_file_written_before_the_one_outgoing_mail_ledger_upgrades_with_its_pending_work(
    tmp_path,
):
    """tests/fixtures/newsletter-before-issue-18.sqlite3 was written by the code before migration
    0009 (tests/fixtures/make_before_issue_18.py): a confirmation sent, one waiting for its retry,
    one in flight when its sender died; an announcement sent to one reader, pending for another
    after a 451, skipped for a third. Upgraded, every one is a row of the one ledger in the one
    vocabulary, the confirmations keep their ids (their Message-IDs are sealed with them), and
    the pending work is still owed: the retry when due, the one in flight after its lease."""
    path = tmp_path / "newsletter.sqlite3"
    shutil.copy(BEFORE_18, path)
    before = sqlite3.connect(path)
    assert before.execute("PRAGMA user_version").fetchone()[0] == 8
    queue = before.execute("SELECT id, subscriber_id, status FROM email_queue").fetchall()
    before.close()

    database = Database(path)
    try:
        from newsletter.outgoing.ledger import MailLedger

        ledger = MailLedger(database)
        rows = ledger.rows("confirmation")
        assert [(r["id"], r["subscriber_id"], r["status"]) for r in rows] == queue
        assert [r["attempts"] for r in rows] == [1, 1, 0]  # the claim in flight had no answer
        assert rows[1]["last_error"] == "451 busy" and rows[2]["locked_until"]
        announcement = [(r["about_id"], r["subscriber_id"], r["status"], r["attempts"])
                        for r in ledger.rows("announcement")]  # fmt: skip
        assert announcement == [(1, 1, "sent", 1), (1, 2, "queued", 1), (1, 3, "skipped", 0)]
        # The pending work is still owed: an announcer takes every queued email of its
        # announcement; the confirmation in flight comes back when its sender's lease ends.
        assert [e.subscriber_id for e in ledger.claim(kinds=["announcement"], every=True)] == [2]
        later = parse_stamp(rows[2]["locked_until"]) + timedelta(seconds=1)
        database.clock = lambda: later
        claimed = ledger.claim(kinds=["confirmation"])
        assert sorted(e.id for e in claimed) == [rows[1]["id"], rows[2]["id"]]
    finally:
        database.close()
