"""The one ledger of outgoing mail (table `outgoing_mail`): every email the newsletter sends to a
reader is one row, whatever its kind, from the moment it is owed until its result is recorded.

Contract, over the `Database`:
- A row is (kind, recipient, about): `kind` names the feature's kind of email
  ("confirmation", "announcement", ...), the recipient is a subscriber (`subscriber_id`) or a
  plan follow (`follow_id`), exactly one of the two, and `about_id` is what it is about in that
  kind's own table (an announcement's id, a plan's week; None when the kind needs nothing
  more). At most one row per (kind, about, recipient) when `about_id` is set.
- `add(db, kind, ids, about_id=..., now=..., to="subscriber" | "follow")` owes emails inside
  the caller's transaction (a sign-up and its confirmation, an announcement and its
  deliveries, enter together or not at all); with `once=True` a row already owed stays as it
  is (`ON CONFLICT DO NOTHING`: owing again is harmless, e.g. a plan's week). Given
  `Recipients` (the caller's query of recipient ids) instead of ids, it owes them all in one
  `INSERT ... SELECT`: an announcement to 100,000 readers is one statement, not 100,000.
  `add_about(db, kind, pairs, now=...)`: one per (subscriber, about) pair (each reader's own
  weekly digest).
- States are `Status`: `queued -> sending -> sent | failed | skipped`, and `sending -> queued`
  again when a temporary failure is retried or a claim is released.
- `claim(...)` takes due rows with a lease (`sending`, `locked_until`): several senders (one per
  gunicorn worker) never hold the same row; a sender that died gives its rows back when the
  lease ends, or at once through `release()` when the caller knows no one else sends them (the
  announcer, under its run lock).
- `ever_owed(db, kind, subscriber_id)`: whether that reader was ever owed one of `kind` (a
  welcome is owed at most once per reader, ever).
- Each result is recorded right after the transport answered, one transaction per call (the
  answers a mailer reports together, in one): `sent`, `retry` (the one `Policy`: the one
  backoff, then `failed` after `max_attempts`), `fail`, `skip`. Recording is idempotent: a
  row already finished is never changed. `sent_soon` returns while its record is on its way
  (`Written`), for a caller that waits for it before whatever must follow it.
- Nothing here reads another table: who a subscriber is, is the subscriptions room's question.
"""

from __future__ import annotations

import enum
import sqlite3
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from newsletter import backoff
from newsletter.database import Database, Written, parse_stamp, stamp

LEASE = timedelta(minutes=10)  # a sender that died mid-send gives its rows back after this
# Claims and results touch rows by id (a claim skips rows another sender holds), so they run
# side by side on PostgreSQL, and with the durability of SQLite's default (WAL, synchronous
# NORMAL): a commit survives the crash of any process, a power cut may forget the last ones
# (then those emails go again, with the same Message-ID).
RECORDING = {"concurrent": True, "durable": False}
_LEASE_OVER = "status = 'sending' AND locked_until <= ?"
_RECLAIM = (  # % the kinds' condition
    f"UPDATE outgoing_mail SET status = 'queued', locked_until = NULL WHERE {_LEASE_OVER} AND %s"
)
PAGE = 500  # ids in one statement
ERROR_CHARS = 500


class Status(enum.StrEnum):
    QUEUED = "queued"
    SENDING = "sending"
    SENT = "sent"
    FAILED = "failed"
    SKIPPED = "skipped"


UNFINISHED = (Status.QUEUED, Status.SENDING)


@dataclass(frozen=True)
class Policy:
    """The one retry policy: after a temporary failure, wait the one backoff (`base` seconds,
    doubling, at most `cap`), and give up after `max_attempts` answers."""

    base: float
    cap: float
    max_attempts: int

    def delay(self, attempts: int) -> float | None:
        """Seconds before the next attempt, after `attempts` answers; None: give up."""
        if attempts >= self.max_attempts:
            return None
        return backoff.delay(attempts, self.base, self.cap)


@dataclass(frozen=True)
class Entry:
    """One row, as claimed: what the feature needs to compose the email."""

    id: int
    kind: str
    subscriber_id: int | None  # the recipient: a subscriber ...
    about_id: int | None
    attempts: int  # answers received before this claim
    follow_id: int | None = None  # ... or a plan follow


class Claim:
    """A page claimed (`MailLedger.claim_soon`), perhaps still on its way: `done()`, and
    `entries()` (waits for it; raises the claim's error), in id order when about one thing, else
    the longest due first."""

    __slots__ = ("_written", "_by_id")

    def __init__(self, written: Written, by_id: bool):
        self._written, self._by_id = written, by_id

    def done(self) -> bool:
        return self._written.done()

    def entries(self) -> list[Entry]:
        written = self._written
        written.wait()
        rows = sorted(written.rows, key=(lambda row: row[1]) if self._by_id else (lambda r: r[:2]))
        return [Entry(*row[1:]) for row in rows]


@dataclass(frozen=True)
class Recipients:
    """The caller's query of recipient ids (one column, in the order they are to be sent) and
    its parameters: `add` owes each of them an email in one statement."""

    sql: str
    args: tuple = ()


class MailLedger:
    def __init__(self, database: Database):
        self.database = database

    # Owing ----------------------------------------------------------------------------------
    @staticmethod
    def add(
        db: sqlite3.Connection,
        kind: str,
        subscriber_ids: Iterable[int] | Recipients,
        *,
        now: str,
        about_id: int | None = None,
        due: str | None = None,
        to: str = "subscriber",
        once: bool = False,
    ) -> int:
        """Owe one email of `kind` to each recipient (subscribers, or plan follows with
        `to="follow"`), inside the caller's transaction; return the new row's id when given one
        recipient in a sequence (else 0). `subscriber_ids` may be an iterator (a cursor): the
        rows are streamed, nothing is held per recipient. `once`: a row already owed (the same
        kind, recipient and `about_id`) is left as it is (`ON CONFLICT DO NOTHING`), and the
        one-recipient call returns 0 for it."""
        conflict = " ON CONFLICT DO NOTHING" if once else ""
        if isinstance(subscriber_ids, Recipients):  # one statement, whatever the number
            query = subscriber_ids
            db.execute(
                f"{_INTO[to]} SELECT ?, id, ?, ?, ?, ? FROM ({query.sql}) AS recipients{conflict}",
                (kind, about_id, now, due or now, now, *query.args),
            )
            return 0
        insert = _INSERT[to] + conflict
        rows = ((kind, sid, about_id, now, due or now, now) for sid in subscriber_ids)
        if isinstance(subscriber_ids, Sequence) and len(subscriber_ids) == 1:
            row = db.execute(insert + " RETURNING id", next(rows)).fetchone()
            return row[0] if row else 0
        db.executemany(insert, rows)  # streamed: nothing held per recipient
        return 0

    @staticmethod
    def add_about(
        db: sqlite3.Connection, kind: str, pairs: Iterable[tuple[int, int]], *, now: str
    ) -> None:
        """Owe one email of `kind` per (subscriber id, about id) pair, inside the caller's
        transaction: each reader's own thing (a weekly digest). `pairs` may be a cursor."""
        rows = ((kind, sid, about_id, now, now, now) for sid, about_id in pairs)
        db.executemany(_INSERT["subscriber"], rows)

    @staticmethod
    def ever_owed(db: sqlite3.Connection, kind: str, subscriber_id: int) -> bool:
        """Whether an email of `kind` was ever owed to this subscriber (whatever became of it),
        read inside the caller's transaction: for the kinds owed at most once per reader."""
        return (
            db.execute(
                "SELECT 1 FROM outgoing_mail WHERE subscriber_id = ? AND kind = ? LIMIT 1",
                (subscriber_id, kind),
            ).fetchone()
            is not None
        )

    # Claiming -------------------------------------------------------------------------------
    def claim(
        self,
        *,
        kinds: Sequence[str],
        about_id: int | None = None,
        limit: int = 200,
        after_id: int = 0,
        due_by: datetime | None = None,
        every: bool = False,
    ) -> list[Entry]:
        """Take up to `limit` rows of `kinds` with a lease: the queued ones due by `due_by`
        (default: now), or every queued one (`every`), and the ones whose sender's lease ran
        out. About one thing (`about_id`): in id order, after `after_id` (a pass's pages); else
        the longest due first."""
        return self.claim_soon(
            kinds=kinds, about_id=about_id, limit=limit, after_id=after_id, due_by=due_by,
            every=every,
        ).entries()  # fmt: skip

    def claim_soon(
        self,
        *,
        kinds: Sequence[str],
        about_id: int | None = None,
        limit: int = 200,
        after_id: int = 0,
        due_by: datetime | None = None,
        every: bool = False,
    ) -> Claim:
        """`claim`, whose page may come later (`Claim.entries()` waits for it): on PostgreSQL
        it is asked for on a connection of its own (`write_soon`'s lane "claims") and the
        caller goes on meanwhile (the dispatcher claims the next page while one goes out); on
        SQLite it is taken at once."""
        moment = self.database.clock()
        now, lease_end = stamp(moment), stamp(moment + LEASE)
        postgres = self.database.dialect == "postgresql"
        if not postgres:
            self._reclaim(kinds, now)
        scope, args = self._scope(kinds, about_id, after_id)
        where = f"status = 'queued' AND {scope}"
        if not every:
            where, args = where + " AND next_attempt_at <= ?", [*args, stamp(due_by or moment)]
        # About one thing: in id order, on `outgoing_mail_about`; of a kind: the longest due
        # first, on the partial index of what is queued.
        order = "id" if about_id is not None else "next_attempt_at, id"
        select = f"SELECT id FROM outgoing_mail WHERE {where} ORDER BY {order} LIMIT ?"
        claim = (
            f"UPDATE outgoing_mail SET status = 'sending', locked_until = ? WHERE id IN"
            f" ({select}%s) RETURNING next_attempt_at, id, kind, subscriber_id, about_id,"
            " attempts, follow_id"
        )
        if postgres:  # rows another sender holds are passed over; both in the claims' lane
            self.database.write_soon(_RECLAIM % _kinds(kinds), (now, *kinds), lane="claims")
            written = self.database.write_soon(
                claim % " FOR UPDATE SKIP LOCKED", (lease_end, *args, limit), lane="claims"
            )
            return Claim(written, about_id is not None)
        if not self.database.db.execute(select, (*args, 1)).fetchone():
            return Claim(Written.now(0), True)  # a read: an idle look takes no write lock
        with self.database.transaction(**RECORDING) as db:  # one statement takes the page
            rows = db.execute(claim % "", (lease_end, *args, limit)).fetchall()
        return Claim(Written.now(len(rows), rows), about_id is not None)

    def _reclaim(self, kinds: Sequence[str], now: str) -> None:
        """Rows whose sender's lease ran out (it died mid-send) are queued again, due as they
        were: a read on the partial index of what is in flight, a write only when one is found
        (on PostgreSQL the write goes ahead of each claim, in its lane: see `claim_soon`)."""
        args = (now, *kinds)
        if self.database.db.execute(
            f"SELECT 1 FROM outgoing_mail WHERE {_LEASE_OVER} AND {_kinds(kinds)} LIMIT 1", args
        ).fetchone():
            with self.database.transaction() as db:
                db.execute(_RECLAIM % _kinds(kinds), args)

    @staticmethod
    def _scope(kinds, about_id, after_id) -> tuple[str, list]:
        where = _kinds(kinds)
        args: list = [*kinds]
        if after_id:
            where, args = where + " AND id > ?", [*args, after_id]
        if about_id is not None:
            where, args = where + " AND about_id = ?", [*args, about_id]
        return where, args

    def release(self, *, kinds: Sequence[str], about_id: int | None = None) -> int:
        """Give every `sending` row of `kinds` back (queued, due as before): for a caller that
        knows no one else is sending them (a run lock). Returns how many."""
        # status and lease first: the index of leases, not every row of the kind
        where = f"status = 'sending' AND locked_until IS NOT NULL AND {_kinds(kinds)}"
        args = [*kinds]
        if about_id is not None:
            where, args = where + " AND about_id = ?", [*args, about_id]
        with self.database.transaction() as db:
            cursor = db.execute(
                f"UPDATE outgoing_mail SET status = 'queued', locked_until = NULL WHERE {where}",
                args,
            )
        return cursor.rowcount

    def give_back(self, ids: Iterable[int]) -> None:
        """Claimed rows that were never tried: queued again, due as before, no attempt counted."""
        rows = [(entry_id,) for entry_id in ids]
        if not rows:
            return  # the usual case, once a page: no write transaction for nothing
        with self.database.transaction(**RECORDING) as db:
            db.executemany(
                "UPDATE outgoing_mail SET status = 'queued', locked_until = NULL"
                " WHERE id = ? AND status = 'sending'",
                rows,
            )

    # Recording ------------------------------------------------------------------------------
    def sent(self, ids: Iterable[int]) -> None:
        """The server accepted these messages (those of one report: the answers read together
        from every connection): recorded at once, one statement and transaction per 500."""
        self.sent_soon(ids).wait()

    def sent_soon(self, ids: Iterable[int]) -> Written:
        """`sent`, whose record may finish later (`Database.write_soon`: on PostgreSQL the
        caller goes on while the server writes; `done()` or `wait()` before anything that must
        follow the record, such as ending the next message on the same connection)."""
        now, ids = self.database.now(), list(ids)
        written = Written.now(0)
        for start in range(0, len(ids), PAGE):  # one statement per page of ids (one report:
            page = ids[start : start + PAGE]  # one page, but for a Mailgun batch)
            if start:
                written.wait()  # the page before (in order: a failure is never passed over)
            written = self.database.write_soon(
                "UPDATE outgoing_mail SET status = 'sent', sent_at = ?, updated_at = ?,"
                " attempts = attempts + 1, locked_until = NULL, last_error = NULL"
                f" WHERE id IN ({', '.join('?' * len(page))})"
                " AND status IN ('queued', 'sending')",
                (now, now, *page),
            )
        return written

    def retry(self, ids: Iterable[int], error: str, policy: Policy) -> int:
        """A temporary failure: each row is queued again after the policy's backoff, or failed
        when it has had its `max_attempts`. Returns how many failed for good."""
        moment = self.database.clock()
        now = stamp(moment)
        given_up = 0
        with self.database.transaction() as db:
            for entry_id in ids:
                row = db.execute(
                    "SELECT attempts FROM outgoing_mail WHERE id = ? AND status IN"
                    " ('queued', 'sending')",
                    (entry_id,),
                ).fetchone()
                if row is None:
                    continue
                attempts = row[0] + 1
                wait = policy.delay(attempts)
                if wait is None:
                    given_up += 1
                    text = f"gave up after {attempts} attempts: {error}"
                    status, due = "failed", None
                else:
                    text, status = error, "queued"
                    due = stamp(moment + timedelta(seconds=wait))
                db.execute(
                    "UPDATE outgoing_mail SET status = ?, attempts = ?, updated_at = ?,"
                    " next_attempt_at = coalesce(?, next_attempt_at), locked_until = NULL,"
                    " last_error = ? WHERE id = ?",
                    (status, attempts, now, due, text[:ERROR_CHARS], entry_id),
                )
        return given_up

    def fail(self, ids: Iterable[int], error: str) -> None:
        """Refused for good (the address, or an email that cannot be made): one attempt."""
        self._finish(ids, Status.FAILED, error, attempt=True)

    def skip(self, ids: Iterable[int], reason: str) -> None:
        """No longer owed (the reader left, or it was answered meanwhile): no attempt."""
        self._finish(ids, Status.SKIPPED, reason, attempt=False)

    def _finish(self, ids, status: Status, text: str, *, attempt: bool) -> None:
        now = self.database.now()
        with self.database.transaction(**RECORDING) as db:
            db.executemany(
                "UPDATE outgoing_mail SET status = ?, last_error = ?, updated_at = ?,"
                f" locked_until = NULL, attempts = attempts + {1 if attempt else 0}"
                " WHERE id = ? AND status IN ('queued', 'sending')",
                [(status, text[:ERROR_CHARS], now, entry_id) for entry_id in ids],
            )

    # Questions ------------------------------------------------------------------------------
    def next_due(
        self, kinds: Sequence[str], about_id: int | None = None, *, last_by: datetime | None = None
    ) -> datetime | None:
        """When the next queued row of `kinds` (about `about_id`) is due (None: none queued);
        with `last_by`, when the last one due by then is (None: none is due by then)."""
        where, args = f"status = 'queued' AND {_kinds(kinds)}", [*kinds]
        if about_id is not None:
            where, args = where + " AND about_id = ?", [*args, about_id]
        which = "min"
        if last_by is not None:
            where, args, which = where + " AND next_attempt_at <= ?", [*args, stamp(last_by)], "max"
        row = self.database.db.execute(
            f"SELECT {which}(next_attempt_at) FROM outgoing_mail WHERE {where}", args
        ).fetchone()
        return parse_stamp(row[0]) if row[0] else None

    def unfinished(self, kinds: Sequence[str]) -> int:
        """How many rows of `kinds` are queued or in flight: on the two partial indexes of what
        is unfinished, never a scan of every row of a kind."""
        return sum(
            self.database.db.execute(
                f"SELECT count(*) FROM outgoing_mail WHERE status = '{status}' AND {_kinds(kinds)}",
                [*kinds],
            ).fetchone()[0]
            for status in UNFINISHED
        )

    def counts(self, kind: str | None = None, about_id: int | None = None) -> dict[str, int]:
        """Rows by status (of one kind, and one thing it is about), every status listed."""
        where, args = self._where(kind, about_id)
        return self.database.count_by_status("outgoing_mail", Status, where, args)

    def rows(
        self,
        kind: str | None = None,
        about_id: int | None = None,
        subscriber_id: int | None = None,
        follow_id: int | None = None,
    ) -> list[sqlite3.Row]:
        """The rows (of one kind, about one thing, to one recipient), oldest first."""
        where, args = self._where(kind, about_id, subscriber_id, follow_id)
        return self.database.db.execute(
            f"SELECT * FROM outgoing_mail {where} ORDER BY id", args
        ).fetchall()

    def sent_rows(self, kind: str) -> list[tuple[int, str, int | None]]:
        """(subscriber_id, sent_at, about_id) of every sent row of `kind`, oldest first."""
        return self.database.db.execute(
            "SELECT subscriber_id, sent_at, about_id FROM outgoing_mail"
            " WHERE kind = ? AND status = 'sent' ORDER BY sent_at, id",
            (kind,),
        ).fetchall()

    def sent_since(self, kind: str, since: str) -> int:
        return self.database.db.execute(
            "SELECT count(*) FROM outgoing_mail WHERE kind = ? AND status = 'sent'"
            " AND sent_at >= ?",
            (kind, since),
        ).fetchone()[0]

    @staticmethod
    def _where(kind=None, about_id=None, subscriber_id=None, follow_id=None) -> tuple[str, tuple]:
        parts, args = [], []
        for column, value in (
            ("kind", kind),
            ("about_id", about_id),
            ("subscriber_id", subscriber_id),
            ("follow_id", follow_id),
        ):
            if value is not None:
                parts.append(f"{column} = ?")
                args.append(value)
        return ("WHERE " + " AND ".join(parts) if parts else ""), tuple(args)


def _kinds(kinds: Sequence[str]) -> str:
    """The condition on the kinds, one placeholder each."""
    return f"kind IN ({', '.join('?' * len(kinds))})"


_INTO = {  # by recipient
    to: f"INSERT INTO outgoing_mail (kind, {to}_id, about_id, created_at, next_attempt_at,"
    " updated_at)"
    for to in ("subscriber", "follow")
}
_INSERT = {to: f"{into} VALUES (?, ?, ?, ?, ?, ?)" for to, into in _INTO.items()}

__all__ = ["Claim", "Entry", "LEASE", "MailLedger", "Policy", "Recipients", "Status", "UNFINISHED"]
