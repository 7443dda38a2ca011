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
- `write_soon(statement, lane=)`: the thread's `Recorder` of that lane sends it on a connection
  of its own through libpq's asynchronous calls, and the caller goes on (`Written`, with the
  rows of a RETURNING); writes of one lane are done in the order they came.
- `read_only(True)`: the connection's transactions are READ ONLY until `read_only(False)`.
- Timestamps stay the same fixed-width text as on SQLite, so every comparison is the same.
- Errors: psycopg's leave this module as `database.PostgresError` (`PostgresOperationalError`,
  `PostgresIntegrityError`), with psycopg's message, SQLSTATE and the error itself as the cause,
  so the features' `except database.ERRORS / BUSY / INTEGRITY` is the same on both backends.
  psycopg is imported here only: when a postgresql:// database is opened, never for SQLite.
"""

from __future__ import annotations

import functools
import hashlib
import itertools
import os
import re
import select
import socket
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime

import psycopg
from psycopg import pq
from psycopg.adapt import Transformer

from newsletter.database import (
    Database,
    DatabaseError,
    PerThread,
    PostgresError,
    PostgresIntegrityError,
    PostgresOperationalError,
    Written,
    utcnow,
)
from newsletter.filelock import Locked

WRITER_LOCK = 0x4E4C5752  # "NLWR": the one writer lock (pg_advisory_xact_lock key)
RUN_LOCKS = 0x4E4C524C  # "NLRL": the run locks' first key; the second is the name's hash
CONNECT_TIMEOUT_S = 10
DEAD_HOLDER_S = 5.0  # how long a dead local holder's lock may take to go
_OPEN = (psycopg.pq.TransactionStatus.INTRANS, psycopg.pq.TransactionStatus.INERROR)


def translated(error: psycopg.Error) -> PostgresError:
    """psycopg's `error` as the project's class (see `database.ERRORS`, `BUSY`, `INTEGRITY`),
    with its message and SQLSTATE; raise it `from error`."""
    if isinstance(error, psycopg.IntegrityError):
        problem = PostgresIntegrityError(str(error))
    elif isinstance(error, psycopg.OperationalError):
        problem = PostgresOperationalError(str(error))
    else:
        problem = PostgresError(str(error))
    problem.sqlstate = error.sqlstate
    return problem


class _Translating:
    """`with translating:` a psycopg error inside leaves as `translated(error)`."""

    __slots__ = ()

    def __enter__(self) -> None:
        return None

    def __exit__(self, kind, error, traceback) -> bool:
        if isinstance(error, psycopg.Error):
            raise translated(error) from error
        return False


translating = _Translating()


@contextmanager
def ending_failed(raw: psycopg.Connection) -> Iterator[None]:
    """What fails inside (a transaction's start) leaves no transaction open on the
    connection, aborted or not: else the thread's next statement would fail ("current
    transaction is aborted, commands ignored until end of transaction block")."""
    try:
        yield
    except BaseException:
        if not raw.closed and raw.info.transaction_status in _OPEN:
            with translating:
                raw.execute("ROLLBACK")
        raise


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
        with translating:
            return self._cursor.fetchone() if self._cursor.description else None

    def fetchmany(self, size: int) -> list:
        with translating:
            return self._cursor.fetchmany(size) if self._cursor.description else []

    def fetchall(self) -> list:
        with translating:
            return self._cursor.fetchall() if self._cursor.description else []

    def __iter__(self):
        return _rows(self._cursor) if self._cursor.description else iter(())

    @property
    def rowcount(self) -> int:
        return self._cursor.rowcount

    @property
    def lastrowid(self):  # pragma: no cover - the features use RETURNING id
        raise AttributeError("PostgreSQL has no lastrowid: use INSERT ... RETURNING id")


def _rows(cursor: psycopg.Cursor) -> Iterator:
    try:
        yield from cursor
    except psycopg.Error as error:
        raise translated(error) from error


class Connection:
    """What our code uses of a `sqlite3.Connection`: execute and executemany, in SQLite's
    parameter spelling."""

    __slots__ = ("raw", "__weakref__")

    def __init__(self, raw: psycopg.Connection):
        self.raw = raw

    def execute(self, statement: str, args=()) -> Cursor:
        cursor = self.raw.cursor()
        with translating:
            cursor.execute(translate(statement), args if args else None, prepare=False)
        return Cursor(cursor)

    def executemany(self, statement: str, rows) -> Cursor:
        cursor = self.raw.cursor()
        with translating:
            cursor.executemany(translate(statement), rows)
        return Cursor(cursor)

    def close(self) -> None:
        self.raw.close()


def connect(url: str, **options) -> Connection:
    with translating:
        raw = psycopg.connect(
            url,
            autocommit=True,
            row_factory=_row_factory,
            connect_timeout=CONNECT_TIMEOUT_S,
            **options,
        )
        raw.execute("SET TIME ZONE 'UTC'")
    return Connection(raw)


_HOLDER = re.compile(r"pid (\d+) since .* on (\S+)$")  # `_holder_name()`, read back


def _holder_name() -> str:
    """Who holds a run lock, as its connection's name (63 characters at most), for the message
    another session gets: "pid 123 since 2026-12-05 04:13:50 UTC on host"."""
    since = datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S")
    return f"pid {os.getpid()} since {since} UTC on {socket.gethostname()}"[:63]


def _dead_here(holder: str) -> bool:
    """Whether the holder named is a process of this machine that is gone (killed): its
    connection is closed, and the server releases its lock as soon as it reads that."""
    match = _HOLDER.match(holder)
    if match is None or match.group(2) != socket.gethostname()[: len(match.group(2))]:
        return False
    try:
        os.kill(int(match.group(1)), 0)
    except ProcessLookupError:
        return True
    except OSError:  # alive, someone else's
        return False
    return False


class AdvisoryLock:
    """A run lock held by its own connection (`pg_try_advisory_lock`), the same interface as
    `FileLock`: `acquire(wait=False)` raises `Locked`; `release()` lets go. A holder that is a
    dead process of this machine (killed: its connection closed, which the server sees a moment
    later) is waited for, up to DEAD_HOLDER_S, as the kernel frees a dead process's flock."""

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
            self._connection = connect(self.url, application_name=_holder_name())
        if wait:
            self._connection.execute("SELECT pg_advisory_lock(?, ?)", self.key)
            self.held = True
            return
        deadline = None
        while not self._try():
            who = self._holder()
            if _dead_here(who):  # its process is gone: the server is about to see it
                deadline = deadline or time.monotonic() + DEAD_HOLDER_S
                if time.monotonic() < deadline:
                    time.sleep(0.02)
                    continue
            self.close()
            raise Locked(f"the lock {self.name!r} is held by {who or 'another session'}")
        self.held = True

    def _try(self) -> bool:
        return self._connection.execute("SELECT pg_try_advisory_lock(?, ?)", self.key).fetchone()[0]

    def _holder(self) -> str:
        """The holder's session name ("pid N since ... on HOST"), "" if it has none."""
        row = self._connection.execute(
            "SELECT a.application_name FROM pg_locks l JOIN pg_stat_activity a"
            " ON a.pid = l.pid WHERE l.locktype = 'advisory' AND l.granted"
            " AND l.classid = ? AND l.objid = ? AND l.objsubid = 2",
            (self.key[0], self.key[1] & 0xFFFFFFFF),
        ).fetchone()
        return row[0] if row and row[0] else ""

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


class Soon(Written):
    """A `Written` of the `Recorder`: asking whether it is done moves the recorder on."""

    __slots__ = ("_recorder",)

    def __init__(self, recorder: Recorder):
        super().__init__()
        self._recorder = recorder

    def done(self) -> bool:
        if not self._finished:
            self._recorder.progress()
        return self._finished

    def wait(self) -> int:
        while not self._finished:
            self._recorder.progress(block=True)
        return super().wait()

    def fileno(self) -> int:
        """The socket the recorder's answers arrive on (for `select`)."""
        return self._recorder.fileno()


class Recorder:
    """`write_soon`'s writer, one per thread and lane: its own connection (synchronous_commit
    off: these writes are not durable), driven through libpq's asynchronous calls
    (`psycopg.pq`) by the thread that writes. A statement is sent at once when the server is
    free, else queued; the thread goes on, and whenever it asks a `Soon` whether it is done,
    the answers that arrived are taken and the next statement is sent. No thread, no wait: a
    record costs the sending thread a few microseconds. Statements run in the order they came,
    each its own transaction, each prepared once per connection."""

    def __init__(self, url: str):
        self.url, self.pid = url, os.getpid()
        self._connection: Connection | None = None
        self._prepared: dict[str, bytes] = {}
        self._queue: deque[tuple[str, tuple, Soon]] = deque()
        self._flight: Soon | None = None  # the statement the server is working on
        self._rows = Transformer()  # text answers to Python values (ints, text, None)

    def submit(self, statement: str, args) -> Soon:
        soon = Soon(self)
        self._queue.append((statement, args, soon))
        self.progress()
        return soon

    def progress(self, *, block: bool = False) -> None:
        """Take the answer that arrived (waiting for it when `block`), send the next."""
        try:
            if self._flight is not None and not self._answered(block):
                return
            if self._flight is None and self._queue:
                self._send(*self._queue.popleft())
        except Exception as error:  # noqa: BLE001 - every write on its way fails with it
            self._fail(translated(error) if isinstance(error, psycopg.Error) else error)

    def _answered(self, block: bool) -> bool:
        pgconn = self._connection.raw.pgconn
        pgconn.consume_input()
        while pgconn.is_busy():
            if not block:
                return False
            select.select([pgconn.socket], [], [])
            pgconn.consume_input()
        result, flight, self._flight = pgconn.get_result(), self._flight, None
        while pgconn.get_result() is not None:  # the end of this statement's results
            pass
        try:
            _check(pgconn, result)
        except psycopg.Error as error:
            flight.finish(error=translated(error))
        else:
            rows = None
            if result.ntuples:  # a RETURNING's rows, loaded as psycopg loads them
                self._rows.set_pgresult(result)
                rows = self._rows.load_rows(0, result.ntuples, tuple)
            flight.finish(int(result.command_tuples or 0), rows=rows)
        return True

    def _send(self, statement: str, args, soon: Soon) -> None:
        self._flight = soon
        if self._connection is None or self._connection.raw.closed:
            self._connection, self._prepared = connect(self.url), {}
            self._connection.raw.execute("SET synchronous_commit TO OFF")
        pgconn = self._connection.raw.pgconn
        name = self._prepared.get(statement)
        if name is None:  # once per statement and connection, while nothing is on its way
            name = f"w{len(self._prepared)}".encode()
            _check(pgconn, pgconn.prepare(name, numbered(statement)))
            self._prepared[statement] = name
        values = [None if value is None else str(value).encode() for value in args]
        pgconn.send_query_prepared(name, values)
        while pgconn.flush():  # a statement is small: it leaves at once
            select.select([], [pgconn.socket], [])

    def _fail(self, error: BaseException) -> None:
        """The connection is lost (or unusable): what was on its way and what is queued fail
        with `error`; the next write opens a new connection."""
        failed = [self._flight] if self._flight is not None else []
        failed += [soon for *_, soon in self._queue]
        self._flight, self._queue = None, deque()
        for soon in failed:
            soon.finish(error=error)
        if self._connection is not None:
            self._connection.close()
            self._connection = None

    def fileno(self) -> int:
        connection = self._connection
        return connection.raw.pgconn.socket if connection is not None else -1

    def close(self) -> None:
        """Finish what is on its way and queued, then hang up."""
        while self._flight is not None or self._queue:
            self.progress(block=True)
        if self._connection is not None:
            self._connection.close()
            self._connection = None


def _check(pgconn: pq.abc.PGconn, result: pq.abc.PGresult) -> None:
    if result.status in (pq.ExecStatus.COMMAND_OK, pq.ExecStatus.TUPLES_OK):
        return
    message = (result.error_message or pgconn.error_message).decode("utf-8", "replace")
    code = result.error_field(pq.DiagnosticField.SQLSTATE)
    try:
        kind = psycopg.errors.lookup(code.decode()) if code else psycopg.OperationalError
    except KeyError:
        kind = psycopg.DatabaseError
    raise kind(message.strip())


@functools.lru_cache(maxsize=256)
def numbered(statement: str) -> bytes:
    """SQLite's `?` parameters as libpq's `$1`, `$2`, ... (outside literals and comments)."""
    count = itertools.count(1)

    def one(match: re.Match) -> str:
        if match.group(0) == "?":
            return f"${next(count)}"
        if match.group(1):
            raise ValueError("a statement written soon takes `?` parameters only")
        return match.group(0)

    return _TOKEN.sub(one, statement).encode()


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
    with ending_failed(connection.raw), translating:
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
        self._connections = PerThread(lambda: connect(url), lambda c: not c.raw.closed)
        self._depth = threading.local()
        self._recorders = threading.local()  # per thread, `lanes`: one Recorder per lane
        self._every_recorder: list[Recorder] = []
        self._lock = threading.Lock()
        try:
            self.db  # noqa: B018 - connect now: a wrong URL fails here, named
        except PostgresError as error:
            raise DatabaseError(f"cannot connect to {self.describe}: {error}") from None
        self.migrate()

    @property
    def db(self) -> Connection:
        return self._connections.get()

    def close(self) -> None:
        with self._lock:
            recorders, self._every_recorder = self._every_recorder, []
        for recorder in recorders:
            if recorder.pid == os.getpid():
                recorder.close()
        self._recorders = threading.local()
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

    def write_soon(self, statement: str, args=(), *, lane: str = "records") -> Written:
        if getattr(self._depth, "depth", 0):  # inside a transaction: part of it, now
            cursor = self.db.execute(statement, args)
            return Written.now(cursor.rowcount, rows=cursor.fetchall())
        lanes = getattr(self._recorders, "lanes", None)
        if lanes is None:
            lanes = self._recorders.lanes = {}
        recorder = lanes.get(lane)
        if recorder is None or recorder.pid != os.getpid():  # first use here, or a child
            recorder = lanes[lane] = Recorder(self.url)
            with self._lock:
                self._every_recorder.append(recorder)
        return recorder.submit(statement, args)

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
        except (psycopg.Error, PostgresError, sa.exc.SQLAlchemyError) as error:
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


__all__ = [
    "AdvisoryLock",
    "Connection",
    "PostgresDatabase",
    "Row",
    "connect",
    "translate",
    "translated",
    "translating",
]
