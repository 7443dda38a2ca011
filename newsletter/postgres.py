"""The database on a PostgreSQL server (psycopg 3): the same `Database` contract as the SQLite
file, for a list shared by several hosts.

Contract (what differs from SQLite, and how the contract is kept):
- `PostgresDatabase(url)` (`Database(url)` with a `postgresql://` URL) connects, one connection
  per thread, in autocommit: a read outside `transaction()` sees the latest commits, as on
  SQLite.
- The features' SQL is written once, in SQLite's spelling that PostgreSQL shares (`?` and
  `:name` parameters; `ON CONFLICT`, `RETURNING`): `translate()` turns the parameters into
  psycopg's (`%s`, `%(name)s`), outside string literals, once per statement text.
- Rows answer by position and by column name, like `sqlite3.Row`.
- `transaction()` is one write transaction that first takes the one writer lock of the
  database (`pg_advisory_xact_lock`): writers take turns, on every host, exactly as they do on
  the SQLite file, so no read-then-write of a feature can interleave with another's. It is
  released by the commit or rollback, or when the connection dies. A transaction said to be
  `concurrent` (only writes that are safe side by side: the sign-up form's) skips it, so the
  commits of many sign-ups, each waiting on its disk flush, overlap.
- `run_lock(name)`: a session advisory lock on a connection of its own, released by
  `release()` or when the holder dies (the server closes its connection): no stale lock.
- `read_only(True)`: the connection's transactions are READ ONLY until `read_only(False)`.
- Timestamps stay the same fixed-width text as on SQLite, so every comparison is the same.
"""

from __future__ import annotations

import functools
import hashlib
import os
import re
import socket
import threading
import weakref
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime

import psycopg

from newsletter.database import Database, DatabaseError, utcnow
from newsletter.filelock import Locked

WRITER_LOCK = 0x4E4C5752  # "NLWR": the one writer lock (pg_advisory_xact_lock key)
RUN_LOCKS = 0x4E4C524C  # "NLRL": the run locks' first key; the second is the name's hash
CONNECT_TIMEOUT_S = 10


class Row(tuple):
    """A row that answers `row[0]` and `row["name"]`, `keys()` and `dict(row)`."""

    __slots__ = ()
    _names: dict[str, int] = {}

    def __getitem__(self, key):
        if isinstance(key, str):
            return tuple.__getitem__(self, self._names[key])
        return tuple.__getitem__(self, key)

    def keys(self) -> list[str]:
        return list(self._names)


@functools.lru_cache(maxsize=64)
def _row_class(names: tuple[str, ...]) -> type[Row]:
    return type("Row", (Row,), {"__slots__": (), "_names": {n: i for i, n in enumerate(names)}})


def _row_factory(cursor):
    if cursor.description is None:
        return None
    cls = _row_class(tuple(column.name for column in cursor.description))
    return lambda values: tuple.__new__(cls, values)


_TOKEN = re.compile(r"'(?:[^']|'')*'|\"(?:[^\"]|\"\")*\"|--[^\n]*|\?|%|(?<!:):([A-Za-z_]\w*)")


@functools.lru_cache(maxsize=1024)
def translate(statement: str) -> str:
    """SQLite's parameters (`?`, `:name`) as psycopg's (`%s`, `%(name)s`); a literal `%` is
    doubled; string literals, quoted names and comments are left as they are."""

    def one(match: re.Match) -> str:
        text = match.group(0)
        if text == "?":
            return "%s"
        if text == "%":
            return "%%"
        if match.group(1):
            return f"%({match.group(1)})s"
        return text

    return _TOKEN.sub(one, statement)


class Cursor:
    """What our code uses of a `sqlite3.Cursor`: fetchone, fetchall, iteration, rowcount."""

    __slots__ = ("_cursor",)

    def __init__(self, cursor: psycopg.Cursor):
        self._cursor = cursor

    def fetchone(self):
        return self._cursor.fetchone() if self._cursor.description else None

    def fetchmany(self, size: int) -> list:
        return self._cursor.fetchmany(size) if self._cursor.description else []

    def fetchall(self) -> list:
        return self._cursor.fetchall() if self._cursor.description else []

    def __iter__(self):
        return iter(self._cursor) if self._cursor.description else iter(())

    @property
    def rowcount(self) -> int:
        return self._cursor.rowcount

    @property
    def lastrowid(self):  # pragma: no cover - the features use RETURNING id
        raise AttributeError("PostgreSQL has no lastrowid: use INSERT ... RETURNING id")


class Connection:
    """What our code uses of a `sqlite3.Connection`: execute and executemany, in SQLite's
    parameter spelling."""

    __slots__ = ("raw", "__weakref__")

    def __init__(self, raw: psycopg.Connection):
        self.raw = raw

    def execute(self, statement: str, args=()) -> Cursor:
        cursor = self.raw.cursor()
        cursor.execute(translate(statement), args if args else None, prepare=False)
        return Cursor(cursor)

    def executemany(self, statement: str, rows) -> Cursor:
        cursor = self.raw.cursor()
        cursor.executemany(translate(statement), rows)
        return Cursor(cursor)

    def close(self) -> None:
        self.raw.close()


def connect(url: str, **options) -> Connection:
    raw = psycopg.connect(
        url,
        autocommit=True,
        row_factory=_row_factory,
        connect_timeout=CONNECT_TIMEOUT_S,
        **options,
    )
    raw.execute("SET TIME ZONE 'UTC'")
    return Connection(raw)


class AdvisoryLock:
    """A run lock held by its own connection (`pg_try_advisory_lock`), the same interface as
    `FileLock`: `acquire(wait=False)` raises `Locked`; `release()` lets go."""

    def __init__(self, url: str, name: str):
        self.url, self.name = url, name
        self.key = (
            RUN_LOCKS,
            int.from_bytes(hashlib.sha256(name.encode()).digest()[:4], "big", signed=True),
        )
        self.held = False
        self._connection: Connection | None = None

    def acquire(self, wait: bool = True) -> None:
        if self._connection is None:  # its name says who holds the lock, for the message
            since = datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S")
            holder = f"pid {os.getpid()} since {since} UTC on {socket.gethostname()}"
            self._connection = connect(self.url, application_name=holder[:63])
        if wait:
            self._connection.execute("SELECT pg_advisory_lock(?, ?)", self.key)
            self.held = True
            return
        if not self._connection.execute("SELECT pg_try_advisory_lock(?, ?)", self.key).fetchone()[
            0
        ]:
            holder = self._connection.execute(
                "SELECT a.application_name FROM pg_locks l JOIN pg_stat_activity a"
                " ON a.pid = l.pid WHERE l.locktype = 'advisory' AND l.granted"
                " AND l.classid = ? AND l.objid = ? AND l.objsubid = 2",
                (self.key[0], self.key[1] & 0xFFFFFFFF),
            ).fetchone()
            self.close()
            who = holder[0] if holder and holder[0] else "another session"
            raise Locked(f"the lock {self.name!r} is held by {who}")
        self.held = True

    def release(self) -> None:
        if self._connection is not None and self.held:
            self._connection.execute("SELECT pg_advisory_unlock(?, ?)", self.key)
        self.held = False
        self.close()

    def close(self) -> None:
        if self._connection is not None:
            self._connection.close()
            self._connection = None
        self.held = False

    def __enter__(self) -> AdvisoryLock:
        self.acquire()
        return self

    def __exit__(self, *exc) -> None:
        self.release()


class Connections:
    """One connection per thread (autocommit), safe across fork: a child never uses its
    parent's connections (it leaves them alone, unclosed, as the SQLite store does)."""

    def __init__(self, url: str):
        self.url = url
        self._local = threading.local()
        self._all: weakref.WeakSet[Connection] = weakref.WeakSet()
        self._inherited: list[Connection] = []
        self._lock = threading.Lock()
        self._pid = os.getpid()

    def get(self) -> Connection:
        if self._pid != os.getpid():
            with self._lock:
                self._inherited.extend(self._all)
                self._all = weakref.WeakSet()
                self._local = threading.local()
                self._pid = os.getpid()
        connection = getattr(self._local, "connection", None)
        if connection is None or connection.raw.closed:
            connection = connect(self.url)
            self._local.connection = connection
            with self._lock:
                self._all.add(connection)
        return connection

    def close(self) -> None:
        with self._lock:
            every = list(self._all)
            self._all = weakref.WeakSet()
        for connection in every:
            connection.close()
        self._local = threading.local()


@contextmanager
def write_transaction(
    connection: Connection, *, lock: bool = True, durable: bool = True
) -> Iterator[Connection]:
    """BEGIN, the one writer lock (unless `lock` is False: a concurrent transaction), then
    COMMIT (or ROLLBACK on any error)."""
    # One round trip to the server for the start, whatever it holds.
    start = ["BEGIN"]
    if not durable:  # as SQLite's WAL with synchronous NORMAL: no wait for the disk
        start.append("SET LOCAL synchronous_commit TO OFF")
    if lock:
        start.append(f"SELECT pg_advisory_xact_lock({WRITER_LOCK})")
    connection.raw.execute("; ".join(start))
    try:
        yield connection
    except BaseException:
        if not connection.raw.closed:
            connection.execute("ROLLBACK")
        raise
    else:
        connection.execute("COMMIT")


def redact(url: str) -> str:
    """The URL without its password, for messages."""
    return re.sub(r"(://[^:/@]*):[^@/]*@", r"\1:***@", url)


class PostgresDatabase(Database):
    """`Database` on a PostgreSQL server (see the module's contract)."""

    dialect = "postgresql"

    def __init__(
        self,
        url: str,
        *,
        clock: Callable[[], datetime] = utcnow,
        background_checkpoints: bool = False,
    ):
        self.url = url
        self.path = None  # no file: run locks and copies go through the server
        self.target = url
        self.describe = redact(url)
        self.clock = clock
        self.background_checkpoints = background_checkpoints
        self._connections = Connections(url)
        self._depth = threading.local()
        try:
            self.db  # noqa: B018 - connect now: a wrong URL fails here, named
        except psycopg.Error as error:
            raise DatabaseError(f"cannot connect to {self.describe}: {error}") from None
        self.migrate()

    @property
    def db(self) -> Connection:
        return self._connections.get()

    def close(self) -> None:
        self._connections.close()

    @contextmanager
    def transaction(
        self, *, concurrent: bool = False, durable: bool = True
    ) -> Iterator[Connection]:
        db = self.db
        if getattr(self._depth, "depth", 0):
            self._depth.depth += 1
            try:
                yield db
            finally:
                self._depth.depth -= 1
            return
        self._depth.depth = 1
        try:
            with write_transaction(db, lock=not concurrent, durable=durable) as connection:
                yield connection
        finally:
            self._depth.depth = 0

    def write_one(self, statement: str, args=(), *, durable: bool = True) -> int:
        db = self.db
        if getattr(self._depth, "depth", 0):  # inside a transaction: part of it
            return db.execute(statement, args).rowcount
        raw = db.raw
        with raw.pipeline():  # BEGIN ... COMMIT sent at once: one round trip
            raw.execute("BEGIN")
            if not durable:
                raw.execute("SET LOCAL synchronous_commit TO OFF")
            cursor = raw.execute(translate(statement), args or None, prepare=False)
            raw.execute("COMMIT")
        return cursor.rowcount

    def read_only(self, on: bool = True) -> None:
        self.db.execute(
            f"SET SESSION CHARACTERISTICS AS TRANSACTION {'READ ONLY' if on else 'READ WRITE'}"
        )

    def checkpoint(self) -> None:
        """Nothing to do: the server checkpoints."""

    @contextmanager
    def checkpoints_aside(self, every: float) -> Iterator[None]:
        """Nothing to set aside: the server checkpoints on its own."""
        yield

    @contextmanager
    def erasing(self) -> Iterator[None]:
        """Deletes inside, then VACUUM: the server marks the dead rows' space free for reuse
        (it does not zero it; the server's own files and backups are the operator's to keep)."""
        yield
        self.db.execute("VACUUM")

    def run_lock(self, name: str) -> AdvisoryLock:
        return AdvisoryLock(self.url, name)

    def migrate(self) -> str:
        from newsletter import schema

        if schema.current(self.db) == schema.HEAD:
            return schema.HEAD
        import sqlalchemy as sa

        engine = sa.create_engine(
            "postgresql+psycopg://",
            creator=lambda: psycopg.connect(self.url, connect_timeout=CONNECT_TIMEOUT_S),
            poolclass=sa.pool.NullPool,
        )
        try:
            with engine.begin() as connection:
                connection.exec_driver_sql("SELECT pg_advisory_xact_lock(%s)", (WRITER_LOCK,))
                revision = _current(connection)
                self._refuse_newer(revision)
                schema.run(connection)
        except (psycopg.Error, sa.exc.SQLAlchemyError) as error:
            raise DatabaseError(f"cannot migrate {self.describe}: {error}") from None
        finally:
            engine.dispose()
        return schema.HEAD


def _current(connection) -> str | None:
    import sqlalchemy as sa

    if not sa.inspect(connection).has_table("alembic_version"):
        return None
    row = connection.exec_driver_sql("SELECT version_num FROM alembic_version").fetchone()
    return row[0] if row else None


__all__ = ["AdvisoryLock", "Connection", "PostgresDatabase", "Row", "connect", "translate"]
