"""The confirmation queue: transactional emails waiting to go, in table `email_queue`.

Contract, over the `Database`:
- `enqueue(db, kind, subscriber_id, now)` adds a row inside the caller's transaction (the
  subscribe request and its email enter together or not at all).
- `EmailQueue(database)`: senders `claim(limit)` due rows with a lease (several senders, e.g. one
  per gunicorn worker, never send the same row twice; a sender that died releases its rows
  when the lease ends), then record each result: `mark_sent`, `mark_retry(delay)` (back to
  `queued`, due later), `mark_failed` or `mark_skipped` (it no longer applies).
- `claim` returns each email with its subscriber's row (`Subscriber.from_row` reads it); this
  module sits below `subscribers`, which queues through `enqueue`.
- States are the `QueueStatus` enum: `queued -> sending -> sent | failed | skipped`.
"""

from __future__ import annotations

import enum
import sqlite3
from dataclasses import dataclass
from datetime import datetime, timedelta

from newsletter.database import Database, parse_stamp, stamp

LEASE = timedelta(minutes=10)  # a sender that crashed mid-send releases its emails after this
DUE = (  # queued and due, or in flight with the sender's lease run out
    "((q.status = 'queued' AND q.next_attempt_at <= :now)"
    " OR (q.status = 'sending' AND q.locked_until <= :now))"
)


class QueueStatus(enum.StrEnum):
    QUEUED = "queued"
    SENDING = "sending"
    SENT = "sent"
    FAILED = "failed"
    SKIPPED = "skipped"


@dataclass(frozen=True)
class QueuedEmail:
    id: int
    kind: str
    attempts: int
    subscriber: sqlite3.Row  # the subscriber's row as it was when claimed


def enqueue(db: sqlite3.Connection, kind: str, subscriber_id: int, now: str) -> int:
    cursor = db.execute(
        "INSERT INTO email_queue (kind, subscriber_id, created_at, next_attempt_at)"
        " VALUES (?, ?, ?, ?)",
        (kind, subscriber_id, now, now),
    )
    return cursor.lastrowid


class EmailQueue:
    def __init__(self, database: Database):
        self.database = database

    def claim(self, limit: int = 20) -> list[QueuedEmail]:
        """Take up to `limit` due emails (or ones whose sender's lease ran out) for sending."""
        moment = self.database.clock()
        now, lease_end = stamp(moment), stamp(moment + LEASE)
        due = f"SELECT 1 FROM email_queue q WHERE {DUE} LIMIT 1"
        if not self.database.db.execute(due, {"now": now}).fetchone():
            return []  # a read: an idle sender's pass takes no write lock
        with self.database.transaction() as db:
            rows = db.execute(
                "SELECT q.id AS q_id, q.kind AS q_kind, q.attempts AS q_attempts, s.*"
                " FROM email_queue q JOIN subscribers s ON s.id = q.subscriber_id"
                f" WHERE {DUE} ORDER BY q.next_attempt_at, q.id LIMIT :limit",
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
                subscriber=row,
            )
            for row in rows
        ]

    def next_due(self) -> datetime | None:
        """When the next queued email is due (None if the queue is empty)."""
        row = self.database.db.execute(
            "SELECT min(next_attempt_at) FROM email_queue WHERE status = 'queued'"
        ).fetchone()
        return parse_stamp(row[0]) if row[0] else None

    def mark_sent(self, email_id: int) -> None:
        self._finish(email_id, QueueStatus.SENT, None, sent_at=self.database.now())

    def mark_skipped(self, email_id: int, reason: str) -> None:
        self._finish(email_id, QueueStatus.SKIPPED, reason)

    def mark_failed(self, email_id: int, error: str) -> None:
        self._finish(email_id, QueueStatus.FAILED, error)

    def mark_retry(self, email_id: int, error: str, delay: float) -> None:
        when = stamp(self.database.clock() + timedelta(seconds=delay))
        with self.database.transaction() as db:
            db.execute(
                "UPDATE email_queue SET status = 'queued', next_attempt_at = ?,"
                " locked_until = NULL, last_error = ? WHERE id = ?",
                (when, error[:500], email_id),
            )

    def _finish(self, email_id: int, status: QueueStatus, error: str | None, sent_at=None):
        with self.database.transaction() as db:
            db.execute(
                "UPDATE email_queue SET status = ?, locked_until = NULL, last_error = ?,"
                " sent_at = ? WHERE id = ?",
                (status, error[:500] if error else None, sent_at, email_id),
            )

    def emails(self, subscriber_id: int | None = None) -> list[sqlite3.Row]:
        """Queue rows (all, or one subscriber's), oldest first: for tasks and tests."""
        if subscriber_id is None:
            return self.database.db.execute("SELECT * FROM email_queue ORDER BY id").fetchall()
        return self.database.db.execute(
            "SELECT * FROM email_queue WHERE subscriber_id = ? ORDER BY id", (subscriber_id,)
        ).fetchall()

    def counts(self) -> dict[str, int]:
        """Emails by status, every status listed."""
        return self.database.count_by_status("email_queue", QueueStatus)


__all__ = ["EmailQueue", "QueueStatus", "QueuedEmail", "enqueue"]
