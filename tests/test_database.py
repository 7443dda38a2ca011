"""The database on a real SQLite file: WAL, migrations only, nested transactions, many writers."""

import sqlite3
import threading

import pytest

from newsletter.database import Database, DatabaseError, migrations, split_statements


@pytest.fixture
def database(tmp_path):
    database = Database(tmp_path / "var" / "newsletter.sqlite3")
    yield database
    database.close()


def schema_of(path):
    db = sqlite3.connect(path)
    try:
        sql = {
            name: " ".join(text.split())
            for name, text in db.execute(
                "SELECT name, sql FROM sqlite_master WHERE name NOT LIKE 'sqlite_%' AND sql"
            )
        }
        version = db.execute("PRAGMA user_version").fetchone()[0]
    finally:
        db.close()
    return sql, version


def test_a_new_database_is_wal_and_runs_every_migration(database):
    assert database.path.is_file()
    assert database.db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert database.db.execute("PRAGMA busy_timeout").fetchone()[0] >= 5000
    assert database.db.execute("PRAGMA foreign_keys").fetchone()[0] == 1
    assert database.version == migrations()[-1][0]
    tables = {row[0] for row in database.db.execute("SELECT name FROM sqlite_master")}
    assert {"subscribers", "email_queue", "announcements", "deliveries", "feed_items"} <= tables
    assert "announce_lock" not in tables  # 0003: the run lock is a file lock now
    assert Database(database.path).migrate() == database.version  # again: nothing changes


def test_a_database_at_each_earlier_version_migrates_in_place(tmp_path):
    """A file made by an earlier release keeps its rows and ends with the same schema."""
    fresh = tmp_path / "fresh.sqlite3"
    Database(fresh).close()
    for stop in range(1, len(migrations())):
        path = tmp_path / f"v{stop}.sqlite3"
        db = sqlite3.connect(path)
        for number, script in migrations()[:stop]:
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
        migrated.close()
        assert schema_of(path) == schema_of(fresh)


def test_a_newer_database_is_refused(database):
    database.db.execute("PRAGMA user_version = 999")
    database.close()
    with pytest.raises(DatabaseError, match="newer than this code"):
        Database(database.path)


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
    errors = []

    def work(number):
        try:
            database = databases[number % 2]
            for _ in range(50):
                with database.transaction() as db:
                    (n,) = db.execute("SELECT n FROM counter").fetchone()
                    db.execute("UPDATE counter SET n = ?", (n + 1,))
        except Exception as error:  # noqa: BLE001 - collected and asserted below
            errors.append(repr(error))

    threads = [threading.Thread(target=work, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert databases[1].db.execute("SELECT n FROM counter").fetchone()[0] == 400  # no lost update
    for database in databases:
        database.close()
