"""The database: one SQLite file (the embedded default, the standard library's sqlite3) or a
PostgreSQL server (`Database("postgresql://...")` is a `newsletter.postgres.PostgresDatabase`,
under the same contract), and its one schema history (`newsletter.schema`).

Contract:
- `Database(path)` opens (creating it and its folder if needed, 0600 in 0700, tightening an
  existing file and its -wal and -shm to 0600: `private_files`) and migrates the file: one made
  before the one schema history first runs the numbered `migrations/NNNN_*.sql` (or
  `NNNN_*.py`, whose `migrate(db)` runs inside the same transaction) it has not had (PRAGMA
  user_version), up to the baseline, and is stamped with it; then `newsletter.schema`
  (Alembic) brings every database, a new one from nothing, to the head. WAL mode, foreign
  keys on (erasing a subscriber cascades to every row about them), and a busy timeout, so
  concurrent writers (threads, gunicorn workers, tasks) wait their turn instead of failing
  with "database is locked".
- `transaction(concurrent=False)` is one `BEGIN IMMEDIATE` write transaction. Writers of this
  code also queue on the one file lock (`<db>-writer.lock`), which hands over at once, unlike
  SQLite's polling busy handler. A transaction opened inside another one in the same thread
  joins it (one commit, or one rollback for both); it never waits on itself.
- `write_one(statement)`: one statement atomic on its own, in its own transaction;
  `write_soon(statement)` the same, not durable, returning a `Written` at once: on PostgreSQL
  the caller goes on while the server writes (the ledger's records while the mail goes out).
- Each thread gets its own connection (`PerThread`, for both backends); `close()` closes them
  all. Safe across fork (gunicorn --preload): a child never touches its parent's connections.
- `background_checkpoints=True` (the web app): commits never checkpoint the WAL; the caller's
  background thread runs `checkpoint()` instead.
- `run_lock(name)`: the lock of one job on this database (one announce run at a time): the file
  lock `<db>-<name>.lock` here, an advisory lock on PostgreSQL; released when its holder ends or
  dies.
- `ERRORS`, `BUSY` and `INTEGRITY` are the exception classes of both backends (any error, "busy"
  or unreachable, a constraint refused the write): sqlite3's, and the `Postgres*Error` classes
  here, which the PostgreSQL adapter raises for psycopg's. This module never imports psycopg:
  only opening a postgresql:// database does.
- SQL is written once, in the spelling both backends share (`?` parameters, `ON CONFLICT`,
  `RETURNING`); `dialect` says which one runs, for the rare statement that must differ.
- Timestamps are fixed-width UTC ISO 8601 text (`stamp`, `parse_stamp`), so they sort as they
  compare. The features own their tables and queries; this module knows none of them.
"""

from __future__ import annotations

import importlib.util
import os
import re
import sqlite3
import threading
import weakref
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

from newsletter.filelock import FileLock
from newsletter.private_files import create_private, private_folder, tighten
from newsletter.settings import is_database_url

MIGRATIONS = Path(__file__).resolve().parent / "migrations"  # before the one history
BUSY_TIMEOUT_S = 30.0


class DatabaseError(Exception):
    """The database could not be opened or migrated."""


# PostgreSQL's errors, as its adapter (`newsletter.postgres`) raises them: psycopg's own error is
# their `__cause__`. psycopg is imported only when a postgresql:// database is opened, never for
# SQLite (it costs some 20 MB and the time to load libpq), so the features catch these instead.
class PostgresError(Exception):
    """An error of the PostgreSQL server or of its driver (psycopg.Error)."""

    sqlstate: str | None = None  # the server's error code (e.g. "23505"), when it gave one


class PostgresOperationalError(PostgresError):
    """The server is unreachable or busy, or gave up (a lock, a deadlock, a timeout, a lost
    connection): psycopg.OperationalError, as sqlite3.OperationalError is "database is locked"."""


class PostgresIntegrityError(PostgresError):
    """A constraint refused the write (unique, foreign key, check, not null):
    psycopg.IntegrityError."""


# The exception classes of both backends, for the features' `except`.
ERRORS: tuple[type[Exception], ...] = (sqlite3.Error, PostgresError)
BUSY: tuple[type[Exception], ...] = (sqlite3.OperationalError, PostgresOperationalError)
INTEGRITY: tuple[type[Exception], ...] = (sqlite3.IntegrityError, PostgresIntegrityError)


def utcnow() -> datetime:
    return datetime.now(UTC)


def stamp(moment: datetime) -> str:
    """Timestamps are stored as fixed-width UTC ISO 8601 text, so they sort as they compare."""
    # isoformat, not strftime: the same text ("...T12:34:56.789012Z") in a fifth of the time
    return moment.astimezone(UTC).isoformat(timespec="microseconds")[:-6] + "Z"


def parse_stamp(text: str) -> datetime:
    return datetime.strptime(text, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC)


def migrations() -> list[tuple[int, Path]]:
    found = []
    for path in sorted([*MIGRATIONS.glob("*.sql"), *MIGRATIONS.glob("[0-9]*.py")]):
        match = re.fullmatch(r"(\d{4})_[a-z0-9_]+\.(sql|py)", path.name)
        if not match:
            raise DatabaseError(f"migration {path.name}: name it NNNN_what_it_does.sql (or .py)")
        found.append((int(match.group(1)), path))
    numbers = [number for number, _ in found]
    if numbers != list(range(1, len(found) + 1)):
        raise DatabaseError(f"migrations must be numbered 0001, 0002, ... without gaps: {numbers}")
    return found


def split_statements(script: str) -> list[str]:
    """SQL statements of a script, one by one (triggers included), so that they run inside our
    own transaction: sqlite3's executescript() would commit first."""
    statements, buffer = [], ""
    for line in script.splitlines(keepends=True):
        buffer += line
        if sqlite3.complete_statement(buffer):
            if buffer.strip().strip(";").strip():
                statements.append(buffer.strip())
            buffer = ""
    if buffer.strip() and not all(
        part.strip().startswith("--") for part in buffer.strip().splitlines() if part.strip()
    ):
        raise DatabaseError(
            f"incomplete SQL statement at the end of a script: {buffer.strip()[:80]}"
        )
    return statements


class Written:
    """A write on its way (`Database.write_soon`): `done()` says whether it is done, `wait()`
    waits for it and returns the number of rows it changed, or raises its error; `rows` are
    what its RETURNING gave, once done. It belongs to the thread that wrote it (no other
    thread is involved: PostgreSQL's `Soon` is moved on by that thread's own questions)."""

    __slots__ = ("_finished", "_error", "rowcount", "rows")

    def __init__(self):
        self._finished = False
        self._error: BaseException | None = None
        self.rowcount = 0
        self.rows: list[tuple] = []

    @classmethod
    def now(cls, rowcount: int, rows: list | None = None) -> Written:
        written = cls()
        written.finish(rowcount, rows=rows)
        return written

    def finish(
        self, rowcount: int = 0, error: BaseException | None = None, rows: list | None = None
    ) -> None:
        self.rowcount, self._error, self._finished = rowcount, error, True
        if rows:
            self.rows = rows

    def done(self) -> bool:
        return self._finished

    def wait(self) -> int:
        if not self._finished:  # pragma: no cover - a subclass moves its writes on
            raise RuntimeError("this write was never sent")
        if self._error is not None:
            raise self._error
        return self.rowcount


class _Holder:
    """Owns one thread's connection; closes it when the thread (and so this holder) goes."""

    __slots__ = ("connection", "__weakref__")

    def __init__(self, connection):
        self.connection = connection

    def __del__(self):
        try:
            self.connection.close()
        except Exception:  # noqa: BLE001 - interpreter shutdown
            pass


class PerThread:
    """One connection per thread, for both backends: `get()` opens this thread's with `opener`
    on first use (again when `usable(connection)`, if given, says it is not), and the
    connection is closed when its thread ends, or by `close()`. Safe across fork (gunicorn
    --preload): a child never touches its parent's connections, not even to close them (they
    stay referenced, so that no destructor closes them either), and opens its own."""

    def __init__(
        self, opener: Callable[[], object], usable: Callable[[object], bool] | None = None
    ):
        self._opener, self._usable = opener, usable
        self._local = threading.local()
        self._holders: weakref.WeakSet[_Holder] = weakref.WeakSet()
        self._inherited: list[_Holder] = []
        self._lock = threading.Lock()
        self._pid = os.getpid()

    def get(self):
        if self._pid != os.getpid():
            with self._lock:
                self._inherited.extend(self._holders)
                self._holders = weakref.WeakSet()
                self._local = threading.local()
                self._pid = os.getpid()
        holder = getattr(self._local, "holder", None)
        if holder is None or (self._usable is not None and not self._usable(holder.connection)):
            holder = _Holder(self._opener())
            self._local.holder = holder
            with self._lock:
                self._holders.add(holder)
        return holder.connection

    def close(self) -> None:
        """Close every thread's connection (at shutdown, when no thread uses them)."""
        with self._lock:
            holders = list(self._holders)
            self._holders = weakref.WeakSet()
        for holder in holders:
            holder.connection.close()
        self._local = threading.local()


class Database:
    dialect = "sqlite"

    def __new__(cls, target: str | Path, **options):
        if cls is Database and is_database_url(target):
            try:
                from newsletter.postgres import PostgresDatabase
            except ImportError as error:
                raise DatabaseError(
                    f"{error}: a postgresql:// database needs the extra: "
                    "pip install -e '.[postgres]'"
                ) from None
            return super().__new__(PostgresDatabase)
        return super().__new__(cls)

    def __init__(
        self,
        path: str | Path,
        *,
        clock: Callable[[], datetime] = utcnow,
        background_checkpoints: bool = False,
    ):
        self.path = Path(path)
        self.target = self.path  # what opens it again: the file, or the server's URL
        self.describe = str(self.path)
        self.clock = clock
        self.background_checkpoints = background_checkpoints
        self._local = threading.local()  # this thread's transaction depth
        self._connections = PerThread(self._connect)
        self._pid = os.getpid()
        self._writer = threading.Lock()  # one writer per process at a time ...
        self._writer_lock = self._new_writer_lock()  # ... and one per machine (flock)
        try:  # only the service reads it: 0600 before SQLite opens it (its -wal, -shm copy it)
            private_folder(self.path.parent)
            if self.path.exists():  # never opened here: closing any descriptor of the file
                tighten(self.path)  # drops this process's SQLite locks on it (POSIX locks)
            else:
                create_private(self.path)
            for companion in ("-wal", "-shm", "-journal"):
                tighten(self.path.with_name(self.path.name + companion))
        except OSError as error:
            raise DatabaseError(f"cannot create {self.path}: {error}") from None
        self.migrate()

    # Connections and transactions -----------------------------------------------------------
    @property
    def db(self) -> sqlite3.Connection:
        if self._pid != os.getpid():
            self._after_fork()
        return self._connections.get()

    def _connect(self) -> sqlite3.Connection:
        try:
            connection = sqlite3.connect(
                self.path, timeout=BUSY_TIMEOUT_S, isolation_level=None, check_same_thread=False
            )
            connection.row_factory = sqlite3.Row
            connection.execute(f"PRAGMA busy_timeout = {int(BUSY_TIMEOUT_S * 1000)}")
            mode = connection.execute("PRAGMA journal_mode = WAL").fetchone()[0]
            if mode.lower() != "wal":
                raise DatabaseError(f"{self.path}: could not switch to WAL mode (got {mode})")
            connection.execute("PRAGMA synchronous = NORMAL")
            if self.background_checkpoints:  # see checkpoint()
                connection.execute("PRAGMA wal_autocheckpoint = 0")
            connection.execute("PRAGMA foreign_keys = ON")
        except sqlite3.Error as error:
            raise DatabaseError(f"cannot open the database {self.path}: {error}") from None
        return connection

    def _after_fork(self) -> None:
        """In a forked child (gunicorn --preload): its own writer locks (the connections are
        `PerThread`'s: the parent's are left alone)."""
        self._local = threading.local()
        self._pid = os.getpid()
        self._writer = threading.Lock()
        self._writer_lock = self._new_writer_lock()  # the parent's file stays the parent's

    def close(self) -> None:
        """Close every thread's connection (at shutdown, when no thread uses the store)."""
        self._connections.close()
        self._local = threading.local()
        if self._pid == os.getpid():
            with self._writer:
                self._writer_lock.close()

    def _new_writer_lock(self) -> FileLock:
        # Writers wait in line on a file lock, which the kernel hands over the moment it is
        # released. SQLite's own busy handler polls with sleeps of 1 to 100 ms, which under load
        # costs far more than the write itself; it remains the fallback for other programs.
        return FileLock(self.path.with_name(self.path.name + "-writer.lock"), describe=False)

    @contextmanager
    def transaction(
        self, *, concurrent: bool = False, durable: bool = True
    ) -> Iterator[sqlite3.Connection]:
        """One write transaction, taken at once (BEGIN IMMEDIATE) so that a read never has to
        become a write mid-transaction (which fails at once in WAL mode instead of waiting).
        Inside another transaction of this thread, it joins that one. `concurrent`: the
        transaction only makes writes that are safe side by side (single-statement updates,
        inserts that expect a conflict), so PostgreSQL may run it without the writer lock; on
        SQLite every writer takes its turn all the same. `durable=False`: PostgreSQL does not
        wait for the disk at commit, which is what every SQLite commit is here (WAL,
        synchronous NORMAL): safe from any process's crash, not from a power cut."""
        db = self.db
        if getattr(self._local, "depth", 0):
            self._local.depth += 1
            try:
                yield db
            finally:
                self._local.depth -= 1
            return
        with self._writer:
            self._writer_lock.acquire()
            try:
                db.execute("BEGIN IMMEDIATE")
                self._local.depth = 1
                try:
                    yield db
                except BaseException:
                    db.execute("ROLLBACK")
                    raise
                else:
                    db.execute("COMMIT")
                finally:
                    self._local.depth = 0
            finally:
                self._writer_lock.release()

    def write_one(self, statement: str, args=(), *, durable: bool = True) -> int:
        """One statement that is atomic on its own (an UPDATE by ids), in its own concurrent
        transaction (see `transaction`); the number of rows it changed."""
        with self.transaction(concurrent=True, durable=durable) as db:
            return db.execute(statement, args).rowcount

    def write_soon(self, statement: str, args=(), *, lane: str = "records") -> Written:
        """`write_one`, not durable (`durable=False`), whose answer may come later: the caller
        goes on while the server works, and asks `Written.done()` or `wait()` before anything
        that must follow it; a RETURNING's rows are in `Written.rows`. Writes sent one after
        the other in one `lane` are done in that order; each lane has its own connection on
        PostgreSQL, so a slow write (a page claimed ahead) never holds up another lane's (the
        records). Here, on the SQLite file, it is done at once (a commit is a few
        microseconds)."""
        written = Written()
        try:
            with self.transaction(concurrent=True, durable=False) as db:
                cursor = db.execute(statement, args)
                rows = cursor.fetchall() if cursor.description else None
                written.finish(cursor.rowcount, rows=rows)
        except sqlite3.Error as error:  # raised to whoever waits for it, as on PostgreSQL
            written.finish(error=error)
        return written

    def read_only(self, on: bool = True) -> None:
        """This thread's connection refuses every write while `on` (SQLite's `query_only`): the
        web app sets it for any request that is not a POST, so no other method can change
        state, whatever a view does."""
        self.db.execute(f"PRAGMA query_only = {1 if on else 0}")

    @contextmanager
    def erasing(self) -> Iterator[None]:
        """Deletes inside leave no copy of the rows in the files: the freed pages are zeroed
        (secure_delete), and the write-ahead log, which still holds the rows as they were, is
        copied back and emptied afterwards."""
        self.db.execute("PRAGMA secure_delete = ON")
        try:
            yield
        finally:
            self.db.execute("PRAGMA secure_delete = OFF")
            self.db.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchall()

    @contextmanager
    def checkpoints_aside(self, every: float) -> Iterator[None]:
        """While a run sends, its commits never copy the write-ahead log into the database file
        (nor wait on that copy's fsync): a thread does it every `every` seconds, PASSIVE (it
        never blocks the sender), and SQLite's own setting is back afterwards. A database that
        checkpoints in the background already (the web app's) is left as it is."""
        if self.background_checkpoints:
            yield
            return
        db = self.db
        before = int(db.execute("PRAGMA wal_autocheckpoint").fetchone()[0])
        db.execute("PRAGMA wal_autocheckpoint = 0")
        done = threading.Event()

        def work() -> None:
            while not done.wait(every):
                try:
                    self.checkpoint()
                except Exception:  # noqa: BLE001 - the sender's own commits go on regardless
                    return

        thread = threading.Thread(target=work, name="checkpoints", daemon=True)
        thread.start()
        try:
            yield
        finally:
            done.set()
            thread.join()
            db.execute(f"PRAGMA wal_autocheckpoint = {before}")

    def run_lock(self, name: str) -> FileLock:
        """The lock of one job (`name`) on this database: `acquire(wait=False)` raises
        `filelock.Locked` naming the holder."""
        return FileLock(self.path.with_name(f"{self.path.name}-{name}.lock"))

    def checkpoint(self) -> None:
        """Copy the write-ahead log into the database file (PASSIVE: never waits on, nor
        blocks, readers and writers). With `background_checkpoints`, a background thread calls
        this instead of SQLite doing it inside some writer's commit, so that no request waits
        on the fsync it involves."""
        self.db.execute("PRAGMA wal_checkpoint(PASSIVE)")

    def count_by_status(self, table: str, statuses, where: str = "", args=()) -> dict[str, int]:
        """Rows of `table` by their `status` column, every one of `statuses` listed (0 if none).
        One pass that counts as it reads: no GROUP BY, whose sort on SQLite holds every row
        read (up to the cache size, some MB) at a time."""
        names = [str(status) for status in statuses]
        counting = ", ".join(["count(*) FILTER (WHERE status = ?)"] * len(names))
        query = f"SELECT {counting} FROM {table} {where}"
        return dict(zip(names, self.db.execute(query, (*names, *args)).fetchone(), strict=True))

    def now(self) -> str:
        return stamp(self.clock())

    # Schema ---------------------------------------------------------------------------------
    @property
    def version(self) -> str | None:
        """The schema revision in place (`newsletter.schema.HEAD` once opened)."""
        from newsletter import schema

        return schema.current(self.db)

    def _user_version(self) -> int:
        """How far the numbered SQL files of before the one history took this file."""
        return self.db.execute("PRAGMA user_version").fetchone()[0]

    def migrate(self) -> str:
        """Create or upgrade the schema; return the revision now in place. Safe to run from
        many processes at once: the first one takes the write lock, the others find it done."""
        from newsletter import schema

        if schema.current(self.db) == schema.HEAD:
            return schema.HEAD  # the usual open: one query
        import sqlalchemy as sa

        try:
            self._legacy_migrate()
            engine = self._engine()
            try:
                with engine.begin() as connection:  # BEGIN IMMEDIATE, under the writer lock
                    revision = schema.current(connection.connection.driver_connection)
                    if revision is None and self._user_version():
                        schema.run(connection, schema.BASELINE, stamp=True)
                    self._refuse_newer(schema.current(connection.connection.driver_connection))
                    schema.run(connection)
            finally:
                engine.dispose()
        except (*ERRORS, sa.exc.SQLAlchemyError) as error:
            raise DatabaseError(f"cannot migrate {self.describe}: {error}") from None
        return schema.HEAD

    def _refuse_newer(self, revision: str | None) -> None:
        from newsletter import schema

        if revision is not None and revision not in schema.revisions():
            raise DatabaseError(
                f"{self.describe} is at schema revision {revision}, newer than this code "
                f"({schema.HEAD}); update the code"
            )

    def _legacy_migrate(self) -> None:
        """A file made before the one schema history: its numbered SQL migrations, up to the
        baseline. A new file has none of them (the baseline creates every table)."""
        steps = migrations()
        latest = steps[-1][0] if steps else 0
        with self.transaction() as db:
            current = db.execute("PRAGMA user_version").fetchone()[0]
            if current == 0 or current == latest:
                return
            if current > latest:
                raise DatabaseError(
                    f"{self.path} is at schema version {current}, newer than this code "
                    f"({latest}); update the code"
                )
            for number, script in steps:
                if number <= current:
                    continue
                if script.suffix == ".py":
                    _run_python(script, db)
                    continue
                for statement in split_statements(script.read_text(encoding="utf-8")):
                    db.execute(statement)
            db.execute(f"PRAGMA user_version = {latest}")

    def _engine(self):
        """A SQLAlchemy engine for Alembic on this file: its transactions are BEGIN IMMEDIATE
        under the writer lock, with foreign keys on, as `transaction()`'s."""
        import sqlalchemy as sa

        lock = self._writer_lock

        def connect():
            connection = sqlite3.connect(self.path, timeout=BUSY_TIMEOUT_S, isolation_level=None)
            connection.execute("PRAGMA foreign_keys = ON")
            return connection

        engine = sa.create_engine("sqlite://", creator=connect, poolclass=sa.pool.NullPool)

        @sa.event.listens_for(engine, "begin")
        def begin(connection):
            lock.acquire()
            try:
                connection.exec_driver_sql("BEGIN IMMEDIATE")
            except BaseException:
                lock.release()
                raise

        for name in ("commit", "rollback"):
            sa.event.listen(engine, name, lambda connection: lock.release())
        return engine


def _run_python(script: Path, db: sqlite3.Connection) -> None:
    """A Python migration: its `migrate(db)`, inside the migration's transaction."""
    spec = importlib.util.spec_from_file_location(f"newsletter_migration_{script.stem}", script)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    module.migrate(db)


__all__ = [
    "Written",
    "BUSY",
    "Database",
    "ERRORS",
    "INTEGRITY",
    "PerThread",
    "DatabaseError",
    "PostgresError",
    "PostgresIntegrityError",
    "PostgresOperationalError",
    "migrations",
    "parse_stamp",
    "stamp",
    "utcnow",
]
