"""The announcement ledger (tables from migration 0002): what was seen, what was announced, and
the run lock; each email it owes is a row of the one outgoing-mail ledger (`newsletter.outgoing`,
kind "announcement", about the announcement's id).

Contract, over the `Database` (the subscribers' file; it asks `Subscribers` who is confirmed):
- `select(items, ...)` decides for each feed item: already known (its guid, or else its link,
  was recorded before) or new; a new item is announced, or recorded without an email because
  the ledger was empty (first run, unless `send_existing`), it is older than `max_age` at
  discovery, or it opted out (`Announce: no`); an item whose page is not live yet (`is_live`)
  waits for a later run and is not recorded.
- `plan(decisions, drafts)` writes, in ONE transaction, every decision, the announcements and,
  for each, what is owed to the subscribers confirmed at that instant whose topics include its
  item's (`Draft.topic`; `subscriptions.choices`): one email each for the readers of frequency
  "each", one row of their next digest for the "weekly" ones (`subscriptions.digests`), unique.
- Sending is the one dispatcher's (`announcements.dispatch`): each result is recorded in its own
  transaction right after the transport answered, so a crash loses nothing and re-sends at most
  the messages in flight. `finish_if_done` marks an announcement finished when nothing of it is
  queued or in flight; `counts` and `deliveries` report its emails.
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
from dataclasses import dataclass
from datetime import datetime, timedelta
from urllib.parse import urlsplit

from newsletter.announcements.feed import FeedItem
from newsletter.database import Database, stamp
from newsletter.filelock import FileLock, Locked  # FileLock: the type of a run lock
from newsletter.outgoing.ledger import MailLedger
from newsletter.subscriptions import digests
from newsletter.subscriptions.choices import Choices
from newsletter.subscriptions.feedback import Feedback
from newsletter.subscriptions.subscribers import Subscribers

ANNOUNCE, RECORD, WAIT = "announce", "record", "wait"
FIRST_RUN = "in the feed before the first run"  # the reason the back catalogue is recorded
ANNOUNCEMENT = "announcement"  # the kind of email in the outgoing-mail ledger


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

    @property
    def topic(self) -> str:
        """Whose readers it goes to: its one item's topic ("" for several: everyone's)."""
        return self.items[0].topic if len(self.items) == 1 else ""


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
    """One announcement email to one reader: its row in the outgoing-mail ledger, and who."""

    id: int
    announcement_id: int
    attempts: int
    subscriber_id: int
    public_id: str
    email: str


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
        self.outgoing = MailLedger(database)

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
                    "INSERT INTO announce_state (key, value) VALUES (?, ?)"
                    " ON CONFLICT (key) DO NOTHING",
                    (key, now),
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
        """The announcement, one owed email per reader of its topic confirmed now at frequency
        "each", and one owed digest row per such reader at frequency "weekly"."""
        cursor = db.execute(
            "INSERT INTO announcements (kind, key, subject, items, created_at)"
            " VALUES (?, ?, ?, ?, ?) RETURNING id",
            (draft.kind, draft.key, draft.subject,
             json.dumps([item.to_dict() for item in draft.items]), now),
        )  # fmt: skip
        announcement_id = cursor.fetchone()[0]
        readers = Choices.readers_query(draft.topic, digests.EACH)
        MailLedger.add(db, ANNOUNCEMENT, readers, about_id=announcement_id, now=now)
        digests.owe(db, announcement_id, draft.topic)
        return announcement_id

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

    def finish_if_done(self, announcement_id: int) -> bool:
        """Mark the announcement finished when none of its emails is queued or in flight."""
        with self.database.transaction() as db:
            counts = self.outgoing.counts(ANNOUNCEMENT, announcement_id)
            left = counts["queued"] + counts["sending"]
            if left == 0:
                db.execute(
                    "UPDATE announcements SET finished_at = ? WHERE id = ? AND finished_at IS NULL",
                    (self.database.now(), announcement_id),
                )
        return left == 0

    def counts(self, announcement_id: int | None = None) -> dict[str, int]:
        """Its emails by status (of every announcement, or one), in the one vocabulary."""
        return self.outgoing.counts(ANNOUNCEMENT, announcement_id)

    def deliveries(self, announcement_id: int | None = None) -> list[dict]:
        """Its emails' rows with each reader's address and public id: for the dry run, tasks
        and tests."""
        rows = self.outgoing.rows(ANNOUNCEMENT, announcement_id)
        people = self.subscribers.by_ids(sorted({row["subscriber_id"] for row in rows}))
        out = []
        for row in rows:
            person = people[row["subscriber_id"]]
            who = {"email": person.email, "public_id": person.public_id}
            out.append({**dict(row), **who, "announcement_id": row["about_id"],
                        "subscriber_status": person.status})  # fmt: skip
        return out

    def items(self) -> list:
        return self.database.db.execute("SELECT * FROM feed_items ORDER BY id").fetchall()

    # The run lock ---------------------------------------------------------------------------
    @contextmanager
    def lock(self) -> Iterator[FileLock]:
        """One announcer at a time: the file lock `<db>-announce.lock`, released by the kernel
        when the run ends or dies. A second run gets `LedgerLocked` naming the holder. The
        holder takes back the announcement emails a dead run left in flight (their lease)."""
        run_lock = self.database.run_lock("announce")
        try:
            run_lock.acquire(wait=False)
        except Locked as held:
            raise LedgerLocked(
                f"another announce run is sending ({held}); not starting a second one. "
                "Its lock ends with that process."
            ) from None
        try:
            # The holder sends every announcement email and digest: what a dead run left in
            # flight is ours.
            self.outgoing.release(kinds=[ANNOUNCEMENT, digests.KIND])
            yield run_lock
        finally:
            run_lock.release()


__all__ = [
    "ANNOUNCE",
    "AlreadyAnnounced",
    "Announcement",
    "Decision",
    "ANNOUNCEMENT",
    "Delivery",
    "Draft",
    "FIRST_RUN",
    "Ledger",
    "LedgerLocked",
    "RECORD",
    "WAIT",
    "link_key",
]
