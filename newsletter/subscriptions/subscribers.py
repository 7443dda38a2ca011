"""Subscribers: who asked for the newsletter, and where each one is on the opt-in path.

Contract, over the `Database` (table `subscribers`, migration 0001):
- States are the `Status` enum: `unconfirmed -> confirmed -> unsubscribed`, also `bounced` and
  `complained` (set by the mail providers' feedback). Each change sets its timestamp. The
  `confirm_nonce` changes whenever someone leaves the opt-in path, so an old confirmation link
  can never re-subscribe someone who left.
- `request(...)` (the form) stores a sign-up request: one insert, the same for every address.
  `process_requests()` (the background sender) applies them in order with
  `request_subscription(...)`, which records consent and owes a confirmation email (a row of
  the one outgoing-mail ledger, `newsletter.outgoing`) in ONE transaction; its `Outcome` is
  for the logs.
- `confirm` owes the reader a welcome email (kind `WELCOME`) in the same transaction, unless
  one was ever owed to them before: one welcome per reader, ever. The author's `add`/`add_many`
  owe one only when asked (`welcome=True`) and the reader is confirmed at once.
- `confirm`, `set_status`, `unsubscribe`, `add`, `add_many` and `forget` (which deletes the row;
  the foreign keys cascade to every email owed or sent to them) are each one transaction.
  Public links name a subscriber by `public_id` only: random, never the row id.
- The other rooms ask who a subscriber is through this API (`get`, `by_ids`, `recipients`: (status,
  public id, address) by id for bulk email, `confirmed_ids`),
  never with SQL on the `subscribers` table.
"""

from __future__ import annotations

import enum
import functools
import secrets
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass, fields
from datetime import timedelta
from pathlib import Path

from newsletter.database import Database, parse_stamp, stamp
from newsletter.outgoing.ledger import MailLedger

CONFIRMATION = "confirmation"  # the kinds of email in the outgoing-mail ledger
WELCOME = "welcome"  # once per reader, ever: after their first confirmation


class Status(enum.StrEnum):
    UNCONFIRMED = "unconfirmed"
    CONFIRMED = "confirmed"
    UNSUBSCRIBED = "unsubscribed"
    BOUNCED = "bounced"
    COMPLAINED = "complained"


# Who may confirm with a valid link: the unconfirmed, and a complainer who signed up again.
OPTING_IN = (Status.UNCONFIRMED, Status.COMPLAINED)


class Outcome(enum.StrEnum):
    """What a subscribe request did. The web answer is the same for all of them."""

    QUEUED = "queued"  # a confirmation email is on its way
    THROTTLED = "throttled"  # one was queued less than the re-send interval ago
    ALREADY_CONFIRMED = "already_confirmed"


class Confirmation(enum.StrEnum):
    CONFIRMED = "confirmed"
    ALREADY_CONFIRMED = "already_confirmed"
    STALE = "stale"  # a link from an earlier opt-in (they left since, or asked again later)
    UNKNOWN = "unknown"  # no such subscriber (forgotten)


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
    topics: str | None = None  # the reader's choice (`choices`): NULL everything, or JSON
    frequency: str = "each"  # "each" or "weekly"

    @classmethod
    def from_row(cls, row: sqlite3.Row) -> Subscriber:
        values = {name: row[name] for name in _names(cls)}  # one read of the fields per class
        values["status"] = Status(values["status"])
        return cls(**values)


@functools.cache
def _names(cls) -> tuple[str, ...]:
    return tuple(f.name for f in fields(cls))


class Subscribers:
    def __init__(self, database: Database):
        self.database = database

    @classmethod
    def open(cls, path: str | Path, **options) -> Subscribers:
        """Open (and migrate) the database file at `path`."""
        return cls(Database(path, **options))

    def close(self) -> None:
        self.database.close()

    def _subscriber(self, db, where: str, value) -> Subscriber | None:
        row = db.execute(f"SELECT * FROM subscribers WHERE {where} = ?", (value,)).fetchone()
        return Subscriber.from_row(row) if row else None

    def get(self, public_id: str) -> Subscriber | None:
        return self._subscriber(self.database.db, "public_id", public_id)

    def find(self, key: str) -> Subscriber | None:
        """The subscriber with this address key (see addresses.normalize)."""
        return self._subscriber(self.database.db, "email_key", key)

    def by_ids(self, ids: list[int]) -> dict[int, Subscriber]:
        """The subscribers with these row ids (the ones that still exist), by id."""
        found: dict[int, Subscriber] = {}
        for start in range(0, len(ids), 500):  # SQLite's limit on bound parameters
            chunk = ids[start : start + 500]
            rows = self.database.db.execute(
                f"SELECT * FROM subscribers WHERE id IN ({', '.join('?' * len(chunk))})", chunk
            )
            found.update((row["id"], Subscriber.from_row(row)) for row in rows)
        return found

    def recipients(self, ids: list[int]) -> dict[int, tuple[str, str, str]]:
        """(status, public id, address) of the subscribers with these row ids (the ones that
        still exist), by id: what bulk email needs per page, without the rest of each row."""
        select = "SELECT id, status, public_id, email FROM subscribers WHERE id "
        if self.database.dialect == "postgresql":  # one array: one short statement to plan
            queries = [(select + "= ANY(?)", (list(ids),))]
        else:  # SQLite's limit on bound parameters: 500 at a time
            chunks = (ids[start : start + 500] for start in range(0, len(ids), 500))
            queries = [(select + f"IN ({', '.join('?' * len(c))})", c) for c in chunks]
        found: dict[int, tuple[str, str, str]] = {}
        for sql, args in queries:
            rows = self.database.db.execute(sql, args)
            found.update((row[0], (row[1], row[2], row[3])) for row in rows)  # no Subscriber
        return found

    @staticmethod
    def confirmed_ids(db: sqlite3.Connection) -> Iterator[int]:
        """The row ids of the subscribers confirmed now, read as they are used inside the
        caller's transaction (an announcement is owed to who is confirmed at that instant)."""
        cursor = db.execute(
            "SELECT id FROM subscribers WHERE status = ? ORDER BY id", (Status.CONFIRMED,)
        )
        return (row[0] for row in cursor)

    def list(self, status: Status | None = None) -> list[Subscriber]:
        if status is None:
            rows = self.database.db.execute("SELECT * FROM subscribers ORDER BY created_at, id")
        else:
            rows = self.database.db.execute(
                "SELECT * FROM subscribers WHERE status = ? ORDER BY created_at, id", (status,)
            )
        return [Subscriber.from_row(row) for row in rows]

    def request(
        self,
        email: str,
        key: str,
        *,
        source: str | None = None,
        ip_hash: str | None = None,
        topics: str | None = None,
        frequency: str | None = None,
    ) -> None:
        """The subscribe form: one insert into `signup_requests`, the same work for every
        address (known or not), so neither the answer nor its timing tells who is subscribed.
        `process_requests` (the background sender) does the rest. `topics` (encoded, see
        `topics.encode`; None: everything) and `frequency` are the form's choice."""
        with self.database.transaction() as db:
            db.execute(
                "INSERT INTO signup_requests (email, email_key, source, ip_hash, created_at,"
                " topics, frequency) VALUES (?, ?, ?, ?, ?, ?, ?)",
                (email, key, source, ip_hash, self.database.now(), topics, frequency),
            )

    def process_requests(self, limit: int = 100, resend_interval: float = 600.0) -> list[Outcome]:
        """Take up to `limit` sign-up requests, oldest first, and apply each with
        `request_subscription`, in one transaction (a request is applied once, or stays)."""
        with self.database.transaction() as db:
            rows = db.execute(
                "DELETE FROM signup_requests WHERE id IN (SELECT id FROM signup_requests"
                " ORDER BY id LIMIT ?)"
                " RETURNING email, email_key, source, ip_hash, id, topics, frequency",
                (limit,),
            ).fetchall()
            return [
                self.request_subscription(
                    row["email"], row["email_key"], source=row["source"],
                    ip_hash=row["ip_hash"], resend_interval=resend_interval,
                    topics=row["topics"], frequency=row["frequency"],
                )
                for row in sorted(rows, key=lambda row: row["id"])
            ]  # fmt: skip

    def pending_requests(self) -> int:
        return self.database.db.execute("SELECT count(*) FROM signup_requests").fetchone()[0]

    def request_subscription(
        self,
        email: str,
        key: str,
        *,
        source: str | None = None,
        ip_hash: str | None = None,
        resend_interval: float = 600.0,
        topics: str | None = None,
        frequency: str | None = None,
    ) -> Outcome:
        """The subscribe form: record consent and queue a confirmation email, in one transaction.
        The request's choice (`topics`, `frequency`; None: everything, "each") is stored with
        each new opt-in; a confirmed reader's choice is never changed here (only their own
        preferences page changes it)."""
        moment = self.database.clock()
        now = stamp(moment)
        with self.database.transaction() as db:
            subscriber = self._subscriber(db, "email_key", key)
            if subscriber is None:
                self._insert(
                    db, email, key, Status.UNCONFIRMED, now, source, ip_hash, topics, frequency
                )
                return Outcome.QUEUED
            if subscriber.status == Status.CONFIRMED:
                return Outcome.ALREADY_CONFIRMED
            last = subscriber.confirmation_sent_at
            if last and moment - parse_stamp(last) < timedelta(seconds=resend_interval):
                return Outcome.THROTTLED
            if subscriber.status == Status.UNCONFIRMED:
                db.execute(
                    "UPDATE subscribers SET confirmation_sent_at = ?, consent_at = ?,"
                    " consent_source = ?, consent_ip_hash = ? WHERE id = ?",
                    (now, now, source, ip_hash, subscriber.id),
                )
            elif subscriber.status == Status.COMPLAINED:
                # A new opt-in, but they stay `complained` (never announced to) until they
                # press the button in this new confirmation email.
                db.execute(
                    "UPDATE subscribers SET confirm_nonce = ?, confirmation_sent_at = ?,"
                    " consent_at = ?, consent_source = ?, consent_ip_hash = ? WHERE id = ?",
                    (new_nonce(), now, now, source, ip_hash, subscriber.id),
                )
            else:  # unsubscribed or bounced, and asking again: a new opt-in
                db.execute(
                    "UPDATE subscribers SET status = ?, status_changed_at = ?, confirm_nonce = ?,"
                    " confirmation_sent_at = ?, consent_at = ?, consent_source = ?,"
                    " consent_ip_hash = ? WHERE id = ?",
                    (Status.UNCONFIRMED, now, new_nonce(), now, now, source, ip_hash,
                     subscriber.id),
                )  # fmt: skip
            db.execute(  # the choice of the latest opt-in, as its consent record
                "UPDATE subscribers SET topics = ?, frequency = ? WHERE id = ?",
                (topics, frequency or "each", subscriber.id),
            )
            MailLedger.add(db, CONFIRMATION, [subscriber.id], now=now)
            return Outcome.QUEUED

    def confirmation(self, public_id: str, nonce: str) -> tuple[Confirmation, Subscriber | None]:
        """What a confirmation link would do now, changing nothing: CONFIRMED means it would
        confirm (the page with the button shows), the others say why not."""
        subscriber = self.get(public_id)
        if subscriber is None:
            return Confirmation.UNKNOWN, None
        if not secrets.compare_digest(subscriber.confirm_nonce, nonce):
            return Confirmation.STALE, subscriber
        if subscriber.status == Status.CONFIRMED:
            return Confirmation.ALREADY_CONFIRMED, subscriber
        if subscriber.status not in OPTING_IN:
            return Confirmation.STALE, subscriber
        return Confirmation.CONFIRMED, subscriber

    def confirm(self, public_id: str, nonce: str) -> tuple[Confirmation, Subscriber | None]:
        """The confirmation link's button: idempotent; only the latest opt-in's link works."""
        now = self.database.now()
        with self.database.transaction() as db:
            outcome, subscriber = self.confirmation(public_id, nonce)  # this thread's transaction
            if outcome != Confirmation.CONFIRMED:
                return outcome, subscriber
            self._set_status(db, subscriber.id, Status.CONFIRMED, now)
            self._owe_welcome(db, subscriber.id, now)
            return Confirmation.CONFIRMED, self._subscriber(db, "id", subscriber.id)

    @staticmethod
    def _owe_welcome(db, subscriber_id: int, now: str) -> None:
        """Owe a welcome email, inside the caller's transaction, unless one ever was."""
        if not MailLedger.ever_owed(db, WELCOME, subscriber_id):
            MailLedger.add(db, WELCOME, [subscriber_id], now=now)

    def set_status(
        self, public_id: str, status: Status, *, welcome: bool = False
    ) -> Subscriber | None:
        """Move a subscriber to `status` (unsubscribe, bounce, complaint, or the author's
        confirm); a no-op if already there. Leaving the opt-in path voids old confirm links.
        `welcome` (the author's confirm): also owe a welcome email, unless one ever was."""
        now = self.database.now()
        with self.database.transaction() as db:
            subscriber = self._subscriber(db, "public_id", public_id)
            if subscriber is None or subscriber.status == status:
                return subscriber
            self._set_status(db, subscriber.id, status, now)
            if welcome and status == Status.CONFIRMED:
                self._owe_welcome(db, subscriber.id, now)
            return self._subscriber(db, "id", subscriber.id)

    def unsubscribe(self, public_id: str) -> Subscriber | None:
        """Unsubscribe (idempotent). A bounced or complained address keeps that status."""
        with self.database.transaction():  # the check and the change: one transaction
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
        self,
        email: str,
        key: str,
        *,
        status: Status,
        source: str | None = None,
        welcome: bool = False,
    ) -> Subscriber | None:
        """Add a new subscriber as the author (tasks), `confirmed` or `unconfirmed` (then a
        confirmation email is queued). Returns None, changing nothing, if the address is known.
        `welcome`: a reader added `confirmed` is also owed the welcome email (an unconfirmed one
        gets it anyway when they confirm)."""
        now = self.database.now()
        with self.database.transaction() as db:
            if self._subscriber(db, "email_key", key) is not None:
                return None
            subscriber_id = self._insert(db, email, key, status, now, source)
            if welcome and status == Status.CONFIRMED:
                self._owe_welcome(db, subscriber_id, now)
            return self._subscriber(db, "id", subscriber_id)

    def add_many(
        self,
        pairs: list[tuple[str, str]],
        *,
        status: Status,
        source: str | None = None,
        welcome: bool = False,
    ) -> list[str]:
        """`add` for many (email, key) pairs in one transaction (an import: all or nothing);
        known addresses are skipped. Returns the addresses added. A pair may carry the reader's
        choice: (email, key, topics encoded, frequency)."""
        added = []
        with self.database.transaction() as db:
            for email, key, *choice in pairs:
                if db.execute("SELECT 1 FROM subscribers WHERE email_key = ?", (key,)).fetchone():
                    continue
                now = self.database.now()
                subscriber_id = self._insert(db, email, key, status, now, source, None, *choice)
                if welcome and status == Status.CONFIRMED:
                    self._owe_welcome(db, subscriber_id, now)
                added.append(email)
        return added

    @staticmethod
    def _insert(
        db,
        email: str,
        key: str,
        status: Status,
        now: str,
        source: str | None,
        ip_hash: str | None = None,
        topics: str | None = None,
        frequency: str | None = None,
    ) -> int:
        """A new subscriber, `confirmed` or `unconfirmed` (then a confirmation email is queued
        with it), with their choice (`topics` encoded, None: everything; `frequency`, None:
        "each"); returns the row id."""
        confirmed = status == Status.CONFIRMED
        cursor = db.execute(
            "INSERT INTO subscribers (public_id, email, email_key, status, confirm_nonce,"
            " created_at, status_changed_at, confirmed_at, confirmation_sent_at, consent_at,"
            " consent_source, consent_ip_hash, topics, frequency)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id",
            (new_public_id(), email, key, status, new_nonce(), now, now,
             now if confirmed else None, None if confirmed else now, now, source, ip_hash,
             topics, frequency or "each"),
        )  # fmt: skip
        subscriber_id = cursor.fetchone()[0]
        if not confirmed:
            MailLedger.add(db, CONFIRMATION, [subscriber_id], now=now)
        return subscriber_id

    def forget(self, key: str) -> Subscriber | None:
        """Delete the subscriber and, by cascade, every row that refers to them."""
        with self.database.transaction() as db:
            subscriber = self._subscriber(db, "email_key", key)
            if subscriber is not None:
                db.execute("DELETE FROM subscribers WHERE id = ?", (subscriber.id,))
            db.execute("DELETE FROM signup_requests WHERE email_key = ?", (key,))
            db.execute("DELETE FROM address_changes WHERE email_key = ?", (key,))  # typed as new
            return subscriber

    def counts(self) -> dict[str, int]:
        """Subscribers by status, every status listed."""
        return self.database.count_by_status("subscribers", Status)


def new_public_id() -> str:
    return secrets.token_urlsafe(16)


def new_nonce() -> str:
    return secrets.token_urlsafe(6)


__all__ = ["Confirmation", "Outcome", "Status", "Subscriber", "Subscribers"]
