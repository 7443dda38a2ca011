"""Provider feedback in one vocabulary: `Event`s stored and applied on proof, `Claim`s for review.

Every bounce or spam complaint, however it arrived (a Mailgun or SES webhook, the bounce
mailbox, a refusal at send time), becomes one `Event`, and it acts only on proof.

Contract:
- An `Event` names the subscriber by the public id that its proof names (`mail.proof`: our
  Message-ID or VERP return path, checked with the secret key; for a refusal at send time, the
  delivery itself), never by an address the report lists. Reports without proof are not events:
  they are `Claim`s.
- `Feedback(database, soft_limit=3, soft_days=30).record(event)` stores the event (table
  `feedback_events`, migration 0005; erased with the subscriber by `forget`) and applies it, in
  one transaction, returning what happened (`Applied`):
  - `hard_bounce` -> the subscriber is `bounced`; `complaint` -> `complained`, at once;
  - `soft_bounce` -> `bounced` once `soft_limit` soft bounces fall within `soft_days` days;
  - a subscriber we do not know (erased since) -> `UNKNOWN`, nothing stored; an event whose
    provider id (`key`) was recorded before -> `DUPLICATE` (providers resend, mailboxes are read
    twice); an event dated before the subscriber's current subscription (their latest sign-up
    or confirmation) -> `STALE`, nothing stored: a report replayed after someone signs up again
    cannot touch them.
- `review(claim)` keeps a report without proof for a person (table `feedback_reviews`, once per
  report key, at most `MAX_NAMES` addresses of at most 254 characters, the text cut short, the
  newest `MAX_REVIEWS` kept) when an address it names is on the list (`REVIEW`; about nobody on
  the list: `UNKNOWN`, nothing kept): it changes no subscriber. `reviews()` lists them (`invoke
  bounces.review`), `clear_reviews()` empties the list. `forget` erases the reviews naming an
  address (`forget_reviews(key)`).
A `bounced` or `complained` subscriber is never mailed again (announcements plan deliveries for
`confirmed` only); signing up again needs a fresh double opt-in.
"""

from __future__ import annotations

import enum
import hashlib
from dataclasses import dataclass
from datetime import datetime, timedelta

from newsletter.database import Database, stamp
from newsletter.settings import Settings
from newsletter.subscriptions.addresses import key_of
from newsletter.subscriptions.subscribers import Status, Subscribers

MAX_NAMES = 10  # addresses kept from one unproven report
MAX_REVIEWS = 5000  # unproven reports kept; the oldest go first
MAX_KEY = 200  # characters of a provider's event or report id kept as they are (longer: hashed)


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
    UNKNOWN = "unknown"  # the proof names nobody we know (erased since)
    STALE = "stale"  # dated before the subscriber's current subscription
    REVIEW = "review"  # no proof: kept for a person, nobody changed


@dataclass(frozen=True)
class Event:
    """One proven report about one subscriber."""

    kind: Kind
    public_id: str  # whom the proof names
    provider: str
    occurred_at: datetime
    reason: str = ""
    message_id: str | None = None
    key: str | None = None  # the provider's own id of this event


@dataclass(frozen=True)
class Claim:
    """A report without proof: what it claimed, kept for review, applied to nobody."""

    provider: str
    report_key: str  # provider:the report's own id
    kind: str
    addresses: tuple[str, ...]
    why: str
    reason: str = ""
    subject: str = ""
    message_id: str | None = None


@dataclass(frozen=True)
class Review:
    id: int
    provider: str
    kind: str
    addresses: tuple[str, ...]
    why: str
    reason: str
    subject: str
    message_id: str | None
    received_at: str


def event_key(text: str) -> str:
    """A provider's id as stored: as it is up to `MAX_KEY` characters, else its digest."""
    if len(text) <= MAX_KEY:
        return text
    return text[:40] + ":sha256:" + hashlib.sha256(text.encode("utf-8", "replace")).hexdigest()


class Feedback:
    def __init__(self, database: Database, *, soft_limit: int = 3, soft_days: float = 30):
        self.database = database
        self.subscribers = Subscribers(database)
        self.soft_limit, self.soft_window = soft_limit, timedelta(days=soft_days)

    @classmethod
    def from_settings(cls, database: Database, settings: Settings) -> Feedback:
        """With the soft-bounce limit and window from NEWSLETTER_SOFT_BOUNCE_*."""
        return cls(
            database,
            soft_limit=settings.feedback.soft_bounce_limit,
            soft_days=settings.feedback.soft_bounce_days,
        )

    def record(self, event: Event) -> Applied:
        kind = Kind(event.kind)
        key = event_key(event.key) if event.key else None
        with self.database.transaction() as db:
            subscriber = self.subscribers.get(event.public_id)
            if subscriber is None:
                return Applied.UNKNOWN
            if (
                key
                and db.execute(
                    "SELECT 1 FROM feedback_events WHERE event_key = ?", (key,)
                ).fetchone()
            ):
                return Applied.DUPLICATE
            since = max(filter(None, (subscriber.created_at, subscriber.consent_at,
                                      subscriber.confirmed_at)))  # fmt: skip
            if stamp(event.occurred_at) < since:
                return Applied.STALE
            db.execute(
                "INSERT INTO feedback_events (subscriber_id, kind, provider, reason, message_id,"
                " occurred_at, received_at, event_key) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (subscriber.id, kind, event.provider, (event.reason or "")[:1000] or None,
                 (event.message_id or "")[:300] or None, stamp(event.occurred_at),
                 self.database.now(), key),
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

    # Reports without proof ----------------------------------------------------------------------
    def review(self, claim: Claim) -> Applied:
        """Keep an unproven report for a person (REVIEW, also when kept before) when an address
        it names is on the list; one about nobody on the list is not kept (UNKNOWN)."""
        names = []
        for address in claim.addresses[: MAX_NAMES * 5]:
            text = str(address)[:254]
            key = key_of(text) or text.lower()
            if key not in (k for _e, k in names):
                names.append((text, key))
            if len(names) >= MAX_NAMES:
                break
        with self.database.transaction() as db:
            if not any(self.subscribers.find(key) for _email, key in names):
                return Applied.UNKNOWN
            cursor = db.execute(
                "INSERT INTO feedback_reviews (report_key, provider, kind, subject, reason,"
                " message_id, why, received_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
                " ON CONFLICT (report_key) DO NOTHING RETURNING id",
                (event_key(claim.report_key), claim.provider[:40], claim.kind[:40],
                 claim.subject[:200] or None, claim.reason[:300] or None,
                 (claim.message_id or "")[:300] or None, claim.why[:300], self.database.now()),
            )  # fmt: skip
            review = cursor.fetchone()
            if review is None:
                return Applied.REVIEW  # kept before
            db.executemany(
                "INSERT INTO feedback_review_names (review_id, email, email_key) VALUES (?, ?, ?)",
                [(review[0], email, key) for email, key in names],
            )
            db.execute(
                "DELETE FROM feedback_reviews WHERE id <= (SELECT id FROM feedback_reviews"
                " ORDER BY id DESC LIMIT 1 OFFSET ?)",
                (MAX_REVIEWS,),
            )
            return Applied.REVIEW

    def reviews(self) -> list[Review]:
        db = self.database.db
        names: dict[int, list[str]] = {}
        for review_id, email in db.execute(
            "SELECT review_id, email FROM feedback_review_names ORDER BY review_id, email_key"
        ):
            names.setdefault(review_id, []).append(email)
        return [
            Review(
                row["id"],
                row["provider"],
                row["kind"],
                tuple(names.get(row["id"], ())),
                row["why"],
                row["reason"] or "",
                row["subject"] or "",
                row["message_id"],
                row["received_at"],
            )  # fmt: skip
            for row in db.execute("SELECT * FROM feedback_reviews ORDER BY id")
        ]

    def clear_reviews(self) -> int:
        with self.database.transaction() as db:
            return db.execute("DELETE FROM feedback_reviews").rowcount

    def forget_reviews(self, key: str) -> int:
        """Erase the reviews that name this address key (part of `forget`)."""
        with self.database.transaction() as db:
            return db.execute(
                "DELETE FROM feedback_reviews WHERE id IN (SELECT review_id FROM"
                " feedback_review_names WHERE email_key = ?)",
                (key,),
            ).rowcount

    def refused_at_send(self, subscriber_id: int, reason: str, message_id: str) -> None:
        """The address was refused for good while we sent to it (any kind of email): a hard
        bounce, the sending being the proof of whom it is about. Nothing for a reader gone."""
        row = self.database.db.execute(
            "SELECT public_id FROM subscribers WHERE id = ?", (subscriber_id,)
        ).fetchone()
        if row is not None:
            self.record(Event(kind=Kind.HARD_BOUNCE, public_id=row[0], provider="send",
                              occurred_at=self.database.clock(), reason=reason,
                              message_id=message_id))  # fmt: skip

    def events(self) -> list[tuple[int, str, str]]:
        """(subscriber_id, kind, occurred_at) of every stored event: for the stats."""
        return self.database.db.execute(
            "SELECT subscriber_id, kind, occurred_at FROM feedback_events"
        ).fetchall()

    def last_reason(self, subscriber_id: int) -> str | None:
        row = self.database.db.execute(
            "SELECT kind, provider, reason FROM feedback_events WHERE subscriber_id = ?"
            " ORDER BY occurred_at DESC, id DESC LIMIT 1",
            (subscriber_id,),
        ).fetchone()
        return f"{row['kind']} ({row['provider']}): {row['reason'] or ''}".strip() if row else None


__all__ = ["Applied", "Claim", "Event", "Feedback", "Kind", "Review", "event_key"]
