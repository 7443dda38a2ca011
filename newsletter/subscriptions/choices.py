"""A reader's choices (issue 20): which topics, and how often. The one way to read and change
them (the preferences page, the tasks, the sign-up use this module).

Columns (migration 0010): `subscribers.topics` (NULL: everything, topics that appear later
included; else `topics.encode`'s sorted JSON array) and `subscribers.frequency` ("each": one
email per new item; "weekly": one digest on the author's day and hour). Existing readers are
NULL and "each": exactly what they got before.

Contract, over the `Database`:
- `Choice(topics, frequency)`: `topics` a frozenset of slugs or None (everything), `frequency`
  "each" or "weekly"; `Choice.check()` raises `ChoiceError` on anything else.
- `Choices(database).get(subscriber_id) -> Choice` (None when there is no such reader).
- `Choices(database).set(subscriber_id, choice, now=None) -> Choice`, ONE transaction: a switch
  never loses an item and never sends one twice. Items are owed at the instant they are
  announced, by the frequency then (`digests`): weekly -> each makes, in the same transaction,
  the reader's catch-up digest of what they were owed (sent by the next `invoke announce`),
  and from then on each item comes alone; each -> weekly leaves the items already owed to go
  alone, and the next ones wait for the digest. Narrowing the topics drops what is owed of the
  topics left.
- `Choices.readers(db, topic, frequency="each")`: the ids of the confirmed readers of that
  frequency whose topics include `topic`, as a cursor inside the caller's transaction (one SQL
  condition, no loop per reader); `Choices.readers_query(topic, frequency)` is the same as a
  query (`outgoing.Recipients`), for owing each of them an email in one statement.
- `Choices(database).counts()`: confirmed readers per frequency and per topic ({"frequency":
  {...}, "topics": {slug: n, ...}, "everything": n}).
- `default_frequency(mode)`: the frequency of a new reader who did not say: the site's
  NEWSLETTER_ANNOUNCE_MODE "each" -> "each", "digest" -> "weekly" (the feed contract's one
  mapping, `blog.feed_contract.default_frequency`, which the blog's form uses too).
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime

from blog.feed_contract import FREQUENCIES, default_frequency
from newsletter.database import Database, stamp
from newsletter.outgoing.ledger import Recipients
from newsletter.subscriptions import digests, topics
from newsletter.subscriptions.topics import TopicError


class ChoiceError(ValueError):
    """A choice that cannot be stored; the message says why."""


@dataclass(frozen=True)
class Choice:
    topics: frozenset[str] | None = None
    frequency: str = "each"

    def check(self) -> Choice:
        if self.frequency not in FREQUENCIES:
            raise ChoiceError(f"frequency {self.frequency!r}: use {' or '.join(FREQUENCIES)}")
        try:
            topics.encode(self.topics)
        except TopicError as error:
            raise ChoiceError(str(error)) from None
        return self


EVERYTHING_EACH = Choice(None, "each")


class Choices:
    def __init__(self, database: Database):
        self.database = database

    def get(self, subscriber_id: int) -> Choice | None:
        row = self.database.db.execute(
            "SELECT topics, frequency FROM subscribers WHERE id = ?", (subscriber_id,)
        ).fetchone()
        return None if row is None else _choice(row)

    def set(self, subscriber_id: int, choice: Choice, now: datetime | str | None = None) -> Choice:
        """Change a reader's choice (see the module's contract); returns it as stored."""
        choice.check()
        now = stamp(now) if isinstance(now, datetime) else (now or self.database.now())
        with self.database.transaction() as db:
            row = db.execute(
                "SELECT topics, frequency FROM subscribers WHERE id = ?", (subscriber_id,)
            ).fetchone()
            if row is None:
                raise ChoiceError(f"no subscriber {subscriber_id}")
            before = _choice(row)
            db.execute(
                "UPDATE subscribers SET topics = ?, frequency = ? WHERE id = ?",
                (topics.encode(choice.topics), choice.frequency, subscriber_id),
            )
            digests.drop(db, subscriber_id, choice.topics)
            if before.frequency == digests.WEEKLY and choice.frequency == digests.EACH:
                digests.close(db, f"switch:{now}", now, subscriber_id)
        return choice

    @staticmethod
    def readers(db: sqlite3.Connection, topic: str, frequency: str = "each") -> Iterator[int]:
        query = Choices.readers_query(topic, frequency)
        return (row[0] for row in db.execute(query.sql, query.args))

    @staticmethod
    def readers_query(topic: str, frequency: str = "each") -> Recipients:
        condition, args = digests.topic_condition(topic)
        return Recipients(
            "SELECT id FROM subscribers WHERE status = 'confirmed' AND frequency = ?"
            f" AND {condition} ORDER BY id",
            (frequency, *args),
        )

    def counts(self) -> dict:
        """Confirmed readers per frequency, per topic chosen, and how many chose everything."""
        db = self.database.db
        frequency = {name: 0 for name in FREQUENCIES}
        for name, count in db.execute(
            "SELECT frequency, count(*) FROM subscribers WHERE status = 'confirmed'"
            " GROUP BY frequency"
        ):
            frequency[name] = count
        per_topic: dict[str, int] = {}
        everything = 0
        for text, count in db.execute(
            "SELECT topics, count(*) FROM subscribers WHERE status = 'confirmed' GROUP BY topics"
        ):
            if text is None:
                everything += count
                continue
            for slug in json.loads(text):
                per_topic[slug] = per_topic.get(slug, 0) + count
        return {"frequency": frequency, "topics": per_topic, "everything": everything}


def _choice(row) -> Choice:
    return Choice(topics.decode(row["topics"]), row["frequency"])


__all__ = ["Choice", "ChoiceError", "Choices", "EVERYTHING_EACH", "default_frequency"]
