"""The background sender: applies the form's sign-up requests, then sends the confirmation and
welcome emails the outgoing-mail ledger owes, through the one dispatcher.

Contract:
- `apply_requests()` applies the stored sign-up requests in order (`Subscribers.process_requests`):
  the form only stores them, so its answer costs the same for every address.
- `Confirmations(settings, subscribers, tokens)` is the dispatcher's handler for the kind
  "confirmation": it composes each email (skipped when the reader confirmed or left meanwhile)
  and records a refused address as a hard bounce.
- `Welcome(settings, subscribers, tokens, articles=None, library=None)` is the handler for the
  kind "welcome" (owed once per reader by `Subscribers.confirm`, or by the author's add/import
  `--welcome`): the author's text and picks, the latest articles (`articles()`, default
  `articles.latest(settings, ...)`: enough for `emails.LATEST` besides the picks) and the
  exercise library's URL (`library()`, default `articles.exercise_library(settings)`), each
  read once per batch; an unreadable feed gives none and the email still goes. Skipped when
  the reader is no longer confirmed; a refused address is a hard bounce, as for confirmations.
- `AddressChanges(settings, subscribers, tokens)` is the handler for the kind "address_change"
  (owed by `address_changes.AddressChanges.request`): the email goes to the NEW address, with the
  link that confirms the change (or, when that address is on the list by then, a note that
  nothing changes). Skipped when the reader is no longer confirmed, or the request was replaced
  or answered meanwhile. Its Message-ID proves nothing about the reader (the new address is not
  theirs yet: a bounce of it must never bounce the reader) and a refused new address only drops
  the pending change. Each pass forgets the changes whose link has expired.
- `PlanConfirmations(settings, follows)` is the handler for the kind "plan_confirmation" (owed by
  `plan_follows.PlanFollows.request`): the email that asks a reader to confirm following an
  exercise plan, sealed like a confirmation (with the follow's public id); skipped when the
  follow was confirmed, stopped or erased meanwhile, or the site no longer publishes the plan;
  a refused address deletes the follow (no subscriber is bounced: a follower need not be one).
- `Sender(settings, database, tokens)`: `send_due()` has the one dispatcher (`newsletter.outgoing`)
  claim the due confirmations and welcomes (leased, so several senders, e.g. one per gunicorn
  worker, never send the same one) and send them one at a time through the one mailer; the one
  retry policy (`NEWSLETTER_RETRY_DELAY`, doubling, at most an hour; failed after
  `NEWSLETTER_MAX_ATTEMPTS`) applies to a `TemporaryFailure` or a `MessageRefused` (our account
  or settings: it may pass once fixed), and the first one ends the pass: the rest is given back
  untried.
- `start()` runs `send_due()` in a daemon thread, woken at once by `wake()` (the web app calls it
  after queueing) and otherwise when the next retry is due; `stop()` ends it. Given `busy` (the
  web app: "a request came in during the last 50 ms"), it sends at low priority: while busy, it
  waits up to half a second before each email, so that composing emails never slows the form.
- `drain(timeout)` sends until nothing is queued or in flight, waiting out retries (tasks);
  `counts()`: both kinds' rows by status, added up.
The subscribe request never waits on any of this: its email is already owed in the ledger.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from datetime import timedelta

from newsletter import mail
from newsletter.database import Database
from newsletter.mail import message as compose
from newsletter.mail import proof
from newsletter.outgoing.dispatcher import Dispatcher, Skip
from newsletter.outgoing.ledger import Entry, MailLedger, Policy
from newsletter.settings import Settings
from newsletter.subscriptions import address_changes, emails
from newsletter.subscriptions import articles as feed_articles
from newsletter.subscriptions.feedback import Feedback
from newsletter.subscriptions.plan_emails import plan_confirmation_email
from newsletter.subscriptions.plan_follows import PLAN_CONFIRMATION, UNCONFIRMED, PlanFollows
from newsletter.subscriptions.plans import PlansUnavailable
from newsletter.subscriptions.subscribers import (
    CONFIRMATION,
    OPTING_IN,
    WELCOME,
    Status,
    Subscriber,
    Subscribers,
)
from newsletter.subscriptions.tokens import Tokens

log = logging.getLogger(__name__)
MAX_BACKOFF = 3600.0
POLL = 2.0  # seconds between looks at the queue when idle (retries, other processes' rows)
YIELD_MAX = 0.5  # under load, still at least one email per this many seconds
CHECKPOINT_EVERY = 1.0  # seconds between WAL checkpoints, when the store leaves them to us


KINDS = (CONFIRMATION, WELCOME, address_changes.ADDRESS_CHANGE, PLAN_CONFIRMATION)  # sent here


class _Handler:
    """What both kinds this sender sends share: the one retry policy with the endpoint's
    settings, each email sealed for its row and reader, a refused address a hard bounce."""

    kind = ""

    def __init__(self, settings: Settings, subscribers: Subscribers, tokens: Tokens):
        self.settings, self.subscribers, self.tokens = settings, subscribers, tokens
        self.feedback = Feedback(subscribers.database)
        self.policy = Policy(
            settings.endpoint.retry_delay, MAX_BACKOFF, settings.endpoint.max_attempts
        )

    def sealed(self, entry: Entry, subscriber: Subscriber, make, **details) -> mail.Outgoing:
        """The email `make(settings, subscriber, message_id=..., **details)` builds, its
        Message-ID and return path sealed for this row and reader (`mail.proof`)."""
        seal = (self.settings, self.kind, entry.id, subscriber.public_id)
        message = make(self.settings, subscriber, message_id=proof.message_id(*seal), **details)
        return mail.Outgoing(
            to=subscriber.email,
            message_id=str(message["Message-ID"]),
            data=compose.wire(message),
            ref=entry.id,
            envelope_from=proof.return_path(*seal),
        )

    def refused(self, entry: Entry, outgoing: mail.Outgoing, error: str) -> None:
        """The address was refused for good while sending: a hard bounce, so nothing is sent
        to it again."""
        self.feedback.refused_at_send(entry.subscriber_id, error, outgoing.message_id)
        log.error("%s %s refused for good: %s", self.kind, entry.id, error)


class Confirmations(_Handler):
    """The dispatcher's handler for confirmation emails."""

    kind = CONFIRMATION

    def compose(self, entries: list[Entry]) -> Iterator[mail.Outgoing | Skip]:
        people = self.subscribers.by_ids([entry.subscriber_id for entry in entries])
        for entry in entries:
            subscriber = people.get(entry.subscriber_id)
            if subscriber is None or subscriber.status not in OPTING_IN:
                yield Skip(f"subscriber is {subscriber.status if subscriber else 'gone'} now")
                continue
            links = emails.links(self.settings, self.tokens, subscriber)
            yield self.sealed(entry, subscriber, emails.confirmation_email, **links)


class Welcome(_Handler):
    """The dispatcher's handler for welcome emails: once per reader, after they confirm."""

    kind = WELCOME

    def __init__(
        self,
        settings: Settings,
        subscribers: Subscribers,
        tokens: Tokens,
        articles: Callable[[], list[feed_articles.Article]] | None = None,
        library: Callable[[], str] | None = None,
    ):
        super().__init__(settings, subscribers, tokens)
        count = emails.LATEST + len(settings.mail.start_here)  # a pick is not listed twice
        self.articles = articles or (lambda: feed_articles.latest(settings, count))
        self.library = library or (lambda: feed_articles.exercise_library(settings))

    def compose(self, entries: list[Entry]) -> Iterator[mail.Outgoing | Skip]:
        people = self.subscribers.by_ids([entry.subscriber_id for entry in entries])
        latest = library = None  # read once per batch, and only when one is to be made
        for entry in entries:
            subscriber = people.get(entry.subscriber_id)
            if subscriber is None or subscriber.status != Status.CONFIRMED:
                yield Skip(f"subscriber is {subscriber.status if subscriber else 'gone'} now")
                continue
            if latest is None:
                latest, library = self._read(self.articles, []), self._read(self.library, "")
            unsubscribe = emails.unsubscribe_url(self.settings, self.tokens, subscriber.public_id)
            preferences = emails.preferences_url(self.settings, self.tokens, subscriber.public_id)
            yield self.sealed(entry, subscriber, emails.welcome_email, unsubscribe_url=unsubscribe,
                              articles=latest, library=library,
                              preferences_url=preferences)  # fmt: skip

    @staticmethod
    def _read(read, empty):
        try:
            return read()
        except Exception:  # noqa: BLE001 - never fail a welcome for its lists
            log.exception("welcome email: the blog's articles could not be read")
            return empty


class AddressChanges(_Handler):
    """The dispatcher's handler for the emails that confirm a change of address."""

    kind = address_changes.ADDRESS_CHANGE

    def __init__(self, settings: Settings, subscribers: Subscribers, tokens: Tokens):
        super().__init__(settings, subscribers, tokens)
        self.changes = address_changes.AddressChanges(subscribers.database)

    def compose(self, entries: list[Entry]) -> Iterator[mail.Outgoing | Skip]:
        people = self.subscribers.by_ids([entry.subscriber_id for entry in entries])
        for entry in entries:
            subscriber = people.get(entry.subscriber_id)
            if subscriber is None or subscriber.status != Status.CONFIRMED:
                yield Skip(f"subscriber is {subscriber.status if subscriber else 'gone'} now")
                continue
            pending = self.changes.pending(subscriber.id)
            if pending is None or pending.mail_id != entry.id:
                yield Skip("the change was answered, dropped or asked again since")
                continue
            token = self.tokens.address_token(subscriber.public_id, pending.nonce)
            message = emails.address_change_email(
                self.settings,
                pending.email,
                confirm_url=f"{self.settings.core.base_url}/address/{token}",
                taken=self.changes.taken(pending.email_key),
                # proves nothing about the reader: the new address is not theirs (yet)
                message_id=proof.message_id(self.settings, self.kind, entry.id),
            )
            yield mail.Outgoing(
                to=pending.email,
                message_id=str(message["Message-ID"]),
                data=compose.wire(message),
                ref=entry.id,
            )

    def refused(self, entry: Entry, outgoing: mail.Outgoing, error: str) -> None:
        """The NEW address was refused for good: the change is dropped; the reader's own
        address is not bounced."""
        self.changes.drop(entry.subscriber_id, entry.id)
        log.warning("address change %s: the new address was refused: %s", entry.id, error)


class PlanConfirmations:
    """The dispatcher's handler for the emails that confirm following an exercise plan."""

    kind = PLAN_CONFIRMATION

    def __init__(self, settings: Settings, follows: PlanFollows):
        self.settings, self.follows = settings, follows
        self.policy = Policy(
            settings.endpoint.retry_delay, MAX_BACKOFF, settings.endpoint.max_attempts
        )

    def compose(self, entries: list[Entry]) -> Iterator[mail.Outgoing | Skip]:
        found = self.follows.by_ids([entry.follow_id for entry in entries])
        for entry in entries:
            follow = found.get(entry.follow_id)
            if follow is None or follow.status != UNCONFIRMED:
                yield Skip(f"plan follow is {follow.status if follow else 'gone'} now")
                continue
            plan = self._plan(follow)
            if plan is None:
                yield Skip("the site no longer publishes this plan")
                continue
            seal = (self.settings, self.kind, entry.id, follow.public_id)
            message = plan_confirmation_email(
                self.settings, follow, plan=plan, confirm_url=self.follows.confirm_url(follow),
                stop_url=self.follows.links(follow)["stop"], message_id=proof.message_id(*seal),
            )  # fmt: skip
            yield mail.Outgoing(
                to=follow.email,
                message_id=str(message["Message-ID"]),
                data=compose.wire(message),
                ref=entry.id,
                envelope_from=proof.return_path(*seal),
            )

    def _plan(self, follow) -> dict | None:
        """The plan as published; when the site cannot be read just now, what we know of it
        (the request checked it a moment ago): the email still goes."""
        try:
            return self.follows.plans.get(follow.plan_id)
        except PlansUnavailable as problem:
            log.warning("plan confirmation: %s", problem)
            return {"title": "the exercise plan you chose", "url": self.settings.core.site_url}

    def refused(self, entry: Entry, outgoing: mail.Outgoing, error: str) -> None:
        """The address was refused for good: the follow is deleted (nothing more is sent)."""
        follow = self.follows.by_ids([entry.follow_id]).get(entry.follow_id)
        if follow is not None:
            self.follows.stop(follow.public_id)
        log.error("%s %s refused for good: %s", self.kind, entry.id, error)


class _Lazy:
    """The mailer, connected on the first push: an idle pass opens no connection."""

    def __init__(self, connect, report):
        self.connect, self.report, self.mailer = connect, report, None

    def push(self, outgoing: mail.Outgoing) -> None:
        if self.mailer is None:
            self.mailer = self.connect(self.report)
        self.mailer.push(outgoing)

    def flush(self) -> None:
        if self.mailer is not None:
            self.mailer.flush()

    def close(self) -> None:
        if self.mailer is not None:
            self.mailer.close()
            self.mailer = None


class Sender:
    def __init__(
        self,
        settings: Settings,
        database: Database,
        tokens: Tokens,
        connect: Callable[[mail.Report], mail.Mailer] | None = None,
        batch: int = 20,
        busy: Callable[[], bool] | None = None,
    ):
        self.settings, self.database, self.tokens = settings, database, tokens
        self.ledger = MailLedger(database)
        self.subscribers = Subscribers(database)
        self.connect = connect or (lambda report: mail.connect(settings, report))
        self.batch = batch
        self.busy = busy
        self._wake = threading.Event()
        self._stop = threading.Event()
        self.confirmations = Confirmations(settings, self.subscribers, tokens)
        self.welcome = Welcome(settings, self.subscribers, tokens)
        self.address_changes = AddressChanges(settings, self.subscribers, tokens)
        self.plan_confirmations = PlanConfirmations(
            settings, PlanFollows(database, settings, tokens=tokens)
        )
        self._thread: threading.Thread | None = None
        self._pid_lock = threading.Lock()
        self._last_checkpoint = 0.0

    # One pass -----------------------------------------------------------------------------
    def apply_requests(self) -> int:
        """Apply the sign-up requests the form stored (each queues a confirmation email, or
        not: already subscribed, asked less than 10 minutes ago, ...); return how many."""
        applied = 0
        while not self._stop.is_set() and self.subscribers.pending_requests():  # a read: cheap
            done = self.subscribers.process_requests(
                resend_interval=self.settings.endpoint.resend_interval
            )
            if not done:
                break
            for outcome in done:
                log.info("sign-up request: %s", outcome)
            applied += len(done)
        return applied

    def send_due(self) -> int:
        """Apply the sign-up requests, then send every confirmation and welcome due now; return
        how many emails were handled."""
        self.apply_requests()
        self.address_changes.changes.prune(self.settings.endpoint.confirm_max_age)
        dispatcher = Dispatcher(
            self.ledger,
            {
                CONFIRMATION: self.confirmations,
                WELCOME: self.welcome,
                address_changes.ADDRESS_CHANGE: self.address_changes,
                PLAN_CONFIRMATION: self.plan_confirmations,
            },
            breaker=1,  # the first temporary failure ends the pass: the server is unwell
            stop=self._stop,
            before_push=self._yield_to_requests,
        )
        mailer = _Lazy(self.connect, dispatcher.report)
        try:
            tally = dispatcher.run(mailer, page=self.batch, flush_every=1)
        finally:
            mailer.close()
        for text, count in tally.errors.items():
            log.warning("confirmation or welcome emails not sent (%d): %s", count, text)
        return tally.sent + tally.bounced + tally.skipped + tally.retried + tally.failed

    def _yield_to_requests(self) -> None:
        """Low priority: while the host is busy answering requests, wait (up to YIELD_MAX
        seconds per email), so a burst of sign-ups is answered first and mailed right after."""
        if self.busy is None:
            return
        deadline = time.monotonic() + YIELD_MAX
        while self.busy() and time.monotonic() < deadline and not self._stop.is_set():
            self._maybe_checkpoint()
            time.sleep(0.01)

    def _maybe_checkpoint(self) -> None:
        if not self.database.background_checkpoints:
            return
        now = time.monotonic()
        if now - self._last_checkpoint >= CHECKPOINT_EVERY:
            self._last_checkpoint = now
            try:
                self.database.checkpoint()
            except Exception:  # noqa: BLE001 - the next one will do
                log.exception("newsletter sender: WAL checkpoint failed")

    # Running in the background --------------------------------------------------------------
    def start(self) -> None:
        with self._pid_lock:
            if self._thread is not None and self._thread.is_alive():
                return
            self._stop.clear()
            self._thread = threading.Thread(target=self._run, name="newsletter-sender", daemon=True)
            self._thread.start()

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def wake(self) -> None:
        self._wake.set()

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None

    def _run(self) -> None:
        while not self._stop.is_set():
            self._wake.clear()
            try:
                self.send_due()
                self._maybe_checkpoint()
                wait = self._seconds_to_next_due()
            except Exception:  # noqa: BLE001 - keep the thread alive; the store may be back soon
                log.exception("newsletter sender: pass failed")
                wait = POLL
            self._wake.wait(wait)

    def _seconds_to_next_due(self) -> float:
        due = self.ledger.next_due(KINDS)
        if due is None:
            return CHECKPOINT_EVERY if self.database.background_checkpoints else POLL
        return max(0.0, min(POLL, (due - self.database.clock()) / timedelta(seconds=1)))

    def drain(self, timeout: float = 60.0) -> dict[str, int]:
        """Send until nothing is queued or in flight (or `timeout` seconds pass); return the
        counts of both kinds together."""
        deadline = time.monotonic() + timeout
        while True:
            self.send_due()
            counts = self.counts()
            idle = counts["queued"] + counts["sending"] == 0
            if (idle and not self.subscribers.pending_requests()) or time.monotonic() >= deadline:
                return counts
            wait = 0.05 if idle else (self._seconds_to_next_due() or 0.05)  # a sign-up: soon
            time.sleep(min(wait, max(0.0, deadline - time.monotonic())))

    def counts(self) -> dict[str, int]:
        """Rows by status, confirmations and welcomes added up."""
        each = [self.ledger.counts(kind) for kind in KINDS]
        return {status: sum(counts[status] for counts in each) for status in each[0]}


__all__ = ["AddressChanges", "Confirmations", "KINDS", "PlanConfirmations", "Sender", "Welcome"]
