"""The database on a real SQLite file: WAL, migrations only, nested transactions, many writers;
and the errors the features catch (`ERRORS`, `BUSY`, `INTEGRITY`), the same on both backends,
without psycopg ever imported for SQLite."""

import gc
import json
import os
import shutil
import sqlite3
import subprocess
import sys
import textwrap
import threading
import time
from datetime import timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa

from blog.build import ROOT
from newsletter import schema
from newsletter.database import (
    BUSY,
    ERRORS,
    INTEGRITY,
    Database,
    DatabaseError,
    PostgresError,
    PostgresIntegrityError,
    PostgresOperationalError,
    _run_python,
    migrations,
    parse_stamp,
    split_statements,
)
from newsletter.subscriptions.addresses import normalize
from newsletter.subscriptions.subscribers import Subscribers
from tests import backends
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
    from newsletter.schema import frozen_0011

    real = frozen_0011.metadata.create_all

    def half(bind, **options):
        bind.exec_driver_sql("CREATE TABLE half_done (x INTEGER)")
        raise sa.exc.OperationalError("CREATE TABLE", {}, Exception("disk full"))

    monkeypatch.setattr(frozen_0011.metadata, "create_all", half)
    with pytest.raises(DatabaseError, match="disk full"):
        Database(path)
    monkeypatch.setattr(frozen_0011.metadata, "create_all", real)
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


# The errors the features catch, the same on both backends ------------------------------------
SQLITE_ANNOUNCE = """
import json, sys
from pathlib import Path
from newsletter.announcements import run as announce
from newsletter.settings import Settings
from newsletter.subscriptions.app import create_app
from newsletter.subscriptions.subscribers import Subscribers

folder = Path(sys.argv[1])
settings = Settings(
    database=folder / "newsletter.sqlite3", outbox=folder / "outbox", secret_key="k" * 40,
    sender="Walk Again <news@walkagain.example>", site_url="https://walkagain.example",
    base_url="https://walkagain.example/newsletter", postal_address="2 Mill Lane, Leeds",
)
create_app(settings)
store = Subscribers.open(settings.database)
now = store.database.now()
with store.database.transaction() as db:
    db.execute(
        "INSERT INTO subscribers (public_id, email, email_key, status, confirm_nonce, created_at,"
        " status_changed_at, confirmed_at) VALUES ('p', 'r@example.com', 'r@example.com',"
        " 'confirmed', 'n', ?, ?, ?)", (now, now, now),
    )
store.close()
summary = announce.run(settings, feed_url=str(folder / "feed.xml"), send_existing=True)
print(json.dumps({"sent": summary.tally.sent,
                  "psycopg": sorted(m for m in sys.modules if m.split(".")[0] == "psycopg")}))
"""

FEED = """<?xml version="1.0" encoding="UTF-8"?><rss version="2.0"><channel><title>Walk Again
</title><link>https://walkagain.example/</link><description>d</description><item><title>Knees
</title><link>https://walkagain.example/2026/knees/</link><guid>urn:uuid:knees</guid>
<description>About knees.</description><pubDate>{when}</pubDate></item></channel></rss>"""


def test_the_sqlite_path_never_imports_psycopg(tmp_path):
    """psycopg (some 20 MB of memory, and libpq's load time) is imported only when a
    postgresql:// database is opened: a fresh interpreter that builds the web app and announces
    an article on SQLite never loads it."""
    from email.utils import format_datetime

    from newsletter.database import utcnow

    (tmp_path / "feed.xml").write_text(FEED.format(when=format_datetime(utcnow())))
    done = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(SQLITE_ANNOUNCE), str(tmp_path)],
        cwd=ROOT, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    seen = json.loads(done.stdout.strip().splitlines()[-1])
    assert seen == {"sent": 1, "psycopg": []}


@pytest.fixture
def store(database_target):
    store = Subscribers.open(database_target)
    yield store
    store.close()


def _subscriber(db, key: str) -> None:
    db.execute(
        "INSERT INTO subscribers (public_id, email, email_key, confirm_nonce, created_at,"
        " status_changed_at) VALUES (?, ?, ?, 'n', 't', 't')",
        (f"p-{key}", key, key),
    )


def test_a_refused_write_is_an_integrity_error_on_either_backend(store, backend):
    database = store.database
    with database.transaction() as db:
        _subscriber(db, "a@example.com")
        _subscriber(db, "b@example.com")
    with pytest.raises(INTEGRITY) as in_a_transaction:
        with database.transaction() as db:
            _subscriber(db, "a@example.com")
    with pytest.raises(INTEGRITY):  # the rows streamed to executemany
        with database.transaction() as db:
            db.executemany(
                "UPDATE subscribers SET email_key = ? WHERE email_key = ?",
                iter([("c@example.com", "b@example.com"), ("a@example.com", "c@example.com")]),
            )
    with pytest.raises(INTEGRITY):  # its own transaction (one round trip on PostgreSQL)
        database.write_one(
            "UPDATE subscribers SET email_key = 'a@example.com' WHERE email_key = ?",
            ("b@example.com",),
        )
    keys = [row[0] for row in database.db.execute("SELECT email_key FROM subscribers ORDER BY 1")]
    assert keys == ["a@example.com", "b@example.com"]  # each refused write rolled back
    error = in_a_transaction.value
    assert isinstance(error, ERRORS) and not isinstance(error, BUSY)
    if backend == "postgresql":
        import psycopg

        assert type(error) is PostgresIntegrityError and error.sqlstate == "23505"
        assert isinstance(error.__cause__, psycopg.errors.UniqueViolation)
        assert "subscribers" in str(error)  # psycopg's message, as it was


def test_a_wrong_statement_is_a_database_error_on_either_backend(store, backend):
    with pytest.raises(ERRORS) as caught:
        store.database.db.execute("SELECT no_such_column FROM subscribers").fetchall()
    assert "no_such_column" in str(caught.value)
    if backend == "postgresql":
        assert type(caught.value) is PostgresError and caught.value.sqlstate == "42703"
        assert not isinstance(caught.value, (*BUSY, *INTEGRITY))


def test_a_writer_kept_waiting_is_busy_on_either_backend(store, backend):
    """Another writer holds the database and ours gives up at once: BUSY (the web app's 503)."""
    database = store.database
    if backend == "postgresql":
        import psycopg

        from newsletter.postgres import WRITER_LOCK

        other = psycopg.connect(database.url, autocommit=True)
        other.execute("SELECT pg_advisory_lock(%s)", (WRITER_LOCK,))
        database.db.execute("SET lock_timeout = '50ms'")
    else:
        other = sqlite3.connect(database.path, isolation_level=None)
        other.execute("BEGIN IMMEDIATE")
        database.db.execute("PRAGMA busy_timeout = 0")
    try:
        with pytest.raises(BUSY) as caught:
            with database.transaction() as db:
                _subscriber(db, "a@example.com")
    finally:
        other.close()
    if backend == "postgresql":
        assert type(caught.value) is PostgresOperationalError
        assert caught.value.sqlstate == "55P03"  # lock_not_available


def _closed(connection) -> bool:
    raw = getattr(connection, "raw", None)  # PostgreSQL: our wrapper of psycopg's connection
    if raw is not None:
        return raw.closed
    try:
        connection.execute("SELECT 1")
    except sqlite3.ProgrammingError:  # "Cannot operate on a closed database."
        return True
    return False


def test_each_thread_and_child_has_its_own_connection_and_leaves_the_others_alone(store, backend):
    """A thread gets its own connection, closed when the thread ends; a forked child (gunicorn
    --preload) opens its own and never touches its parent's, which goes on working."""
    database = store.database
    mine = database.db
    seen = []
    worker = threading.Thread(target=lambda: seen.append(database.db))
    worker.start()
    worker.join()
    (theirs,) = seen
    assert theirs is not mine and database.db is mine
    del worker
    gc.collect()  # the ended thread's storage, and so its connection holder, is gone
    assert _closed(theirs) and not _closed(mine)
    seen.clear()
    pid = os.fork()
    if pid == 0:  # the child: its own connection, and out without a destructor
        try:
            child = database.db
            ok = child is not mine and child.execute("SELECT count(*) FROM subscribers")
            os._exit(0 if ok else 1)
        finally:
            os._exit(2)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert mine.execute("SELECT count(*) FROM subscribers").fetchone()[0] == 0  # still ours


def test_a_lost_server_connection_is_busy(store, backend):
    """The server ends our session (a restart, a failover): BUSY, as a locked SQLite file is."""
    if backend != "postgresql":
        pytest.skip("a SQLite file has no server connection to lose")
    import psycopg

    database = store.database
    pid = database.db.execute("SELECT pg_backend_pid()").fetchone()[0]
    with psycopg.connect(database.url, autocommit=True) as admin:
        admin.execute("SELECT pg_terminate_backend(%s)", (pid,))
    with pytest.raises(BUSY) as caught:
        database.db.execute("SELECT count(*) FROM subscribers").fetchone()
    assert type(caught.value) is PostgresOperationalError
    assert isinstance(caught.value.__cause__, psycopg.OperationalError)
    with pytest.raises(DatabaseError, match="cannot connect"):  # a server that is not there
        Database(database.url.replace("host=", "host=/nonexistent"))


# write_soon: a write whose answer comes later --------------------------------------------------
def test_a_write_sent_soon_is_done_in_order_and_seen_by_every_connection(store, backend):
    """The ledger's records while the mail goes out: the caller goes on at once, the writes
    are done in the order they were sent, and each `Written` says how many rows it changed."""
    database = store.database
    with database.transaction() as db:
        for n in range(3):
            _subscriber(db, f"r{n}@example.com")
    writes = [
        database.write_soon("UPDATE subscribers SET confirm_nonce = ? WHERE email = ?", (v, e))
        for v, e in [("first", "r0@example.com"), ("second", "r0@example.com"),
                     ("x", "r1@example.com"), ("y", "nobody@example.com")]
    ]  # fmt: skip
    assert [written.wait() for written in writes] == [1, 1, 1, 0]
    assert all(written.done() for written in writes)
    other = Database(database.target)  # another connection (another host) sees them
    rows = other.db.execute("SELECT email, confirm_nonce FROM subscribers ORDER BY email")
    assert [tuple(row) for row in rows][:2] == [
        ("r0@example.com", "second"),
        ("r1@example.com", "x"),
    ]
    other.close()


def test_a_write_sent_soon_gives_the_rows_of_its_returning(store, backend):
    """A claim is an UPDATE ... RETURNING sent soon: its rows come back with the answer, as
    Python values (ids as ints), on both databases."""
    database = store.database
    with database.transaction() as db:
        for key in ("a@example.com", "b@example.com", "c@example.com"):
            _subscriber(db, key)
    written = database.write_soon(
        "UPDATE subscribers SET confirm_nonce = ? WHERE email IN (?, ?) RETURNING id, email",
        ("claimed", "a@example.com", "c@example.com"),
        lane="claims",
    )
    assert written.wait() == 2
    rows = sorted(tuple(row) for row in written.rows)
    assert [email for _, email in rows] == ["a@example.com", "c@example.com"]
    assert all(type(row_id) is int for row_id, _ in rows)
    nothing = database.write_soon(
        "UPDATE subscribers SET status = status WHERE id < 0 RETURNING id", lane="claims"
    )
    assert nothing.wait() == 0 and nothing.rows == []


def test_a_write_held_up_in_one_lane_holds_up_no_other_lane(store, backend):
    """The next page's claim waits on its own connection: while it waits for a row another
    sender holds, the records (another lane) go on, and the claim is done once that row is
    free."""
    if backend != "postgresql":
        pytest.skip("a SQLite file's writes are done at once: no lane to hold up")
    import psycopg

    database = store.database
    with database.transaction() as db:
        for key in ("held@example.com", "free@example.com"):
            _subscriber(db, key)
    other = psycopg.connect(database.url)  # another sender, in the middle of its transaction
    other.execute("UPDATE subscribers SET confirm_nonce = 'other' WHERE email = 'held@example.com'")
    claim = database.write_soon(
        "UPDATE subscribers SET confirm_nonce = 'claim' WHERE email = ? RETURNING id",
        ("held@example.com",),
        lane="claims",
    )
    record = database.write_soon(
        "UPDATE subscribers SET confirm_nonce = 'record' WHERE email = ?", ("free@example.com",)
    )
    try:
        deadline = time.monotonic() + 10  # only a guard: done at once unless behind the claim
        while not record.done() and time.monotonic() < deadline:
            time.sleep(0.01)
        assert record.done(), "the record waited behind the claim of another lane"
        assert record.wait() == 1 and not claim.done()
    finally:
        other.commit()
        other.close()
    assert claim.wait() == 1 and len(claim.rows) == 1
    rows = database.db.execute("SELECT email, confirm_nonce FROM subscribers ORDER BY email")
    assert [tuple(row) for row in rows] == [
        ("free@example.com", "record"),
        ("held@example.com", "claim"),
    ]


def test_a_write_sent_soon_that_fails_raises_when_waited_for_and_the_next_one_works(store, backend):
    database = store.database
    with database.transaction() as db:
        _subscriber(db, "a@example.com")
    bad = database.write_soon("UPDATE subscribers SET status = 'nonsense' WHERE email = ?",
                              ("a@example.com",))  # fmt: skip
    with pytest.raises(INTEGRITY):  # the CHECK on the status, raised to whoever waits
        bad.wait()
    good = database.write_soon("UPDATE subscribers SET confirm_nonce = 'n2' WHERE email = ?",
                               ("a@example.com",))  # fmt: skip
    assert good.wait() == 1
    row = database.db.execute("SELECT status, confirm_nonce FROM subscribers").fetchone()
    assert tuple(row) == ("unconfirmed", "n2")


def test_closing_finishes_the_writes_on_their_way(tmp_path, backend):
    target = backends.target(tmp_path, backend)
    database = Database(target)
    with database.transaction() as db:
        _subscriber(db, "a@example.com")
    writes = [
        database.write_soon("UPDATE subscribers SET confirm_nonce = ? WHERE id > 0", (str(n),))
        for n in range(50)
    ]
    database.close()
    assert all(written.done() for written in writes)
    again = Database(target)
    assert again.db.execute("SELECT confirm_nonce FROM subscribers").fetchone()[0] == "49"
    again.close()


def test_a_write_sent_soon_on_a_lost_connection_is_busy_and_the_next_one_reconnects(store, backend):
    """The server ends the writer's session (a restart, a failover): the write on its way fails
    as BUSY for whoever waits for it (the email is then sent again by the next run, never
    counted as recorded), and the next write opens a new connection."""
    if backend != "postgresql":
        pytest.skip("a SQLite file has no server connection to lose")
    import psycopg

    database = store.database
    with database.transaction() as db:
        _subscriber(db, "a@example.com")
    statement = "UPDATE subscribers SET confirm_nonce = ? WHERE email = 'a@example.com'"
    assert database.write_soon(statement, ("one",)).wait() == 1
    with psycopg.connect(database.url, autocommit=True) as admin:
        admin.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
            " WHERE query LIKE 'UPDATE subscribers SET confirm_nonce%' AND pid <> pg_backend_pid()"
        )
    with pytest.raises(BUSY):
        database.write_soon(statement, ("two",)).wait()
    assert database.write_soon(statement, ("three",)).wait() == 1
    assert database.db.execute("SELECT confirm_nonce FROM subscribers").fetchone()[0] == "three"
