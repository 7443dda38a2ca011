"""Provider feedback, one vocabulary: every bounce or spam complaint, however it arrived (a
Mailgun or SES webhook, the bounce mailbox, a refusal at send time), becomes one `Event`.

Contract: `Feedback(database, soft_limit=3, soft_days=30).record(event)` stores the event (table
`feedback_events`, migration 0005; erased with the subscriber by `forget`) and applies it, in
one transaction, returning what happened (`Applied`):
- `hard_bounce` -> the subscriber is `bounced`;
- `complaint` -> `complained`, at once;
- `soft_bounce` -> `bounced` once `soft_limit` soft bounces fall within `soft_days` days;
- an event for an address we do not know is not stored (`UNKNOWN`); an event whose provider id
  (`key`) was recorded before changes nothing (`DUPLICATE`): providers resend, mailboxes are
  read twice.
A `bounced` or `complained` subscriber is never mailed again (announcements plan deliveries for
`confirmed` only); signing up again needs a fresh double opt-in.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import datetime, timedelta

from newsletter.database import Database, stamp
from newsletter.settings import Settings
from newsletter.subscriptions.subscribers import Status, Subscribers


class Kind(enum.StrEnum):
    HARD_BOUNCE = "hard_bounce"
    SOFT_BOUNCE = "soft_bounce"
    COMPLAINT = "complaint"


class Applied(enum.StrEnum):
    BOUNCED = "bounced"
    COMPLAINED = "complained"
    COUNTED = "counted"  # a soft bounce below the limit
    UNCHANGED = "unchanged"  # already in that state, or left before
    DUPLICATE = "duplicate"
    UNKNOWN = "unknown"


@dataclass(frozen=True)
class Event:
    kind: Kind
    email: str
    provider: str
    occurred_at: datetime
    reason: str = ""
    message_id: str | None = None
    key: str | None = None  # the provider's own id of this event


class Feedback:
    def __init__(self, database: Database, *, soft_limit: int = 3, soft_days: float = 30):
        self.database = database
        self.subscribers = Subscribers(database)
        self.soft_limit, self.soft_window = soft_limit, timedelta(days=soft_days)

    @classmethod
    def from_settings(cls, database: Database, settings: Settings) -> Feedback:
        """With the soft-bounce limit and window from NEWSLETTER_SOFT_BOUNCE_*."""
        return cls(
            database, soft_limit=settings.soft_bounce_limit, soft_days=settings.soft_bounce_days
        )

    def record(self, event: Event) -> Applied:
        kind = Kind(event.kind)
        with self.database.transaction() as db:
            subscriber = self.subscribers.find(event.email.strip().casefold())
            if subscriber is None:
                return Applied.UNKNOWN
            if (
                event.key
                and db.execute(
                    "SELECT 1 FROM feedback_events WHERE event_key = ?", (event.key,)
                ).fetchone()
            ):
                return Applied.DUPLICATE
            db.execute(
                "INSERT INTO feedback_events (subscriber_id, kind, provider, reason, message_id,"
                " occurred_at, received_at, event_key) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (subscriber.id, kind, event.provider, (event.reason or "")[:1000] or None,
                 event.message_id, stamp(event.occurred_at), self.database.now(), event.key),
            )  # fmt: skip
            if subscriber.status in (Status.UNSUBSCRIBED, Status.COMPLAINED):
                return Applied.UNCHANGED  # they left, or the worse already happened
            if kind == Kind.COMPLAINT:
                self.subscribers.set_status(subscriber.public_id, Status.COMPLAINED)
                return Applied.COMPLAINED
            if subscriber.status == Status.BOUNCED:
                return Applied.UNCHANGED
            if kind == Kind.SOFT_BOUNCE:
                since = stamp(event.occurred_at - self.soft_window)
                (count,) = db.execute(
                    "SELECT count(*) FROM feedback_events WHERE subscriber_id = ? AND kind = ?"
                    " AND occurred_at > ?",
                    (subscriber.id, Kind.SOFT_BOUNCE, since),
                ).fetchone()
                if count < self.soft_limit:
                    return Applied.COUNTED
            self.subscribers.set_status(subscriber.public_id, Status.BOUNCED)
            return Applied.BOUNCED

    def last_reason(self, subscriber_id: int) -> str | None:
        row = self.database.db.execute(
            "SELECT kind, provider, reason FROM feedback_events WHERE subscriber_id = ?"
            " ORDER BY occurred_at DESC, id DESC LIMIT 1",
            (subscriber_id,),
        ).fetchone()
        return f"{row['kind']} ({row['provider']}): {row['reason'] or ''}".strip() if row else None


__all__ = ["Applied", "Event", "Feedback", "Kind"]
