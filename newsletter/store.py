"""The subscriber store: one SQLite file, the standard library's sqlite3, nothing else.

Contract:
- `Store(path)` opens (creating it and var/ if needed) and migrates the database: a new file gets
  `schema.sql`; an existing one gets the numbered `migrations/NNNN_*.sql` it has not had yet
  (PRAGMA user_version). WAL mode, foreign keys on, and a busy timeout, so concurrent writers
  (threads, gunicorn workers, tasks) wait their turn instead of failing with "database is locked".
- Every write is one `BEGIN IMMEDIATE` transaction: the subscribe request and its confirmation
  email enter the store together or not at all, and a request is never lost to a slow mailer.
- Each thread gets its own connection; `close()` closes them all. Writers of this code also
  queue on a file lock (`<db>-writer.lock`), which hands over at once, unlike SQLite's polling
  busy handler; the busy timeout still covers other programs.
- `background_checkpoints=True` (the web app): commits never checkpoint the WAL; the caller's
  background thread runs `checkpoint()` instead.
- Subscribers move `unconfirmed -> confirmed -> unsubscribed` (also `bounced`, `complained`);
  each change sets its timestamp. Their `confirm_nonce` changes whenever they leave the opt-in
  path, so an old confirmation link can never re-subscribe someone who left.
- `email_queue` holds outgoing transactional emails; senders claim due rows with a lease, and
  mark them sent, retried later (backoff), failed or skipped.
- The announcements issue adds its tables in migration 0002 (see the note in schema.sql).
"""

from __future__ import annotations

import enum
import os
import re
import secrets
import sqlite3
import threading
import weakref
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, fields
from datetime import UTC, datetime, timedelta
from pathlib import Path

try:
    import fcntl
except ImportError:  # not POSIX: SQLite's busy timeout alone orders the writers
    fcntl = None

HERE = Path(__file__).resolve().parent
SCHEMA = HERE / "schema.sql"
MIGRATIONS = HERE / "migrations"
BUSY_TIMEOUT_S = 30.0
LEASE = timedelta(minutes=10)  # a sender that crashed mid-send releases its emails after this


class Status(enum.StrEnum):
    UNCONFIRMED = "unconfirmed"
    CONFIRMED = "confirmed"
    UNSUBSCRIBED = "unsubscribed"
    BOUNCED = "bounced"
    COMPLAINED = "complained"


class QueueStatus(enum.StrEnum):
    QUEUED = "queued"
    SENDING = "sending"
    SENT = "sent"
    FAILED = "failed"
    SKIPPED = "skipped"


class Outcome(enum.StrEnum):
    """What a subscribe request did. The web answer is the same for all of them."""

    QUEUED = "queued"  # a confirmation email is on its way
    THROTTLED = "throttled"  # one was queued less than the re-send interval ago
    ALREADY_CONFIRMED = "already_confirmed"
    BLOCKED = "blocked"  # the address complained (marked us as spam): never mail it again


class Confirmation(enum.StrEnum):
    CONFIRMED = "confirmed"
    ALREADY_CONFIRMED = "already_confirmed"
    STALE = "stale"  # a link from an earlier opt-in (they left since, or asked again later)
    UNKNOWN = "unknown"  # no such subscriber (forgotten)


class StoreError(Exception):
    """The database could not be opened or migrated."""


@dataclass(frozen=True)
class Subscriber:
    id: int
    public_id: str
    email: str
    email_key: str
    status: Status
    confirm_nonce: str
    created_at: str
    status_changed_at: str
    confirmation_sent_at: str | None
    confirmed_at: str | None
    unsubscribed_at: str | None
    bounced_at: str | None
    complained_at: str | None
    consent_at: str | None
    consent_source: str | None
    consent_ip_hash: str | None

    @classmethod
    def from_row(cls, row: sqlite3.Row, prefix: str = "") -> Subscriber:
        values = {f.name: row[prefix + f.name] for f in fields(cls)}
        values["status"] = Status(values["status"])
        return cls(**values)


@dataclass(frozen=True)
class QueuedEmail:
    id: int
    kind: str
    attempts: int
    created_at: str
    subscriber: Subscriber


def utcnow() -> datetime:
    return datetime.now(UTC)


def stamp(moment: datetime) -> str:
    """Timestamps are stored as fixed-width UTC ISO 8601 text, so they sort as they compare."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def parse_stamp(text: str) -> datetime:
    return datetime.strptime(text, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC)


def migrations() -> list[tuple[int, Path]]:
    found = []
    for path in sorted(MIGRATIONS.glob("*.sql")):
        match = re.fullmatch(r"(\d{4})_[a-z0-9_]+\.sql", path.name)
        if not match:
            raise StoreError(f"migration {path.name}: name it NNNN_what_it_does.sql")
        found.append((int(match.group(1)), path))
    numbers = [number for number, _ in found]
    if numbers != list(range(1, len(found) + 1)):
        raise StoreError(f"migrations must be numbered 0001, 0002, ... without gaps: {numbers}")
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
        raise StoreError(f"incomplete SQL statement at the end of a script: {buffer.strip()[:80]}")
    return statements


class _Holder:
    """Owns one thread's connection; closes it when the thread (and so this holder) goes."""

    __slots__ = ("connection", "__weakref__")

    def __init__(self, connection: sqlite3.Connection):
        self.connection = connection

    def __del__(self):
        try:
            self.connection.close()
        except Exception:  # noqa: BLE001 - interpreter shutdown
            pass


class Store:
    def __init__(
        self,
        path: str | Path,
        *,
        clock: Callable[[], datetime] = utcnow,
        migrate: bool = True,
        background_checkpoints: bool = False,
    ):
        self.path = Path(path)
        self.clock = clock
        self.background_checkpoints = background_checkpoints
        self._local = threading.local()
        self._holders: weakref.WeakSet[_Holder] = weakref.WeakSet()
        self._lock = threading.Lock()
        self._pid = os.getpid()
        self._inherited: list[_Holder] = []
        self._writer = threading.Lock()  # one writer per process at a time ...
        self._writer_file = None  # ... and one per machine, with flock on `<db>-writer.lock`
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise StoreError(f"cannot create {self.path.parent}: {error}") from None
        if migrate:
            self.migrate()

    # Connections and transactions -----------------------------------------------------------
    @property
    def db(self) -> sqlite3.Connection:
        if self._pid != os.getpid():
            self._after_fork()
        holder = getattr(self._local, "holder", None)
        if holder is None:
            holder = _Holder(self._connect())
            self._local.holder = holder
            with self._lock:
                self._holders.add(holder)
        return holder.connection

    def _connect(self) -> sqlite3.Connection:
        try:
            connection = sqlite3.connect(
                self.path, timeout=BUSY_TIMEOUT_S, isolation_level=None, check_same_thread=False
            )
            connection.row_factory = sqlite3.Row
            connection.execute(f"PRAGMA busy_timeout = {int(BUSY_TIMEOUT_S * 1000)}")
            mode = connection.execute("PRAGMA journal_mode = WAL").fetchone()[0]
            if mode.lower() != "wal":
                raise StoreError(f"{self.path}: could not switch to WAL mode (got {mode})")
            connection.execute("PRAGMA synchronous = NORMAL")
            if self.background_checkpoints:  # see checkpoint()
                connection.execute("PRAGMA wal_autocheckpoint = 0")
            connection.execute("PRAGMA foreign_keys = ON")
        except sqlite3.Error as error:
            raise StoreError(f"cannot open the database {self.path}: {error}") from None
        return connection

    def _after_fork(self) -> None:
        """In a forked child (gunicorn --preload): never touch the parent's connections, not
        even to close them; keep them referenced so that no destructor closes them either."""
        with self._lock:
            self._inherited.extend(self._holders)
            self._holders = weakref.WeakSet()
            self._local = threading.local()
            self._pid = os.getpid()
            self._writer = threading.Lock()
            self._writer_file = None

    def close(self) -> None:
        """Close every thread's connection (at shutdown, when no thread uses the store)."""
        with self._lock:
            holders = list(self._holders)
            self._holders = weakref.WeakSet()
        for holder in holders:
            holder.connection.close()
        self._local = threading.local()
        if self._writer_file is not None and self._pid == os.getpid():
            with self._writer:
                self._writer_file.close()
                self._writer_file = None

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """One write transaction, taken at once (BEGIN IMMEDIATE) so that a read never has to
        become a write mid-transaction (which fails at once in WAL mode instead of waiting)."""
        db = self.db
        with self._writer, self._machine_lock():
            db.execute("BEGIN IMMEDIATE")
            try:
                yield db
            except BaseException:
                db.execute("ROLLBACK")
                raise
            else:
                db.execute("COMMIT")

    @contextmanager
    def _machine_lock(self) -> Iterator[None]:
        """Writers wait in line on a file lock, which the kernel hands over the moment it is
        released. SQLite's own busy handler polls with sleeps of 1 to 100 ms, which under load
        costs far more than the write itself; it remains the fallback for other programs."""
        if fcntl is None:
            yield
            return
        if self._writer_file is None:
            self._writer_file = open(self.path.with_name(self.path.name + "-writer.lock"), "a+b")  # noqa: SIM115
        fcntl.flock(self._writer_file, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(self._writer_file, fcntl.LOCK_UN)

    def checkpoint(self) -> None:
        """Copy the write-ahead log into the database file (PASSIVE: never waits on, nor
        blocks, readers and writers). With `background_checkpoints`, a background thread calls
        this instead of SQLite doing it inside some writer's commit, so that no request waits
        on the fsync it involves."""
        self.db.execute("PRAGMA wal_checkpoint(PASSIVE)")

    def now(self) -> str:
        return stamp(self.clock())

    # Schema ---------------------------------------------------------------------------------
    @property
    def version(self) -> int:
        return self.db.execute("PRAGMA user_version").fetchone()[0]

    def migrate(self) -> int:
        """Create or upgrade the schema; return the version now in place. Safe to run from many
        processes at once: the first one takes the write lock, the others find it done."""
        steps = migrations()
        latest = steps[-1][0] if steps else 0
        try:
            with self.transaction() as db:
                current = db.execute("PRAGMA user_version").fetchone()[0]
                if current > latest:
                    raise StoreError(
                        f"{self.path} is at schema version {current}, newer than this code "
                        f"({latest}); update the code"
                    )
                if current == 0 and not _has_tables(db):
                    scripts = [SCHEMA]
                else:
                    scripts = [path for number, path in steps if number > current]
                for script in scripts:
                    for statement in split_statements(script.read_text(encoding="utf-8")):
                        db.execute(statement)
                db.execute(f"PRAGMA user_version = {latest}")
        except sqlite3.Error as error:
            raise StoreError(f"cannot migrate {self.path}: {error}") from None
        return latest

    # Subscribers ----------------------------------------------------------------------------
    def _subscriber(self, db, where: str, value) -> Subscriber | None:
        row = db.execute(f"SELECT * FROM subscribers WHERE {where} = ?", (value,)).fetchone()
        return Subscriber.from_row(row) if row else None

    def get(self, public_id: str) -> Subscriber | None:
        return self._subscriber(self.db, "public_id", public_id)

    def find(self, key: str) -> Subscriber | None:
        """The subscriber with this address key (see addresses.normalize)."""
        return self._subscriber(self.db, "email_key", key)

    def subscribers(self, status: Status | None = None) -> list[Subscriber]:
        if status is None:
            rows = self.db.execute("SELECT * FROM subscribers ORDER BY created_at, id")
        else:
            rows = self.db.execute(
                "SELECT * FROM subscribers WHERE status = ? ORDER BY created_at, id", (status,)
            )
        return [Subscriber.from_row(row) for row in rows]

    def request_subscription(
        self,
        email: str,
        key: str,
        *,
        source: str | None = None,
        ip_hash: str | None = None,
        resend_interval: float = 600.0,
    ) -> Outcome:
        """The subscribe form: record consent and queue a confirmation email, in one transaction."""
        moment = self.clock()
        now = stamp(moment)
        with self.transaction() as db:
            subscriber = self._subscriber(db, "email_key", key)
            if subscriber is None:
                cursor = db.execute(
                    "INSERT INTO subscribers (public_id, email, email_key, status, confirm_nonce,"
                    " created_at, status_changed_at, confirmation_sent_at, consent_at,"
                    " consent_source, consent_ip_hash) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (new_public_id(), email, key, Status.UNCONFIRMED, new_nonce(), now, now, now,
                     now, source, ip_hash),
                )  # fmt: skip
                self._queue(db, "confirmation", cursor.lastrowid, now)
                return Outcome.QUEUED
            if subscriber.status == Status.CONFIRMED:
                return Outcome.ALREADY_CONFIRMED
            if subscriber.status == Status.COMPLAINED:
                return Outcome.BLOCKED
            last = subscriber.confirmation_sent_at
            if last and moment - parse_stamp(last) < timedelta(seconds=resend_interval):
                return Outcome.THROTTLED
            if subscriber.status == Status.UNCONFIRMED:
                db.execute(
                    "UPDATE subscribers SET confirmation_sent_at = ?, consent_at = ?,"
                    " consent_source = ?, consent_ip_hash = ? WHERE id = ?",
                    (now, now, source, ip_hash, subscriber.id),
                )
            else:  # unsubscribed or bounced, and asking again: a new opt-in
                db.execute(
                    "UPDATE subscribers SET status = ?, status_changed_at = ?, confirm_nonce = ?,"
                    " confirmation_sent_at = ?, consent_at = ?, consent_source = ?,"
                    " consent_ip_hash = ? WHERE id = ?",
                    (Status.UNCONFIRMED, now, new_nonce(), now, now, source, ip_hash,
                     subscriber.id),
                )  # fmt: skip
            self._queue(db, "confirmation", subscriber.id, now)
            return Outcome.QUEUED

    def confirm(self, public_id: str, nonce: str) -> tuple[Confirmation, Subscriber | None]:
        """The confirmation link: idempotent; only the latest opt-in's link works."""
        now = self.now()
        with self.transaction() as db:
            subscriber = self._subscriber(db, "public_id", public_id)
            if subscriber is None:
                return Confirmation.UNKNOWN, None
            if not secrets.compare_digest(subscriber.confirm_nonce, nonce):
                return Confirmation.STALE, subscriber
            if subscriber.status == Status.CONFIRMED:
                return Confirmation.ALREADY_CONFIRMED, subscriber
            if subscriber.status != Status.UNCONFIRMED:
                return Confirmation.STALE, subscriber
            self._set_status(db, subscriber.id, Status.CONFIRMED, now)
            return Confirmation.CONFIRMED, self._subscriber(db, "id", subscriber.id)

    def set_status(self, public_id: str, status: Status) -> Subscriber | None:
        """Move a subscriber to `status` (unsubscribe, bounce, complaint, or the author's
        confirm); a no-op if already there. Leaving the opt-in path voids old confirm links."""
        now = self.now()
        with self.transaction() as db:
            subscriber = self._subscriber(db, "public_id", public_id)
            if subscriber is None or subscriber.status == status:
                return subscriber
            self._set_status(db, subscriber.id, status, now)
            return self._subscriber(db, "id", subscriber.id)

    def unsubscribe(self, public_id: str) -> Subscriber | None:
        """Unsubscribe (idempotent). A bounced or complained address keeps that status."""
        subscriber = self.get(public_id)
        if subscriber is None or subscriber.status in (Status.BOUNCED, Status.COMPLAINED):
            return subscriber
        return self.set_status(public_id, Status.UNSUBSCRIBED)

    @staticmethod
    def _set_status(db, subscriber_id: int, status: Status, now: str) -> None:
        column = {
            Status.CONFIRMED: "confirmed_at",
            Status.UNSUBSCRIBED: "unsubscribed_at",
            Status.BOUNCED: "bounced_at",
            Status.COMPLAINED: "complained_at",
            Status.UNCONFIRMED: "status_changed_at",
        }[status]
        nonce = "" if status == Status.CONFIRMED else ", confirm_nonce = :nonce"
        db.execute(
            f"UPDATE subscribers SET status = :status, status_changed_at = :now, {column} = :now"
            f"{nonce} WHERE id = :id",
            {"status": status, "now": now, "nonce": new_nonce(), "id": subscriber_id},
        )

    def add(
        self, email: str, key: str, *, status: Status, source: str | None = None
    ) -> Subscriber | None:
        """Add a new subscriber as the author (tasks), `confirmed` or `unconfirmed` (then a
        confirmation email is queued). Returns None, changing nothing, if the address is known."""
        now = self.now()
        with self.transaction() as db:
            if self._subscriber(db, "email_key", key) is not None:
                return None
            cursor = db.execute(
                "INSERT INTO subscribers (public_id, email, email_key, status, confirm_nonce,"
                " created_at, status_changed_at, confirmed_at, confirmation_sent_at, consent_at,"
                " consent_source) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (new_public_id(), email, key, status, new_nonce(), now, now,
                 now if status == Status.CONFIRMED else None,
                 now if status == Status.UNCONFIRMED else None, now, source),
            )  # fmt: skip
            if status == Status.UNCONFIRMED:
                self._queue(db, "confirmation", cursor.lastrowid, now)
            return self._subscriber(db, "id", cursor.lastrowid)

    def add_many(
        self, pairs: list[tuple[str, str]], *, status: Status, source: str | None = None
    ) -> list[str]:
        """`add` for many (email, key) pairs in one transaction (an import: all or nothing);
        known addresses are skipped. Returns the addresses added."""
        added = []
        with self.transaction() as db:
            for email, key in pairs:
                if db.execute("SELECT 1 FROM subscribers WHERE email_key = ?", (key,)).fetchone():
                    continue
                now = self.now()
                confirmed = status == Status.CONFIRMED
                cursor = db.execute(
                    "INSERT INTO subscribers (public_id, email, email_key, status, confirm_nonce,"
                    " created_at, status_changed_at, confirmed_at, confirmation_sent_at,"
                    " consent_at, consent_source) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (new_public_id(), email, key, status, new_nonce(), now, now,
                     now if confirmed else None, None if confirmed else now, now, source),
                )  # fmt: skip
                if not confirmed:
                    self._queue(db, "confirmation", cursor.lastrowid, now)
                added.append(email)
        return added

    def forget(self, key: str) -> Subscriber | None:
        """Delete the subscriber and, by cascade, every row that refers to them."""
        with self.transaction() as db:
            subscriber = self._subscriber(db, "email_key", key)
            if subscriber is not None:
                db.execute("DELETE FROM subscribers WHERE id = ?", (subscriber.id,))
            return subscriber

    def counts(self) -> dict[str, dict[str, int]]:
        """Subscribers by status and queued emails by status, every status listed."""
        subscribers = {status.value: 0 for status in Status}
        for row in self.db.execute("SELECT status, count(*) FROM subscribers GROUP BY status"):
            subscribers[row[0]] = row[1]
        emails = {status.value: 0 for status in QueueStatus}
        for row in self.db.execute("SELECT status, count(*) FROM email_queue GROUP BY status"):
            emails[row[0]] = row[1]
        return {"subscribers": subscribers, "emails": emails}

    def queue_health(self) -> dict[str, int]:
        """Queued and failed emails, read through the queue's index (cheap at any size)."""
        row = self.db.execute(
            "SELECT (SELECT count(*) FROM email_queue WHERE status = 'queued'),"
            " (SELECT count(*) FROM email_queue WHERE status = 'failed')"
        ).fetchone()
        return {"queued": row[0], "failed": row[1]}

    # The email queue --------------------------------------------------------------------------
    @staticmethod
    def _queue(db, kind: str, subscriber_id: int, now: str) -> int:
        cursor = db.execute(
            "INSERT INTO email_queue (kind, subscriber_id, created_at, next_attempt_at)"
            " VALUES (?, ?, ?, ?)",
            (kind, subscriber_id, now, now),
        )
        return cursor.lastrowid

    def claim(self, limit: int = 20) -> list[QueuedEmail]:
        """Take up to `limit` due emails (or ones whose sender's lease ran out) for sending."""
        moment = self.clock()
        now, lease_end = stamp(moment), stamp(moment + LEASE)
        with self.transaction() as db:
            rows = db.execute(
                "SELECT q.id AS q_id, q.kind AS q_kind, q.attempts AS q_attempts,"
                " q.created_at AS q_created_at, s.* FROM email_queue q"
                " JOIN subscribers s ON s.id = q.subscriber_id"
                " WHERE (q.status = 'queued' AND q.next_attempt_at <= :now)"
                " OR (q.status = 'sending' AND q.locked_until <= :now)"
                " ORDER BY q.next_attempt_at, q.id LIMIT :limit",
                {"now": now, "limit": limit},
            ).fetchall()
            db.executemany(
                "UPDATE email_queue SET status = 'sending', attempts = attempts + 1,"
                " locked_until = ? WHERE id = ?",
                [(lease_end, row["q_id"]) for row in rows],
            )
        return [
            QueuedEmail(
                id=row["q_id"],
                kind=row["q_kind"],
                attempts=row["q_attempts"] + 1,
                created_at=row["q_created_at"],
                subscriber=Subscriber.from_row(row),
            )
            for row in rows
        ]

    def next_due(self) -> datetime | None:
        """When the next queued email is due (None if the queue is empty)."""
        row = self.db.execute(
            "SELECT min(next_attempt_at) FROM email_queue WHERE status = 'queued'"
        ).fetchone()
        return parse_stamp(row[0]) if row[0] else None

    def mark_sent(self, email_id: int) -> None:
        self._finish(email_id, QueueStatus.SENT, None, sent_at=self.now())

    def mark_skipped(self, email_id: int, reason: str) -> None:
        self._finish(email_id, QueueStatus.SKIPPED, reason)

    def mark_failed(self, email_id: int, error: str) -> None:
        self._finish(email_id, QueueStatus.FAILED, error)

    def mark_retry(self, email_id: int, error: str, delay: float) -> None:
        when = stamp(self.clock() + timedelta(seconds=delay))
        with self.transaction() as db:
            db.execute(
                "UPDATE email_queue SET status = 'queued', next_attempt_at = ?,"
                " locked_until = NULL, last_error = ? WHERE id = ?",
                (when, error[:500], email_id),
            )

    def _finish(self, email_id: int, status: QueueStatus, error: str | None, sent_at=None):
        with self.transaction() as db:
            db.execute(
                "UPDATE email_queue SET status = ?, locked_until = NULL, last_error = ?,"
                " sent_at = ? WHERE id = ?",
                (status, error[:500] if error else None, sent_at, email_id),
            )

    def emails(self, subscriber_id: int | None = None) -> list[sqlite3.Row]:
        """Queue rows (all, or one subscriber's), oldest first: for tasks and tests."""
        if subscriber_id is None:
            return self.db.execute("SELECT * FROM email_queue ORDER BY id").fetchall()
        return self.db.execute(
            "SELECT * FROM email_queue WHERE subscriber_id = ? ORDER BY id", (subscriber_id,)
        ).fetchall()


def _has_tables(db) -> bool:
    return db.execute("SELECT count(*) FROM sqlite_master WHERE type = 'table'").fetchone()[0] > 0


def new_public_id() -> str:
    return secrets.token_urlsafe(16)


def new_nonce() -> str:
    return secrets.token_urlsafe(6)


__all__ = [
    "Confirmation",
    "Outcome",
    "QueueStatus",
    "QueuedEmail",
    "Status",
    "Store",
    "StoreError",
    "Subscriber",
    "parse_stamp",
    "stamp",
    "utcnow",
]
