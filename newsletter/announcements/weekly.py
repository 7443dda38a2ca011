"""The weekly digest (issue 20): one email per weekly reader, on the author's day and hour, with
every item they chose that was announced since their last one.

What is owed is the subscriptions room's (`subscriptions.digests`: the rows each announcement
owes its weekly readers, and the digests that take them); this module decides when a week is
due, composes each digest with the announcement emails' own composer (`emails.Composer`, kind
"digest": the same templates, headers, one-click unsubscribe and preferences link), and sends
them through the one dispatcher.

Contract:
- `slot(settings, moment)`: the latest scheduled time (NEWSLETTER_DIGEST_WEEKDAY at
  NEWSLETTER_DIGEST_HOUR in NEWSLETTER_TIMEZONE) at or before `moment`, in UTC.
- `close_due(database, settings)`: at or after that time, make the week's digests (once per
  week, in ONE transaction: each reader's owed rows taken and their email owed together);
  returns how many were made (0 when the week was closed before, or nobody is owed anything).
- `Digests(database, settings, tokens, policy, with_data)`: the dispatcher's handler for kind
  `KIND`: per page of claimed rows, who the readers are and what each digest holds (one query
  each), then each email, composed once per distinct set of items (a small cache) and made per
  reader as an announcement is. A reader no longer confirmed is skipped; a refused address is a
  hard bounce.
- `send(database, settings, tokens, mailer, dispatcher, ...)`: send every digest owed (new ones
  and earlier runs' leftovers: the run is their retry), in passes like an announcement.
- `announcement_for(database, announcement_ids, settings)`: the digest of those announcements'
  items, as the unsaved `Announcement` the composer takes (the test send uses it too).
"""

from __future__ import annotations

import hashlib
import json
import time
from collections import OrderedDict
from collections.abc import Iterator
from datetime import datetime

from newsletter import mail
from newsletter.announcements.emails import Composer, subject_for
from newsletter.announcements.feed import FeedItem
from newsletter.announcements.ledger import Announcement, Delivery
from newsletter.database import Database
from newsletter.outgoing.dispatcher import MAX_WAIT, Dispatcher, NoProgress, Progress, Skip, Tally
from newsletter.outgoing.ledger import Entry, Policy
from newsletter.settings import Settings
from newsletter.subscriptions import digests
from newsletter.subscriptions.feedback import Feedback
from newsletter.subscriptions.subscribers import Status, Subscribers
from newsletter.subscriptions.tokens import Tokens

KIND = digests.KIND
PAGE = 200
CACHED_COMPOSERS = 64


def slot(settings: Settings, moment: datetime) -> datetime:
    announce = settings.announce
    return digests.last_slot(
        moment, announce.digest_weekday, announce.digest_hour, settings.core.timezone
    )


def close_due(database: Database, settings: Settings) -> int:
    """Make this week's digests if its time has come and they were not made yet."""
    moment = database.clock()
    with database.transaction() as db:
        return digests.close(db, digests.period_of(slot(settings, moment)), database.now())


def announcement_for(
    database: Database, announcement_ids: list[int], settings: Settings
) -> Announcement:
    """The digest of these announcements' items, oldest first, as an unsaved announcement."""
    items: list[FeedItem] = []
    for start in range(0, len(announcement_ids), 500):
        chunk = announcement_ids[start : start + 500]
        rows = database.db.execute(
            f"SELECT items FROM announcements WHERE id IN ({', '.join('?' * len(chunk))})"
            " ORDER BY id",
            chunk,
        )
        for row in rows:
            items += [FeedItem.from_dict(item) for item in json.loads(row["items"])]
    ids = ",".join(map(str, sorted(announcement_ids)))
    key = "weekly:" + hashlib.sha256(ids.encode()).hexdigest()[:32]
    subject = subject_for(settings, "digest", items) if items else ""
    return Announcement(0, "digest", key, subject, items, "", None)


class Digests:
    """The dispatcher's handler for the weekly digests."""

    def __init__(
        self,
        database: Database,
        settings: Settings,
        tokens: Tokens,
        policy: Policy,
        *,
        with_data: bool = True,
    ):
        self.database, self.settings, self.tokens, self.policy = database, settings, tokens, policy
        self.with_data = with_data
        self.subscribers = Subscribers(database)
        self.feedback = Feedback(database)
        self._composers: OrderedDict[tuple[int, ...], Composer] = OrderedDict()

    def composer(self, announcement_ids: list[int]) -> Composer:
        key = tuple(announcement_ids)
        found = self._composers.get(key)
        if found is None:
            found = Composer(
                self.settings,
                self.tokens,
                announcement_for(self.database, announcement_ids, self.settings),
            )
            self._composers[key] = found
            if len(self._composers) > CACHED_COMPOSERS:
                self._composers.popitem(last=False)
        else:
            self._composers.move_to_end(key)
        return found

    def compose(self, entries: list[Entry]) -> Iterator[mail.Outgoing | Skip]:
        people = self.subscribers.by_ids([entry.subscriber_id for entry in entries])
        held = digests.items(self.database.db, [entry.about_id for entry in entries])
        for entry in entries:
            person = people.get(entry.subscriber_id)
            if person is None or person.status != Status.CONFIRMED:
                yield Skip(f"subscriber is {person.status if person else 'gone'} now")
                continue
            if not held.get(entry.about_id):
                yield Skip("the digest holds nothing")
                continue
            delivery = Delivery(entry.id, entry.about_id, entry.attempts, person.id,
                                person.public_id, person.email)  # fmt: skip
            yield self.composer(held[entry.about_id]).outgoing(delivery, with_data=self.with_data)

    def refused(self, entry: Entry, outgoing: mail.Outgoing, error: str) -> None:
        self.feedback.refused_at_send(entry.subscriber_id, error, outgoing.message_id)


def send(
    database: Database,
    settings: Settings,
    tokens: Tokens,
    mailer: mail.Mailer,
    dispatcher: Dispatcher,
    *,
    progress: Progress | None = None,
    sleep=time.sleep,
) -> Tally:
    """Send every digest owed, in passes (the one retry policy); what is left waits."""
    policy = Policy(settings.announce.retry_delay, MAX_WAIT, settings.endpoint.max_attempts)
    dispatcher.handlers[KIND] = Digests(
        database, settings, tokens, policy, with_data=not getattr(mailer, "batches", False)
    )
    return dispatcher.run(
        mailer,
        kinds=[KIND],
        passes=settings.announce.retries + 1,
        every=True,
        page=PAGE,
        sleep=sleep,
        progress=progress or NoProgress(),
        label="weekly digests",
    )


__all__ = ["Digests", "KIND", "announcement_for", "close_due", "send", "slot"]
