"""What each weekly reader is owed, and their digests (issue 20; tables from migration 0010).

A reader of frequency "weekly" is owed, for each announced item whose topic they chose, one row
of `digest_items`, written in the transaction that plans the announcement (readers of
frequency "each" are owed its email in the outgoing-mail ledger instead, in the same
transaction): so every item is owed to each reader exactly once, one way or the other.
A digest takes the rows a reader is owed and owes its email (kind `KIND` in the outgoing-mail
ledger, about the `digests` row), all in ONE transaction: a crash leaves the items owed or the
digest owed, never neither, never both.

Contract (every function works inside the caller's transaction, `db`):
- `topic_condition(topic)`: the SQL condition (and its arguments) on `subscribers` "their
  topics include `topic`" (NULL topics: everything); a topic of "" (an item whose feed gave none)
  matches everyone. A LIKE on the stored sorted JSON array, portable to PostgreSQL.
- `owe(db, announcement_id, topic)`: owe the item to every confirmed weekly reader of `topic`.
- `close(db, period, now, subscriber_id=None)`: make the digests: with no `subscriber_id`, the
  scheduled week `period` (once: a period closed before makes nothing), for every confirmed
  reader owed something; with one, that reader's catch-up (a switch from weekly to each).
  Rows owed to a reader no longer confirmed are dropped (as an announcement skips them).
  Returns the number of digests made.
- `drop(db, subscriber_id, topics)`: a reader who narrowed their topics is no longer owed the
  items of the topics they left (`topics` None: everything, nothing dropped).
- `owed(db, subscriber_id)`: the announcement ids still owed to a reader (oldest first);
  `items(db, digest_ids)`: digest id -> its announcement ids, oldest first.
- `last_slot(moment, weekday, hour, zone)`: the latest scheduled time at or before `moment`
  (weekday 0 = Monday, hour 0-23 in the time zone `zone`), as an aware UTC datetime.
"""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from newsletter.database import stamp
from newsletter.outgoing.ledger import MailLedger

KIND = "digest"  # the kind of email in the outgoing-mail ledger
WEEKLY, EACH = "weekly", "each"


def topic_condition(topic: str, column: str = "topics") -> tuple[str, tuple]:
    """`(sql, args)`: the reader's topics (the `subscribers.topics` column) include `topic`."""
    if not topic:
        return "1 = 1", ()
    escaped = topic.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"({column} IS NULL OR {column} LIKE ? ESCAPE '\\')", (f'%"{escaped}"%',)


def owe(db: sqlite3.Connection, announcement_id: int, topic: str) -> int:
    """Owe the announcement to every confirmed weekly reader of its topic; returns how many."""
    condition, args = topic_condition(topic)
    cursor = db.execute(
        "INSERT INTO digest_items (subscriber_id, announcement_id, topic)"
        " SELECT id, ?, ? FROM subscribers"
        f" WHERE status = 'confirmed' AND frequency = 'weekly' AND {condition}"
        " ON CONFLICT DO NOTHING",
        (announcement_id, topic, *args),
    )
    return cursor.rowcount


def close(db: sqlite3.Connection, period: str, now: str, subscriber_id: int | None = None) -> int:
    """Make the digests of `period` (see the module's contract); returns how many."""
    if subscriber_id is None:
        (latest,) = db.execute("SELECT max(period) FROM digest_periods").fetchone()
        if latest is not None and period <= latest:
            return 0  # this week's, or an earlier one (the day or hour changed since)
        claimed = db.execute(
            "INSERT INTO digest_periods (period, closed_at) VALUES (?, ?) ON CONFLICT DO NOTHING",
            (period, now),
        )
        if claimed.rowcount == 0:
            return 0  # this week's digests were made before
        if latest is None:
            return 0  # the first week of digests starts now: what is owed waits for the next
    who, args = ("", ()) if subscriber_id is None else (" AND subscriber_id = ?", (subscriber_id,))
    db.execute(
        f"DELETE FROM digest_items WHERE digest_id IS NULL{who} AND subscriber_id IN"
        " (SELECT id FROM subscribers WHERE status <> 'confirmed')",
        args,
    )
    made = db.execute(
        "INSERT INTO digests (subscriber_id, period, created_at)"
        " SELECT DISTINCT subscriber_id, ?, ? FROM digest_items"
        f" WHERE digest_id IS NULL{who} ON CONFLICT DO NOTHING",
        (period, now, *args),
    ).rowcount
    if not made:
        return 0
    db.execute(
        "UPDATE digest_items SET digest_id = (SELECT d.id FROM digests d"
        " WHERE d.subscriber_id = digest_items.subscriber_id AND d.period = ?)"
        f" WHERE digest_id IS NULL{who} AND subscriber_id IN"
        " (SELECT subscriber_id FROM digests WHERE period = ?)",
        (period, *args, period),
    )
    pairs = db.execute(
        f"SELECT subscriber_id, id FROM digests WHERE period = ?{who} ORDER BY id",
        (period, *args),
    )
    MailLedger.add_about(db, KIND, pairs, now=now)
    return made


def drop(db: sqlite3.Connection, subscriber_id: int, topics: frozenset[str] | None) -> int:
    """No longer owe a reader the items of topics they left; returns how many rows."""
    if topics is None:
        return 0
    marks = ", ".join("?" * len(topics))
    return db.execute(
        "DELETE FROM digest_items WHERE subscriber_id = ? AND digest_id IS NULL"
        f" AND topic <> '' AND topic NOT IN ({marks})",
        (subscriber_id, *sorted(topics)),
    ).rowcount


def owed(db: sqlite3.Connection, subscriber_id: int) -> list[int]:
    rows = db.execute(
        "SELECT announcement_id FROM digest_items WHERE subscriber_id = ? AND digest_id IS NULL"
        " ORDER BY announcement_id",
        (subscriber_id,),
    )
    return [row[0] for row in rows]


def items(db: sqlite3.Connection, digest_ids: list[int]) -> dict[int, list[int]]:
    found: dict[int, list[int]] = {digest_id: [] for digest_id in digest_ids}
    for start in range(0, len(digest_ids), 500):
        chunk = digest_ids[start : start + 500]
        rows = db.execute(
            "SELECT digest_id, announcement_id FROM digest_items"
            f" WHERE digest_id IN ({', '.join('?' * len(chunk))}) ORDER BY announcement_id",
            chunk,
        )
        for digest_id, announcement_id in rows:
            found[digest_id].append(announcement_id)
    return found


def last_slot(moment: datetime, weekday: int, hour: int, zone: str) -> datetime:
    """The latest scheduled time (weekday, hour in `zone`) at or before `moment`, in UTC."""
    local = moment.astimezone(ZoneInfo(zone))
    day = local.date() - timedelta(days=(local.weekday() - weekday) % 7)
    slot = datetime(day.year, day.month, day.day, hour, tzinfo=ZoneInfo(zone))
    if slot > local:
        day -= timedelta(days=7)
        slot = datetime(day.year, day.month, day.day, hour, tzinfo=ZoneInfo(zone))
    return slot.astimezone(UTC)


def period_of(slot: datetime) -> str:
    """A scheduled week's name in `digests.period` and `digest_periods`."""
    return stamp(slot)


__all__ = [
    "EACH",
    "KIND",
    "WEEKLY",
    "close",
    "drop",
    "items",
    "last_slot",
    "owe",
    "owed",
    "period_of",
    "topic_condition",
]
