"""Plan follows: a reader who follows an exercise plan by email (issue 21), table `plan_follows`
(migration 0011). Which plan a reader follows is health data: the least is stored (the address,
the plan's id, the chosen weekday and hour, the plan's number of weeks, the start, and the
consent record: when, on which page, a keyed hash of the IP), and it is erased early.

Contract, over the `Database`:
- States: `unconfirmed -> following -> ended`; a stop link, `stop_all`, `forget` and
  `erase_ended` DELETE the row (the ledger's rows about it cascade). One row per (address, plan).
- `request(email, plan, weekday, hour, *, source, ip, newsletter=False) -> Result`: checks the
  input (`InvalidFollow`, a sentence for the reader: a bad address, an unknown plan, a weekday
  not 0-6, an hour not 0-23; `PlansUnavailable` when the site's plans cannot be read), then in
  ONE transaction stores an unconfirmed follow, or refreshes the pending one (a new nonce, the
  new day and hour and consent), and owes a `PLAN_CONFIRMATION` email (ledger kind, sent by the
  background `Sender`). At most one confirmation per follow per NEWSLETTER resend interval
  (`Result.outcome` "throttled": nothing changes). A follow already `following` is left as it
  is ("already_following": no email). An `ended` one (kept a few days) starts afresh: a new row.
  `newsletter=True` also stores a newsletter sign-up request (`Subscribers.request`): the
  newsletter's own double opt-in, its own confirmation email. The answer is the same for all.
- `confirmation(public_id, nonce) -> (outcome, follow)` says what the link would do, changing
  nothing ("confirm", "already", "stale", "unknown"); `confirm(public_id, nonce, now)` does it:
  `following`, `starts_at` = the first chosen weekday and hour in NEWSLETTER_TIMEZONE at or
  after `now`, as a UTC stamp; idempotent; returns the follow (None for an unknown or stale
  link: a new request changes the nonce).
- `following()` (every follow now `following`, by id), `by_ids(ids)` ({id: Follow}), `get`.
  `Follow` has the table's columns as attributes and as items (`follow.id`, `follow["id"]`).
- `end(follow_id, now)`: `ended`, `ended_at` (after the closing email). `stop(public_id) -> bool`
  and `stop_all(email) -> int` / `stop_all_of(public_id) -> int` (the link: every plan of that
  follow's address) delete at once. `erase_ended(now) -> int`: deletes follows ended more than
  NEWSLETTER_PLAN_KEEP_DAYS days ago and unconfirmed ones whose last request is older than a
  confirmation link lives. `forget(email) -> int` (`subscribers.forget`).
- `counts_by_plan()`: {plan_id: followers now}, nothing per person.
- `links(follow)`: {stop, stop_all}: signed absolute URLs to this endpoint (tokens carry the
  follow's random public id, never the address); `confirm_url(follow)`.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterable
from dataclasses import dataclass, fields
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from newsletter.database import Database, parse_stamp, stamp
from newsletter.outgoing.ledger import MailLedger
from newsletter.settings import Settings
from newsletter.subscriptions import addresses
from newsletter.subscriptions.plans import Plans, PlansUnavailable
from newsletter.subscriptions.subscribers import Subscribers, new_nonce, new_public_id
from newsletter.subscriptions.tokens import Tokens
from newsletter.subscriptions.web import ip_hash

PLAN_CONFIRMATION = "plan_confirmation"  # the ledger kind of a follow's confirmation email
UNCONFIRMED, FOLLOWING, ENDED = "unconfirmed", "following", "ended"
WEEKDAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
MAX_SOURCE_LENGTH = 500


class InvalidFollow(ValueError):
    """The follow form's input is not usable; str() says why, for the reader."""


@dataclass(frozen=True)
class Follow:
    id: int
    public_id: str
    email: str
    email_key: str
    plan_id: str
    weekday: int
    hour: int
    weeks: int
    status: str
    confirm_nonce: str
    created_at: str
    confirmed_at: str | None
    starts_at: str | None
    ended_at: str | None
    consent_at: str | None
    consent_source: str | None
    consent_ip_hash: str | None

    @classmethod
    def from_row(cls, row) -> Follow:
        return cls(**{f.name: row[f.name] for f in fields(cls)})

    def __getitem__(self, name: str):
        return getattr(self, name)

    def keys(self) -> list[str]:
        return [f.name for f in fields(self)]

    @property
    def starts(self) -> datetime | None:
        """`starts_at` as an aware UTC datetime."""
        return parse_stamp(self.starts_at) if self.starts_at else None


@dataclass(frozen=True)
class Result:
    """What `request` did (for logs and tests; the reader's answer is the same for all)."""

    outcome: str  # "queued", "throttled" or "already_following"
    follow: Follow | None
    plan: dict


class PlanFollows:
    def __init__(
        self,
        database: Database,
        settings: Settings,
        *,
        plans: Plans | None = None,
        tokens: Tokens | None = None,
    ):
        self.database, self.settings = database, settings
        self.plans = plans or Plans(settings)
        self.tokens = tokens or Tokens(
            settings.core.secret_key, max_age=settings.endpoint.confirm_max_age
        )
        self.zone = ZoneInfo(settings.core.timezone)

    # Reading --------------------------------------------------------------------------------
    def _one(self, db, where: str, value) -> Follow | None:
        row = db.execute(f"SELECT * FROM plan_follows WHERE {where} = ?", (value,)).fetchone()
        return Follow.from_row(row) if row else None

    def get(self, public_id: str) -> Follow | None:
        return self._one(self.database.db, "public_id", public_id)

    def following(self) -> list[Follow]:
        rows = self.database.db.execute(
            "SELECT * FROM plan_follows WHERE status = ? ORDER BY id", (FOLLOWING,)
        )
        return [Follow.from_row(row) for row in rows]

    def by_ids(self, ids: Iterable[int]) -> dict[int, Follow]:
        ids, found = list(ids), {}
        for start in range(0, len(ids), 500):  # SQLite's limit on bound parameters
            chunk = ids[start : start + 500]
            rows = self.database.db.execute(
                f"SELECT * FROM plan_follows WHERE id IN ({', '.join('?' * len(chunk))})", chunk
            )
            found.update((row["id"], Follow.from_row(row)) for row in rows)
        return found

    def counts_by_plan(self) -> dict[str, int]:
        rows = self.database.db.execute(
            "SELECT plan_id, count(*) FROM plan_follows WHERE status = ? GROUP BY plan_id"
            " ORDER BY plan_id",
            (FOLLOWING,),
        )
        return {row[0]: row[1] for row in rows}

    # The form -------------------------------------------------------------------------------
    def check(self, email, plan, weekday, hour) -> tuple[str, str, dict, int, int]:
        """(email, key, plan, weekday, hour) from the form's values, or InvalidFollow."""
        try:
            email, key = addresses.normalize(email)
        except addresses.InvalidAddress as problem:
            raise InvalidFollow(str(problem)) from None
        day = _whole(weekday, 0, 6)
        if day is None:
            raise InvalidFollow("Choose a day of the week for your emails (Monday to Sunday).")
        at = _whole(hour, 0, 23)
        if at is None:
            raise InvalidFollow("Choose an hour for your emails, from 00:00 to 23:00.")
        found = self.plans.get(plan) if isinstance(plan, str) else None  # PlansUnavailable
        if found is None:
            raise InvalidFollow(
                "There is no such exercise plan on the site: it may have been removed. Open the "
                "article again and use the form on its exercise card."
            )
        return email, key, found, day, at

    def request(
        self,
        email,
        plan,
        weekday,
        hour,
        *,
        source: str | None = None,
        ip: str | None = None,
        newsletter: bool = False,
    ) -> Result:
        email, key, found, day, at = self.check(email, plan, weekday, hour)
        source = source if isinstance(source, str) and len(source) <= MAX_SOURCE_LENGTH else None
        client = ip_hash(self.settings.core.secret_key, ip)
        moment = self.database.clock()
        now = stamp(moment)
        with self.database.transaction() as db:
            if newsletter:
                Subscribers(self.database).request(email, key, source=source, ip_hash=client)
            old = db.execute(
                "SELECT * FROM plan_follows WHERE email_key = ? AND plan_id = ?",
                (key, found["id"]),
            ).fetchone()
            old = Follow.from_row(old) if old else None
            if old is not None and old.status == FOLLOWING:
                return Result("already_following", old, found)
            if old is not None and old.status == UNCONFIRMED:
                last = parse_stamp(old.consent_at or old.created_at)
                if moment - last < timedelta(seconds=self.settings.endpoint.resend_interval):
                    return Result("throttled", old, found)
                db.execute(
                    "UPDATE plan_follows SET email = ?, weekday = ?, hour = ?, weeks = ?,"
                    " confirm_nonce = ?, consent_at = ?, consent_source = ?, consent_ip_hash = ?"
                    " WHERE id = ?",
                    (email, day, at, found["weeks"], new_nonce(), now, source, client, old.id),
                )
                follow_id = old.id
            else:
                if old is not None:  # ended, kept a few days: a fresh start, a fresh row
                    db.execute("DELETE FROM plan_follows WHERE id = ?", (old.id,))
                follow_id = db.execute(
                    "INSERT INTO plan_follows (public_id, email, email_key, plan_id, weekday, hour,"
                    " weeks, status, confirm_nonce, created_at, consent_at, consent_source,"
                    " consent_ip_hash) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
                    " RETURNING id",
                    (new_public_id(), email, key, found["id"], day, at, found["weeks"],
                     UNCONFIRMED, new_nonce(), now, now, source, client),
                ).fetchone()[0]  # fmt: skip
            MailLedger.add(db, PLAN_CONFIRMATION, [follow_id], now=now, to="follow")
            return Result("queued", self._one(db, "id", follow_id), found)

    # The confirmation link --------------------------------------------------------------------
    def confirmation(self, public_id: str, nonce: str) -> tuple[str, Follow | None]:
        """What the link would do now, changing nothing: "confirm", "already", "stale" (a
        newer request was made, or the plan is over) or "unknown" (stopped, erased)."""
        follow = self.get(public_id)
        if follow is None:
            return "unknown", None
        if not secrets.compare_digest(follow.confirm_nonce, nonce):
            return "stale", follow
        if follow.status == FOLLOWING:
            return "already", follow
        if follow.status != UNCONFIRMED:
            return "stale", follow
        return "confirm", follow

    def confirm(self, public_id: str, nonce: str, now: datetime | None = None) -> Follow | None:
        """Start following (idempotent: an already-following follow is returned unchanged)."""
        moment = now or self.database.clock()
        with self.database.transaction() as db:
            outcome, follow = self.confirmation(public_id, nonce)
            if outcome == "already":
                return follow
            if outcome != "confirm":
                return None
            starts = self.first_session(moment, follow.weekday, follow.hour)
            db.execute(
                "UPDATE plan_follows SET status = ?, confirmed_at = ?, starts_at = ?"
                " WHERE id = ? AND status = ?",
                (FOLLOWING, stamp(moment), stamp(starts), follow.id, UNCONFIRMED),
            )
            return self._one(db, "id", follow.id)

    def first_session(self, moment: datetime, weekday: int, hour: int) -> datetime:
        """The first `weekday` at `hour` in the site's zone at or after `moment` (UTC)."""
        local = moment.astimezone(self.zone)
        for offset in range(0, 15):
            day: date = local.date() + timedelta(days=offset)
            if day.weekday() != weekday:
                continue
            candidate = datetime.combine(day, time(hour), tzinfo=self.zone).astimezone(UTC)
            if candidate >= moment.astimezone(UTC):
                return candidate
        raise AssertionError("unreachable: a weekday comes every 7 days")

    # Ending and erasing -------------------------------------------------------------------------
    def end(self, follow_id: int, now: datetime | str | None = None) -> None:
        when = now if isinstance(now, str) else stamp(now or self.database.clock())
        with self.database.transaction() as db:
            db.execute(
                "UPDATE plan_follows SET status = ?, ended_at = ? WHERE id = ? AND status != ?",
                (ENDED, when, follow_id, ENDED),
            )

    def stop(self, public_id: str) -> bool:
        """Delete this follow at once (the stop link); True when there was one."""
        with self.database.transaction() as db:
            gone = db.execute("DELETE FROM plan_follows WHERE public_id = ?", (public_id,))
            return gone.rowcount > 0

    def stop_all(self, email: str) -> int:
        """Delete every follow of this address; how many."""
        key = addresses.key_of(email) if isinstance(email, str) else None
        if not key:
            try:
                key = addresses.normalize(email)[1]
            except addresses.InvalidAddress:
                return 0
        with self.database.transaction() as db:
            return db.execute("DELETE FROM plan_follows WHERE email_key = ?", (key,)).rowcount

    def stop_all_of(self, public_id: str) -> int:
        """The "stop all plans" link: delete every follow of the address of this follow."""
        with self.database.transaction() as db:
            follow = self._one(db, "public_id", public_id)
            if follow is None:
                return 0
            return db.execute(
                "DELETE FROM plan_follows WHERE email_key = ?", (follow.email_key,)
            ).rowcount

    def forget(self, email: str, *, key: str | None = None) -> int:
        """Erase every follow of this address (`subscribers.forget`); `key`: the address's key
        when the caller already has it (an address we would not accept today)."""
        if key is None:
            return self.stop_all(email)
        with self.database.transaction() as db:
            return db.execute("DELETE FROM plan_follows WHERE email_key = ?", (key,)).rowcount

    def erase_ended(self, now: datetime | None = None) -> int:
        moment = now or self.database.clock()
        ended = stamp(moment - timedelta(days=self.settings.endpoint.plan_keep_days))
        asked = stamp(moment - timedelta(seconds=self.settings.endpoint.confirm_max_age))
        with self.database.transaction() as db:
            return db.execute(
                "DELETE FROM plan_follows WHERE (status = ? AND ended_at < ?)"
                " OR (status = ? AND coalesce(consent_at, created_at) < ?)",
                (ENDED, ended, UNCONFIRMED, asked),
            ).rowcount

    # Links --------------------------------------------------------------------------------------
    def links(self, follow: Follow) -> dict[str, str]:
        base = self.settings.core.base_url
        return {
            "stop": f"{base}/plans/stop/" + self.tokens.plan_stop_token(follow.public_id),
            "stop_all": f"{base}/plans/stop-all/"
            + self.tokens.plan_stop_token(follow.public_id, every=True),
        }

    def confirm_url(self, follow: Follow) -> str:
        token = self.tokens.plan_confirm_token(follow.public_id, follow.confirm_nonce)
        return f"{self.settings.core.base_url}/plans/confirm/{token}"


def _whole(value, low: int, high: int) -> int | None:
    """A whole number low..high from a form field ("3", 3), else None."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        number = value
    elif isinstance(value, str) and value.strip().isascii() and value.strip().isdigit():
        if len(value.strip()) > 2:
            return None
        number = int(value.strip())
    else:
        return None
    return number if low <= number <= high else None


__all__ = [
    "ENDED",
    "FOLLOWING",
    "PLAN_CONFIRMATION",
    "UNCONFIRMED",
    "WEEKDAYS",
    "Follow",
    "InvalidFollow",
    "PlanFollows",
    "PlansUnavailable",
    "Result",
]
