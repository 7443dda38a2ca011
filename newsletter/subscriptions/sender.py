"""The background sender: applies the form's sign-up requests, then drains the confirmation
queue through the mailer, with retries.

Contract:
- `apply_requests()` applies the stored sign-up requests in order (`Subscribers.process_requests`):
  the form only stores them, so its answer costs the same for every address.
- `Sender(settings, database, tokens)`: `send_due()` claims due emails (a batch at a time,
  leased so that several senders, e.g. one per gunicorn worker, never send the same row twice),
  composes each and pushes it to the one mailer (`newsletter.mail.connect`), then records the
  result: sent; retried after the one backoff (`retry_delay`, doubling, at most an hour) on a
  `TemporaryFailure` or a `MessageRefused` (our account or settings: it may pass once fixed);
  failed on a `RecipientRefused` or after `max_attempts`; skipped when it no longer applies
  (the subscriber confirmed or left meanwhile).
- `start()` runs `send_due()` in a daemon thread, woken at once by `wake()` (the web app calls it
  after queueing) and otherwise when the next retry is due; `stop()` ends it. Given `busy` (the
  web app: "a request came in during the last 50 ms"), it sends at low priority: while busy, it
  waits up to half a second before each email, so that composing emails never slows the form.
- `drain(timeout)` sends until nothing is queued or in flight, waiting out retries (tasks).
The subscribe request never waits on any of this: its email is already safe in the store.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from datetime import timedelta

from newsletter import backoff, mail
from newsletter.database import Database
from newsletter.mail import message as compose
from newsletter.mail import proof
from newsletter.settings import Settings
from newsletter.subscriptions import emails
from newsletter.subscriptions.queue import EmailQueue, QueuedEmail
from newsletter.subscriptions.subscribers import OPTING_IN, Subscriber, Subscribers
from newsletter.subscriptions.tokens import Tokens

log = logging.getLogger(__name__)
MAX_BACKOFF = 3600.0
POLL = 2.0  # seconds between looks at the queue when idle (retries, other processes' rows)
YIELD_MAX = 0.5  # under load, still at least one email per this many seconds
CHECKPOINT_EVERY = 1.0  # seconds between WAL checkpoints, when the store leaves them to us


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
        self.queue = EmailQueue(database)
        self.subscribers = Subscribers(database)
        self.connect = connect or (lambda report: mail.connect(settings, report))
        self.batch = batch
        self.busy = busy
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._pid_lock = threading.Lock()
        self._last_checkpoint = 0.0

    # One pass -----------------------------------------------------------------------------
    def apply_requests(self) -> int:
        """Apply the sign-up requests the form stored (each queues a confirmation email, or
        not: already subscribed, asked less than 10 minutes ago, ...); return how many."""
        applied = 0
        while not self._stop.is_set() and self.subscribers.pending_requests():  # a read: cheap
            done = self.subscribers.process_requests(resend_interval=self.settings.resend_interval)
            if not done:
                break
            for outcome in done:
                log.info("sign-up request: %s", outcome)
            applied += len(done)
        return applied

    def send_due(self) -> int:
        """Apply the sign-up requests, then send every email due now; return how many emails
        were handled."""
        self.apply_requests()
        handled = 0
        results = mail.Collect()
        mailer = None
        try:
            while not self._stop.is_set():
                claimed = self.queue.claim(self.batch)
                if not claimed:
                    break
                if mailer is None:
                    mailer = self.connect(results)
                handled += self._send_batch(mailer, results, claimed)
        finally:
            if mailer is not None:
                mailer.close()
        return handled

    def _send_batch(self, mailer: mail.Mailer, results: mail.Collect, claimed) -> int:
        for index, email in enumerate(claimed):
            self._yield_to_requests()
            try:
                outgoing = self.compose(email)
                if outgoing is None:
                    continue
                mailer.push(outgoing)
                mailer.flush()
                error = results.results.pop(outgoing.message_id)
            except Exception as problem:  # noqa: BLE001 - a bug must not lose the email either
                log.exception("email %s: unexpected error", email.id)
                self._retry(email, f"unexpected error: {problem!r}")
                continue
            if error is None:
                self.queue.mark_sent(email.id)
            elif isinstance(error, mail.RecipientRefused):
                self.queue.mark_failed(email.id, str(error))
                log.error("email %s refused for good: %s", email.id, error)
            else:  # temporary, or our account/message refused: the server is unwell
                self._retry(email, str(error))
                # Give the rest of this batch back, untried.
                for rest in claimed[index + 1 :]:
                    self._retry(rest, f"not tried after an earlier failure: {error}")
                log.warning("email %s not sent, will retry: %s", email.id, error)
                return index + 1
        return len(claimed)

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

    def compose(self, email: QueuedEmail) -> mail.Outgoing | None:
        subscriber = Subscriber.from_row(email.subscriber)
        if email.kind != "confirmation":
            self.queue.mark_failed(email.id, f"unknown kind of email {email.kind!r}")
            return None
        if subscriber.status not in OPTING_IN:
            self.queue.mark_skipped(email.id, f"subscriber is {subscriber.status} now")
            return None
        message = emails.confirmation_email(
            self.settings,
            subscriber,
            **emails.links(self.settings, self.tokens, subscriber),
            message_id=proof.message_id(self.settings, email.kind, email.id, subscriber.public_id),
        )
        return mail.Outgoing(
            to=subscriber.email,
            message_id=str(message["Message-ID"]),
            data=compose.wire(message),
            ref=email.id,
            envelope_from=proof.return_path(
                self.settings, email.kind, email.id, subscriber.public_id
            ),
        )

    def _retry(self, email: QueuedEmail, error: str) -> None:
        if email.attempts >= self.settings.max_attempts:
            self.queue.mark_failed(email.id, f"gave up after {email.attempts} attempts: {error}")
            return
        self.queue.mark_retry(
            email.id, error, backoff.delay(email.attempts, self.settings.retry_delay, MAX_BACKOFF)
        )

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
        due = self.queue.next_due()
        if due is None:
            return CHECKPOINT_EVERY if self.database.background_checkpoints else POLL
        return max(0.0, min(POLL, (due - self.database.clock()) / timedelta(seconds=1)))

    def drain(self, timeout: float = 60.0) -> dict[str, int]:
        """Send until nothing is queued or in flight (or `timeout` seconds pass); return counts."""
        deadline = time.monotonic() + timeout
        while True:
            self.send_due()
            counts = self.queue.counts()
            idle = counts["queued"] + counts["sending"] == 0
            if (idle and not self.subscribers.pending_requests()) or time.monotonic() >= deadline:
                return counts
            time.sleep(
                min(self._seconds_to_next_due() or 0.05, max(0.0, deadline - time.monotonic()))
            )


__all__ = ["Sender"]
