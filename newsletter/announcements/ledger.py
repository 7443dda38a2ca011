"""The announcement ledger (tables from migration 0002): what was seen, what is owed, what went.

Contract, over the `Database` (the subscribers' file; it asks `Subscribers` who is confirmed):
- `select(items, ...)` decides for each feed item: already known (its guid, or else its link,
  was recorded before) or new; a new item is announced, or recorded without an email because
  the ledger was empty (first run, unless `send_existing`), it is older than `max_age` at
  discovery, or it opted out (`Announce: no`); an item whose page is not live yet (`is_live`)
  waits for a later run and is not recorded.
- `plan(decisions, drafts)` writes, in ONE transaction, every decision, the announcements and one
  `pending` delivery per (announcement, subscriber confirmed at that instant), unique.
- Sending goes through `pending()` (a page of deliveries, after skipping subscribers who are no
  longer confirmed) and one `mark_*` call per result, each its own transaction, right after the
  transport answered: so a crash loses nothing and re-sends at most the messages in flight.
- `lock()` is the run lock: the one file lock, which the kernel releases when the holder ends
  or dies; a second announcer gets `LedgerLocked` naming the holder's pid.
- `rows(item)` is what the ledger holds about one item (by its guid or its link), and
  `plan_recorded(item, draft)` plans, in ONE transaction, the announcement of an item that was
  recorded without an email (`invoke announce --item`); an item announced before raises
  `AlreadyAnnounced`: nothing is ever announced twice.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from urllib.parse import urlsplit

from newsletter.announcements.feed import FeedItem
from newsletter.database import Database, stamp
from newsletter.filelock import FileLock, Locked
from newsletter.subscriptions.feedback import Event, Feedback, Kind
from newsletter.subscriptions.subscribers import Status, Subscribers

ANNOUNCE, RECORD, WAIT = "announce", "record", "wait"
FIRST_RUN = "in the feed before the first run"  # the reason the back catalogue is recorded
DELIVERY_STATES = ("pending", "sent", "failed", "skipped")


class LedgerLocked(Exception):
    """Another announce run holds the lock; str() says which and until when."""


class AlreadyAnnounced(Exception):
    """`plan_recorded` of an item the ledger has announced already (by guid or link)."""


@dataclass(frozen=True)
class Decision:
    item: FeedItem
    action: str  # ANNOUNCE, RECORD or WAIT
    reason: str = ""


@dataclass(frozen=True)
class Draft:
    """An announcement to plan: one article, or a digest of several."""

    kind: str  # "article" or "digest"
    key: str  # the guid, or "digest:<hash>": part of every Message-ID
    subject: str
    items: list[FeedItem]


@dataclass(frozen=True)
class Announcement:
    id: int
    kind: str
    key: str
    subject: str
    items: list[FeedItem]
    created_at: str
    finished_at: str | None

    @classmethod
    def from_row(cls, row) -> Announcement:
        return cls(
            id=row["id"],
            kind=row["kind"],
            key=row["key"],
            subject=row["subject"],
            items=[FeedItem.from_dict(item) for item in json.loads(row["items"])],
            created_at=row["created_at"],
            finished_at=row["finished_at"],
        )


@dataclass(frozen=True)
class Delivery:
    id: int
    announcement_id: int
    attempts: int
    subscriber_id: int
    public_id: str
    email: str


@dataclass
class Page:
    deliveries: list[Delivery] = field(default_factory=list)
    skipped: int = 0  # subscribers no longer confirmed, marked skipped while reading this page
    last_id: int = 0  # where the next page starts


def link_key(link: str) -> str:
    """A link without scheme, case of host, or trailing slash: http->https is the same page."""
    parts = urlsplit(link.strip())
    key = f"{(parts.hostname or '').lower()}{f':{parts.port}' if parts.port else ''}{parts.path}"
    if parts.query:
        key += f"?{parts.query}"
    return key.rstrip("/")


class Ledger:
    def __init__(self, database: Database):
        self.database = database
        self.subscribers = Subscribers(database)
        self.feedback = Feedback(database)

    # What is new ----------------------------------------------------------------------------
    def is_empty(self, source: str = "") -> bool:
        """True before the first run that planned (even on an empty feed): then what is in the
        feed is the back catalogue. `source` "videos": the same, for the channel feed, which
        may be added to a blog that has announced for years."""
        key = f"initialized_at:{source}" if source else "initialized_at"
        row = self.database.db.execute(
            "SELECT 1 FROM announce_state WHERE key = ?", (key,)
        ).fetchone()
        return row is None

    def known(self, item: FeedItem) -> bool:
        return (
            self.database.db.execute(
                "SELECT 1 FROM feed_items WHERE guid = ? OR link_key = ? LIMIT 1",
                (item.guid, link_key(item.link)),
            ).fetchone()
            is not None
        )

    def select(
        self,
        items: Iterable[FeedItem],
        *,
        now: datetime,
        max_age: timedelta,
        send_existing: bool = False,
        is_live: Callable[[FeedItem], str | None] | None = None,
        first_run: bool | None = None,
    ) -> list[Decision]:
        """Decisions for the new items, oldest first. `is_live(item)` returns None when the
        page answers 200, else why not."""
        first_run = self.is_empty() if first_run is None else first_run
        new = [item for item in items if not self.known(item)]
        new.sort(key=lambda item: (item.published or now, item.guid))
        decisions = []
        for item in new:
            if not item.announce:
                decisions.append(Decision(item, RECORD, "opted out (Announce: no)"))
            elif first_run and not send_existing:
                decisions.append(Decision(item, RECORD, FIRST_RUN))
            elif item.published is not None and now - item.published > max_age:
                days = max_age / timedelta(days=1)
                decisions.append(Decision(item, RECORD, f"older than {days:g} days when seen"))
            elif is_live is not None and (problem := is_live(item)) is not None:
                decisions.append(Decision(item, WAIT, f"not live yet: {problem}"))
            else:
                decisions.append(Decision(item, ANNOUNCE))
        return decisions

    # Planning -------------------------------------------------------------------------------
    def plan(
        self, decisions: Iterable[Decision], drafts: Iterable[Draft], sources: Iterable[str] = ()
    ) -> list[Announcement]:
        """Record the decisions and plan the drafts' deliveries, all in one transaction; the
        ledger (and each of `sources`, e.g. "videos") is initialised from now on."""
        now = self.database.now()
        announced: dict[str, int] = {}
        created = []
        with self.database.transaction() as db:
            for key in ("initialized_at", *(f"initialized_at:{s}" for s in sources)):
                db.execute(
                    "INSERT OR IGNORE INTO announce_state (key, value) VALUES (?, ?)", (key, now)
                )
            for draft in drafts:
                announcement_id = self._insert(db, draft, now)
                for item in draft.items:
                    announced[item.guid] = announcement_id
                created.append(announcement_id)
            for decision in decisions:
                if decision.action == WAIT:
                    continue
                item = decision.item
                announcement_id = announced.get(item.guid)
                if decision.action == ANNOUNCE and announcement_id is None:
                    raise ValueError(f"item {item.guid} is to be announced but in no draft")
                db.execute(
                    "INSERT INTO feed_items (guid, link, link_key, title, published_at, seen_at,"
                    " outcome, reason, announcement_id) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (item.guid, item.link, link_key(item.link), item.title,
                     stamp(item.published) if item.published else None, now,
                     "announced" if announcement_id else "recorded", decision.reason or None,
                     announcement_id),
                )  # fmt: skip
            rows = [
                db.execute("SELECT * FROM announcements WHERE id = ?", (i,)).fetchone()
                for i in created
            ]
        return [Announcement.from_row(row) for row in rows]

    @staticmethod
    def _insert(db, draft: Draft, now: str) -> int:
        """The announcement and one pending delivery per subscriber confirmed now."""
        cursor = db.execute(
            "INSERT INTO announcements (kind, key, subject, items, created_at)"
            " VALUES (?, ?, ?, ?, ?)",
            (draft.kind, draft.key, draft.subject,
             json.dumps([item.to_dict() for item in draft.items]), now),
        )  # fmt: skip
        db.execute(
            "INSERT INTO deliveries (announcement_id, subscriber_id, updated_at)"
            " SELECT ?, id, ? FROM subscribers WHERE status = ? ORDER BY id",
            (cursor.lastrowid, now, Status.CONFIRMED),
        )
        return cursor.lastrowid

    def rows(self, item: FeedItem) -> list:
        """The ledger's rows about `item`: its guid, or another guid with the same link."""
        return self.database.db.execute(
            "SELECT f.*, a.created_at AS announced_at FROM feed_items f"
            " LEFT JOIN announcements a ON a.id = f.announcement_id"
            " WHERE f.guid = ? OR f.link_key = ? ORDER BY f.id",
            (item.guid, link_key(item.link)),
        ).fetchall()

    def plan_recorded(self, item: FeedItem, draft: Draft) -> Announcement:
        """Plan the announcement of `item`, which the ledger recorded without an email (first
        run, too old, opted out), in one transaction; its rows become `announced`, their reason
        kept after "on request". Raises `AlreadyAnnounced` (nothing written) when it was
        announced, and ValueError when the ledger never recorded it."""
        now = self.database.now()
        with self.database.transaction() as db:
            rows = db.execute(
                "SELECT * FROM feed_items WHERE guid = ? OR link_key = ?",
                (item.guid, link_key(item.link)),
            ).fetchall()
            if not rows:
                raise ValueError(f"item {item.guid} was never recorded")
            if any(row["outcome"] == "announced" for row in rows):
                raise AlreadyAnnounced(item.guid)
            announcement_id = self._insert(db, draft, now)
            db.executemany(
                "UPDATE feed_items SET outcome = 'announced', announcement_id = ?, reason = ?"
                " WHERE id = ?",
                [(announcement_id, f"on request; recorded before: {row['reason'] or 'recorded'}",
                  row["id"]) for row in rows],
            )  # fmt: skip
            row = db.execute("SELECT * FROM announcements WHERE id = ?", (announcement_id,))
            return Announcement.from_row(row.fetchone())

    # Sending --------------------------------------------------------------------------------
    def latest(self) -> Announcement | None:
        row = self.database.db.execute(
            "SELECT * FROM announcements ORDER BY id DESC LIMIT 1"
        ).fetchone()
        return Announcement.from_row(row) if row else None

    def unfinished(self) -> list[Announcement]:
        """Announcements with deliveries still pending, oldest first."""
        rows = self.database.db.execute(
            "SELECT * FROM announcements WHERE finished_at IS NULL ORDER BY id"
        )
        return [Announcement.from_row(row) for row in rows]

    def pending(self, announcement_id: int, after_id: int = 0, limit: int = 200) -> Page:
        """The next page of pending deliveries (by id, after `after_id`). Deliveries to
        subscribers who are no longer confirmed are marked skipped on the way."""
        rows = self.database.db.execute(
            "SELECT d.id, d.attempts, d.subscriber_id, s.public_id, s.email, s.status"
            " FROM deliveries d JOIN subscribers s ON s.id = d.subscriber_id"
            " WHERE d.announcement_id = ? AND d.status = 'pending' AND d.id > ?"
            " ORDER BY d.id LIMIT ?",
            (announcement_id, after_id, limit),
        ).fetchall()
        page = Page(last_id=rows[-1]["id"] if rows else after_id)
        gone = [(f"subscriber is {row['status']} now", row["id"]) for row in rows
                if row["status"] != Status.CONFIRMED]  # fmt: skip
        if gone:
            now = self.database.now()
            with self.database.transaction() as db:
                db.executemany(
                    "UPDATE deliveries SET status = 'skipped', last_error = ?, updated_at = ?"
                    " WHERE id = ? AND status = 'pending'",
                    [(reason, now, delivery_id) for reason, delivery_id in gone],
                )
            page.skipped = len(gone)
        page.deliveries = [
            Delivery(row["id"], announcement_id, row["attempts"], row["subscriber_id"],
                     row["public_id"], row["email"])
            for row in rows if row["status"] == Status.CONFIRMED
        ]  # fmt: skip
        return page

    def still_confirmed(self, subscriber_id: int) -> bool:
        row = self.database.db.execute(
            "SELECT status FROM subscribers WHERE id = ?", (subscriber_id,)
        ).fetchone()
        return row is not None and row[0] == Status.CONFIRMED

    def mark_sent(self, delivery_ids: Iterable[int]) -> None:
        """The server accepted these messages: record it at once (one transaction)."""
        now = self.database.now()
        with self.database.transaction() as db:
            db.executemany(
                "UPDATE deliveries SET status = 'sent', sent_at = ?, updated_at = ?,"
                " attempts = attempts + 1, last_error = NULL WHERE id = ? AND status = 'pending'",
                [(now, now, delivery_id) for delivery_id in delivery_ids],
            )

    def mark_retry(self, delivery_ids: Iterable[int], error: str) -> None:
        """A temporary failure: the delivery stays pending, for a later pass or run."""
        self._update(delivery_ids, "pending", error, attempt=True)

    def mark_failed(self, delivery_ids: Iterable[int], error: str) -> None:
        self._update(delivery_ids, "failed", error, attempt=True)

    def mark_skipped(self, delivery_ids: Iterable[int], reason: str) -> None:
        self._update(delivery_ids, "skipped", reason, attempt=False)

    def bounce(self, delivery: Delivery, error: str, message_id: str | None = None) -> None:
        """A permanent refusal of the address at send time: recorded as a hard bounce (the
        provider feedback's one vocabulary, which bounces the subscriber), the delivery failed."""
        with self.database.transaction():
            self.feedback.record(
                Event(
                    kind=Kind.HARD_BOUNCE,
                    public_id=delivery.public_id,  # the delivery is the proof
                    provider="send",
                    occurred_at=self.database.clock(),
                    reason=error,
                    message_id=message_id,
                )
            )
            self.mark_failed([delivery.id], error)

    def _update(self, delivery_ids, status: str, error: str, *, attempt: bool) -> None:
        now = self.database.now()
        with self.database.transaction() as db:
            db.executemany(
                "UPDATE deliveries SET status = ?, last_error = ?, updated_at = ?,"
                f" attempts = attempts + {1 if attempt else 0}"
                " WHERE id = ? AND status = 'pending'",
                [(status, error[:500], now, delivery_id) for delivery_id in delivery_ids],
            )

    def finish_if_done(self, announcement_id: int) -> bool:
        with self.database.transaction() as db:
            left = db.execute(
                "SELECT count(*) FROM deliveries WHERE announcement_id = ? AND status = 'pending'",
                (announcement_id,),
            ).fetchone()[0]
            if left == 0:
                db.execute(
                    "UPDATE announcements SET finished_at = ? WHERE id = ? AND finished_at IS NULL",
                    (self.database.now(), announcement_id),
                )
        return left == 0

    def counts(self, announcement_id: int | None = None) -> dict[str, int]:
        """Deliveries by status (all announcements, or one)."""
        where, args = (
            ("WHERE announcement_id = ?", (announcement_id,)) if announcement_id else ("", ())
        )
        return self.database.count_by_status("deliveries", DELIVERY_STATES, where, args)

    def deliveries(self, announcement_id: int | None = None) -> list:
        """Delivery rows with each subscriber's address and public id: for the dry run, tasks and
        tests."""
        where, args = (
            ("WHERE d.announcement_id = ?", (announcement_id,)) if announcement_id else ("", ())
        )
        return self.database.db.execute(
            "SELECT d.*, s.email, s.public_id, s.status AS subscriber_status FROM deliveries d"
            f" JOIN subscribers s ON s.id = d.subscriber_id {where} ORDER BY d.id",
            args,
        ).fetchall()

    def items(self) -> list:
        return self.database.db.execute("SELECT * FROM feed_items ORDER BY id").fetchall()

    # The run lock ---------------------------------------------------------------------------
    @contextmanager
    def lock(self) -> Iterator[FileLock]:
        """One announcer at a time: the file lock `<db>-announce.lock`, released by the kernel
        when the run ends or dies. A second run gets `LedgerLocked` naming the holder."""
        run_lock = FileLock(
            self.database.path.with_name(self.database.path.name + "-announce.lock")
        )
        try:
            run_lock.acquire(wait=False)
        except Locked as held:
            raise LedgerLocked(
                f"another announce run is sending ({held}); not starting a second one. "
                "Its lock ends with that process."
            ) from None
        try:
            yield run_lock
        finally:
            run_lock.release()


__all__ = [
    "ANNOUNCE",
    "AlreadyAnnounced",
    "Announcement",
    "Decision",
    "Delivery",
    "Draft",
    "FIRST_RUN",
    "Ledger",
    "LedgerLocked",
    "Page",
    "RECORD",
    "WAIT",
    "link_key",
]
