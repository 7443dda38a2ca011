"""`invoke reminders`: the weekly emails of the exercise plans readers follow (issue 21), sent
as they fall due; safe to run from a timer every few minutes.

Contract:
- Two kinds in the one outgoing-mail ledger, owed to a plan follow (`to="follow"`): `PLAN_WEEK`
  (about_id = the week, 1..weeks) and `PLAN_CLOSING` (about_id = weeks + 1). The ledger's
  unique index holds each (follow, kind, week) once, and owing is `ON CONFLICT DO NOTHING`: one
  email per reader, plan and week, whatever runs and re-runs.
- The schedule: week k's email is due `7 * (k - 1)` days after `starts_at` (the first chosen
  weekday and hour at or after the confirmation, `PlanFollows.confirm`), the closing email
  `7 * weeks` days after it (`weeks`: the follow's, what the reader signed up for); days on
  the site's clock (NEWSLETTER_TIMEZONE), so the chosen hour holds across summer time.
- `owe(ledger, follows, moment)` owes, in ONE transaction, each follow's latest email whose
  moment has come and that is not owed yet. After downtime (the timer stopped, the machine was
  off) only the current week's email is sent: an earlier week nobody sent is recorded
  `skipped` ("missed while the reminders were not running"), never sent late, so a reader never
  gets two weeks at once; once the closing email is due, it is the one sent (it always goes).
  A week's email still unsent when its week is over (a retry that never got through) is
  skipped the same way when its turn comes.
- `run(settings, as_of=None, plans=None, connect=None, sleep=...)` returns a `Summary`:
  1. takes the run lock, the file lock `<database>-reminders.lock` (its own: announce and
     reminders run side by side); a second run raises `RemindersLocked`; the holder gives back
     what a dead run left in flight (a SIGKILL mid-run: its emails go out again on the next
     run, with the same Message-ID: at most one duplicate per SMTP worker, as for announce);
  2. ends the follows whose closing email is finished, owes what is due (step `owe`);
  3. sends every queued reminder through the one `Dispatcher`, the handler `Reminders`: the
     plan as the site publishes it now (`exercises/plans.json`, read once per run and only when
     there is something to send; unreadable: nothing is sent, the emails wait for the next run,
     no attempt counted), each result recorded as soon as the transport answers; retried like
     announcements (NEWSLETTER_ANNOUNCE_RETRIES passes, NEWSLETTER_ANNOUNCE_RETRY_DELAY
     doubling, failed after NEWSLETTER_MAX_ATTEMPTS). Skipped: a follow stopped or ended
     meanwhile, a week already over, a plan no longer on the site. A hard bounce
     (`RecipientRefused`) stops the follow (deleted, as by its stop link);
  4. ends each follow whose closing email was sent (or given up): `PlanFollows.end`, at the
     moment the result was recorded; then `PlanFollows.erase_ended(now)` erases the follows
     ended more than NEWSLETTER_PLAN_KEEP_DAYS days ago (and stale unconfirmed ones).
  `as_of` runs it as if it were that moment (a UTC datetime; the clock moves on from it as the
  run takes time): for catching up after downtime, and for tests. `parse_moment(text, zone)`
  reads `--as-of` (ISO 8601; without an offset, in NEWSLETTER_TIMEZONE).
No tracking: the emails (`reminder_emails`) carry plain links only.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from newsletter import mail
from newsletter.announcements import reminder_emails
from newsletter.database import Database, stamp, utcnow
from newsletter.filelock import Locked
from newsletter.mail import message as compose
from newsletter.mail import proof
from newsletter.outgoing.dispatcher import MAX_WAIT, Dispatcher, Skip, Tally
from newsletter.outgoing.ledger import Entry, MailLedger, Policy, Status
from newsletter.settings import Settings, load
from newsletter.subscriptions.plan_follows import FOLLOWING, Follow, PlanFollows
from newsletter.subscriptions.plans import Plans, PlansUnavailable

PLAN_WEEK = "plan_week"
PLAN_CLOSING = "plan_closing"
KINDS = (PLAN_WEEK, PLAN_CLOSING)
WEEK = timedelta(days=7)
MISSED = "missed: week {week} went by while the reminders were not running"
FINISHED = (Status.SENT, Status.FAILED, Status.SKIPPED)
PAGE = 200


class RemindersLocked(Exception):
    """Another reminders run holds the lock; str() says which."""


# The schedule ---------------------------------------------------------------------------------
def due_at(follow: Follow, number: int, zone: ZoneInfo) -> datetime:
    """When email `number` of the follow is due: week 1..weeks, then the closing (weeks + 1);
    `number - 1` weeks after the start on the site's clock (`zone`), so the emails keep the
    reader's hour across a change to or from summer time. UTC."""
    local = follow.starts.astimezone(zone)
    return (local + WEEK * (number - 1)).astimezone(UTC)  # wall-clock arithmetic in `zone`


def current(follow: Follow, moment: datetime, zone: ZoneInfo) -> int:
    """The latest of the follow's emails whose moment has come: 0 (none yet), a week 1..weeks,
    or weeks + 1 (the closing email)."""
    if follow.starts is None or moment < follow.starts:
        return 0
    guess = min(follow.weeks + 1, (moment - follow.starts) // WEEK + 2)  # an hour of DST off
    while guess > 1 and due_at(follow, guess, zone) > moment:
        guess -= 1
    return guess


def kind_of(number: int, weeks: int) -> str:
    return PLAN_CLOSING if number > weeks else PLAN_WEEK


def parse_moment(text: str, zone: str) -> datetime:
    """`--as-of`: an ISO 8601 date and time (2026-12-07T08:00, ...+00:00, ...Z); without an
    offset it is in `zone` (the site's). ValueError with a sentence when it is not one."""
    try:
        moment = datetime.fromisoformat(text.strip())
    except ValueError:
        raise ValueError(
            f"--as-of {text!r}: not an ISO 8601 date and time; write e.g. 2026-12-07T08:00 "
            f"({zone} time) or 2026-12-07T08:00+00:00"
        ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=ZoneInfo(zone))
    return moment.astimezone(UTC)


# Owing ----------------------------------------------------------------------------------------
@dataclass
class Owed:
    weeks: int = 0  # weekly emails owed
    closings: int = 0  # closing emails owed
    missed: int = 0  # earlier weeks recorded skipped (downtime)


def _owed(ledger: MailLedger, follow: Follow, number: int) -> sqlite3.Row | None:
    rows = ledger.rows(kind_of(number, follow.weeks), number, follow_id=follow.id)
    return rows[0] if rows else None


def owe(ledger: MailLedger, follows: PlanFollows, moment: datetime) -> Owed:
    """Owe each follow's latest due email not owed yet (see the contract); one transaction,
    none at all when nothing is new (a read per follow on the ledger's unique index). A follow
    stopped meanwhile (the endpoint deletes it at once) is owed nothing."""
    owed = Owed()
    todo = []
    for follow in follows.following():
        number = current(follow, moment, follows.zone)
        if number and _owed(ledger, follow, number) is None:
            todo.append((follow, number))
    if not todo:
        return owed
    now = stamp(moment)
    with ledger.database.transaction() as db:
        alive = follows.by_ids([follow.id for follow, _ in todo])  # read inside: no race
        for follow, number in todo:
            if follow.id not in alive or alive[follow.id].status != FOLLOWING:
                continue
            for week in range(1, min(number, follow.weeks + 1)):
                missed = MailLedger.add(
                    db, PLAN_WEEK, [follow.id], now=now, about_id=week, to="follow", once=True
                )
                if missed:
                    ledger.skip([missed], MISSED.format(week=week))  # joins this transaction
                    owed.missed += 1
            kind = kind_of(number, follow.weeks)
            new = MailLedger.add(
                db, kind, [follow.id], now=now, about_id=number, to="follow", once=True
            )
            if new and kind == PLAN_CLOSING:
                owed.closings += 1
            elif new:
                owed.weeks += 1
    return owed


def end_finished(ledger: MailLedger, follows: PlanFollows, moment: datetime) -> int:
    """End each following follow whose closing email is finished (sent, or given up), at the
    moment its result was recorded; returns how many."""
    ended = 0
    for follow in follows.following():
        if current(follow, moment, follows.zone) <= follow.weeks:
            continue
        row = _owed(ledger, follow, follow.weeks + 1)
        if row is not None and row["status"] in FINISHED:
            follows.end(follow.id, row["updated_at"])
            ended += 1
    return ended


# Sending --------------------------------------------------------------------------------------
class Reminders:
    """The dispatcher's handler for both kinds: each email made from the follow as it is now
    and the plan as the site publishes it."""

    def __init__(self, settings: Settings, follows: PlanFollows, plans: dict[str, dict],
                 policy: Policy):  # fmt: skip
        self.settings, self.follows, self.plans, self.policy = settings, follows, plans, policy

    def compose(self, entries: list[Entry]) -> Iterator[mail.Outgoing | Skip]:
        people = self.follows.by_ids([entry.follow_id for entry in entries])
        moment = self.follows.database.clock()
        for entry in entries:
            follow = people.get(entry.follow_id)
            if follow is None or follow.status != FOLLOWING:
                yield Skip(f"the follow is {follow.status if follow else 'stopped'} now")
                continue
            over = due_at(follow, entry.about_id + 1, self.follows.zone)
            if entry.kind == PLAN_WEEK and moment >= over:
                yield Skip(f"week {entry.about_id} was over before its email could go")
                continue
            plan = self.plans.get(follow.plan_id)
            if plan is None:
                yield Skip(f"the plan {follow.plan_id} is no longer on the site")
                continue
            yield self._outgoing(entry, follow, plan)

    def _outgoing(self, entry: Entry, follow: Follow, plan: dict) -> mail.Outgoing:
        seal = (self.settings, entry.kind, entry.id, follow.public_id)
        common = dict(links=self.follows.links(follow), message_id=proof.message_id(*seal))
        if entry.kind == PLAN_CLOSING:
            message = reminder_emails.closing_email(
                self.settings, follow.email, plan, weeks=follow.weeks,
                keep_days=self.settings.endpoint.plan_keep_days, **common,
            )  # fmt: skip
        else:
            schedule = reminder_emails.schedule_words(self.settings, follow.weekday, follow.hour)
            message = reminder_emails.week_email(
                self.settings, follow.email, plan, week=entry.about_id, weeks=follow.weeks,
                schedule=schedule, **common,
            )  # fmt: skip
        return mail.Outgoing(
            to=follow.email,
            message_id=str(message["Message-ID"]),
            data=compose.wire(message),
            ref=entry.id,
            envelope_from=proof.return_path(*seal),
        )

    def refused(self, entry: Entry, outgoing: mail.Outgoing, error: str) -> None:
        """The address was refused for good: the follow stops (deleted, as by its stop link)."""
        follow = self.follows.by_ids([entry.follow_id]).get(entry.follow_id)
        if follow is not None:
            self.follows.stop(follow.public_id)


@dataclass
class Summary:
    as_of: datetime
    owed: Owed = field(default_factory=Owed)
    tally: Tally = field(default_factory=Tally)
    pending: int = 0  # still queued or in flight after the run
    ended: int = 0  # follows whose closing email went
    erased: int = 0  # follow records erased
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        t = self.tally
        return not (t.bounced or t.failed or t.stopped or self.pending or self.problems)

    def lines(self) -> list[str]:
        o, t = self.owed, self.tally
        missed = f" ({o.missed} missed week(s) recorded, not sent)" if o.missed else ""
        line = (
            f"Plan reminders as of {self.as_of:%Y-%m-%d %H:%M} UTC: owed {o.weeks} weekly and "
            f"{o.closings} closing email(s){missed}; sent {t.sent}, skipped {t.skipped}, failed "
            f"{t.bounced + t.failed} ({t.bounced} bounced), still pending {self.pending}; "
            f"{self.ended} plan(s) ended, {self.erased} follow record(s) erased."
        )
        out = [line] + [f"  PROBLEM: {problem}" for problem in self.problems]
        out += [
            f"  {count} x {text}"
            for text, count in sorted(t.errors.items(), key=lambda e: -e[1])[:5]
        ]
        return out + [f"  {note}" for note in t.notes]


@contextmanager
def run_lock(database: Database) -> Iterator[None]:
    """One reminders run at a time: `<database>-reminders.lock`, released by the kernel when the
    run ends or dies. The holder takes back the reminders a dead run left in flight."""
    lock = database.run_lock("reminders")
    try:
        lock.acquire(wait=False)
    except Locked as held:
        raise RemindersLocked(
            f"another reminders run is sending ({held}); not starting a second one. "
            "Its lock ends with that process."
        ) from None
    try:
        MailLedger(database).release(kinds=KINDS)
        yield
    finally:
        lock.release()


def run(
    settings: Settings | None = None,
    *,
    as_of: datetime | None = None,
    plans: Plans | None = None,
    connect=None,
    sleep=time.sleep,
) -> Summary:
    """Owe and send what is due (see the contract). `connect(report)` makes the mailer (default:
    `mail.connect` from the settings); `plans` reads the site's plans (default: `Plans`)."""
    settings = load(settings)
    clock = utcnow
    if as_of is not None:
        started, as_of = time.monotonic(), as_of.astimezone(UTC)
        clock = lambda: as_of + timedelta(seconds=time.monotonic() - started)  # noqa: E731
    database = Database(settings.core.database, clock=clock)
    try:
        with run_lock(database):
            ledger = MailLedger(database)
            follows = PlanFollows(database, settings, plans=plans)
            summary = Summary(as_of=clock())
            summary.ended = end_finished(ledger, follows, clock())  # a crash after the closing
            summary.owed = owe(ledger, follows, clock())
            _send(settings, ledger, follows, summary, connect, sleep)
            summary.ended += end_finished(ledger, follows, clock())
            summary.erased = follows.erase_ended(clock())
            summary.pending = ledger.unfinished(KINDS)
        return summary
    finally:
        database.close()


def _send(settings, ledger, follows, summary, connect, sleep) -> None:
    if ledger.next_due(KINDS) is None:
        return  # nothing queued: no plans read, no connection opened
    try:
        published = {plan["id"]: plan for plan in follows.plans.all()}
    except PlansUnavailable as problem:
        summary.problems.append(f"{problem}; the emails wait for the next run")
        return
    policy = Policy(settings.announce.retry_delay, MAX_WAIT, settings.endpoint.max_attempts)
    handler = Reminders(settings, follows, published, policy)
    dispatcher = Dispatcher(
        ledger, dict.fromkeys(KINDS, handler), breaker=max(20, 3 * settings.smtp.workers)
    )
    connect = connect or (
        lambda report: mail.connect(settings, report, workers=settings.smtp.workers)
    )
    mailer = connect(dispatcher.report)
    try:
        summary.tally = dispatcher.run(
            mailer, kinds=KINDS, passes=settings.announce.retries + 1, every=True, page=PAGE,
            sleep=sleep, label="plan reminders",
        )  # fmt: skip
    finally:
        mailer.close()


__all__ = [
    "KINDS",
    "PLAN_CLOSING",
    "PLAN_WEEK",
    "Owed",
    "Reminders",
    "RemindersLocked",
    "Summary",
    "current",
    "due_at",
    "end_finished",
    "owe",
    "parse_moment",
    "run",
    "run_lock",
]
