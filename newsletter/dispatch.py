"""Sending one announcement's pending deliveries, recording each result as soon as it is known.

Contract: `dispatch(ledger, composer, sender, ...)` goes over the announcement's `pending`
deliveries in passes. Each delivery is checked (the subscriber is still confirmed) and composed
right before it is handed to the `sender`, and its result is written to the ledger at once, by
the thread that got the answer:
- accepted -> `sent`;
- `TemporaryFailure` (SMTP 4xx, HTTP 429/5xx, a dropped or refused connection) -> stays
  `pending` (attempts + 1); later passes retry it after `retry_delay`, doubling, `retries`
  times; what is still pending then waits for the next run;
- `PermanentFailure` of the address (5xx to RCPT TO, or a Mailgun 4xx for a recipient) ->
  `failed` and the subscriber `bounced`; of the message itself (5xx to MAIL FROM or DATA) ->
  `failed` only, and after `MESSAGE_REFUSALS` in a row the run stops: the message is wrong;
- a subscriber no longer confirmed -> `skipped`.
A pass stops early when the server keeps failing (`breaker` temporary failures in a row).
Senders: `OutboxWriter` (.eml files, the bytes as they would go on the wire) and `SmtpPool`
(several workers, each with its own reused SMTP connection, under one messages-per-second
limit); `newsletter.mailgun` adds Mailgun's batches.
"""

from __future__ import annotations

import smtplib
import ssl
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from newsletter.announcement import Composer, Outgoing
from newsletter.config import Settings
from newsletter.ledger import Delivery, Ledger
from newsletter.transports import (
    OutboxTransport,
    SmtpTransport,
    TemporaryFailure,
    TransportError,
)

SENT, TEMPORARY, BOUNCED, FAILED = "sent", "temporary", "bounced", "failed"
MESSAGE_REFUSALS = 10  # message-level 5xx in a row: stop, the message itself is refused
PAGE = 200
MAX_ERRORS = 50  # distinct error texts kept for the summary


class Progress(Protocol):
    def start(self, total: int, label: str) -> None: ...

    def advance(self, count: int = 1) -> None: ...

    def note(self, text: str) -> None: ...

    def finish(self) -> None: ...


class NoProgress:
    def start(self, total: int, label: str) -> None:
        pass

    def advance(self, count: int = 1) -> None:
        pass

    def note(self, text: str) -> None:
        pass

    def finish(self) -> None:
        pass


@dataclass
class Tally:
    sent: int = 0
    bounced: int = 0
    failed: int = 0
    skipped: int = 0
    retried: int = 0  # temporary failures (each attempt)
    notes: list[str] = field(default_factory=list)
    errors: dict[str, int] = field(default_factory=dict)  # error text -> how often
    stopped: bool = False  # the run must stop (the message itself is refused)

    def add(self, other: Tally) -> None:
        for name in ("sent", "bounced", "failed", "skipped", "retried"):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        self.notes += other.notes
        for text, count in other.errors.items():
            self.errors[text] = self.errors.get(text, 0) + count
        self.stopped = self.stopped or other.stopped


Handler = Callable[[list[Outgoing], str, str | None], None]


class BulkSender(Protocol):
    """Sends prepared messages; calls `report(outgoings, outcome, error)` for every one."""

    needs_bytes: bool  # False: the sender makes its own message (Mailgun's batch API)

    def begin(self, composer: Composer) -> None: ...

    def run(self, next_job: Callable[[], Outgoing | None], report: Handler) -> None: ...

    def close(self) -> None: ...


def outcome_of(error: TransportError) -> str:
    if isinstance(error, TemporaryFailure):
        return TEMPORARY
    cause = error.__cause__
    if isinstance(cause, smtplib.SMTPRecipientsRefused) or getattr(error, "recipient", False):
        return BOUNCED
    return FAILED


# Senders ------------------------------------------------------------------------------------
class OutboxWriter:
    """.eml files named by Message-ID, as the outbox transport names them (a re-send overwrites
    its file); the bytes are exactly what SMTP would carry."""

    needs_bytes = True

    def __init__(self, folder: str | Path):
        self.outbox = OutboxTransport(folder)

    def begin(self, composer) -> None:
        pass

    def run(self, next_job, report) -> None:
        while (job := next_job()) is not None:
            try:
                self.outbox.write(job.message_id, job.data)
            except TemporaryFailure as error:
                report([job], TEMPORARY, str(error))
            else:
                report([job], SENT, None)

    def close(self) -> None:
        pass


class RateLimit:
    """At most `per_second` messages per second across all workers (0: no limit)."""

    def __init__(self, per_second: float, clock=time.monotonic, sleep=time.sleep):
        self.interval = 1.0 / per_second if per_second else 0.0
        self.clock, self.sleep = clock, sleep
        self._next = 0.0
        self._lock = threading.Lock()

    def wait(self) -> None:
        if not self.interval:
            return
        with self._lock:
            now = self.clock()
            slot = max(now, self._next)
            self._next = slot + self.interval
        if slot > now:
            self.sleep(slot - now)


class SmtpPool:
    """`workers` threads, each with its own SMTP connection kept open from message to message
    (reconnecting after a failure), sharing one rate limit."""

    needs_bytes = True

    def __init__(
        self,
        settings: Settings,
        *,
        workers: int | None = None,
        rate: float | None = None,
        factory: Callable[[], SmtpTransport] | None = None,
    ):
        self.sender = settings.from_address.addr_spec
        self.workers = workers or settings.smtp_workers
        self.rate = RateLimit(settings.smtp_rate if rate is None else rate)
        # One TLS context for all workers: loading the CA certificates costs ~0.2 s each time.
        tls = (
            ssl.create_default_context()
            if settings.smtp_security != "none"
            else ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)  # unused without TLS: no CA loading
        )
        self.factory = factory or (lambda: SmtpTransport.from_settings(settings, tls))

    def begin(self, composer) -> None:
        pass

    def run(self, next_job, report) -> None:
        errors: list[BaseException] = []

        def work():
            transport = self.factory()
            try:
                while (job := next_job()) is not None:
                    self.rate.wait()
                    try:
                        transport.send_raw(self.sender, job.to, job.data)
                    except TransportError as error:
                        report([job], outcome_of(error), str(error))
                    else:
                        report([job], SENT, None)
            except BaseException as error:  # noqa: BLE001 - re-raised in the calling thread
                errors.append(error)
            finally:
                transport.close()

        threads = [
            threading.Thread(target=work, name=f"smtp-worker-{n}", daemon=True)
            for n in range(self.workers)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        if errors:
            raise errors[0]

    def close(self) -> None:
        pass


# The passes ---------------------------------------------------------------------------------
class _Pass:
    """One pass over the pending deliveries: hands out jobs, records results."""

    def __init__(self, ledger, composer, sender, tally, progress, breaker):
        self.ledger, self.composer, self.sender = ledger, composer, sender
        self.tally, self.progress, self.breaker = tally, progress, breaker
        self.lock = threading.Lock()
        self.after = 0
        self.buffer: list[Delivery] = []
        self.temporary_in_row = 0
        self.refused_in_row = 0
        self.stop_reason = ""

    def next_job(self) -> Outgoing | None:
        while True:
            with self.lock:
                if self.stop_reason or self.tally.stopped:
                    return None
                if not self.buffer:
                    page = self.ledger.pending(self.composer.announcement.id, self.after, PAGE)
                    self.after = page.last_id
                    self.tally.skipped += page.skipped
                    self.progress.advance(page.skipped)
                    self.buffer = page.deliveries[::-1]
                    if not self.buffer and not page.skipped:
                        return None
                    if not self.buffer:
                        continue
                delivery = self.buffer.pop()
            if not self.ledger.still_confirmed(delivery.subscriber_id):
                self.ledger.mark_skipped([delivery.id], "subscriber left during the run")
                with self.lock:
                    self.tally.skipped += 1
                self.progress.advance()
                continue
            return self.composer.outgoing(delivery, with_data=self.sender.needs_bytes)

    def report(self, jobs: list[Outgoing], outcome: str, error: str | None) -> None:
        ids = [job.delivery.id for job in jobs]
        if outcome == SENT:
            self.ledger.mark_sent(ids)
        elif outcome == TEMPORARY:
            self.ledger.mark_retry(ids, error or "temporary failure")
        elif outcome == BOUNCED:
            for job in jobs:
                self.ledger.bounce(job.delivery, error or "refused")
        else:
            self.ledger.mark_failed(ids, error or "refused")
        with self.lock:
            if outcome == SENT:
                self.tally.sent += len(jobs)
                self.temporary_in_row = self.refused_in_row = 0
            elif outcome == TEMPORARY:
                self.tally.retried += len(jobs)
                self.temporary_in_row += len(jobs)
                if self.temporary_in_row >= self.breaker and not self.stop_reason:
                    self.stop_reason = f"{self.temporary_in_row} temporary failures in a row"
            elif outcome == BOUNCED:
                self.tally.bounced += len(jobs)
            else:
                self.tally.failed += len(jobs)
                self.refused_in_row += len(jobs)
                if self.refused_in_row >= MESSAGE_REFUSALS and not self.tally.stopped:
                    self.tally.stopped = True
                    self.tally.notes.append(
                        f"stopped: the server refused the message itself {self.refused_in_row} "
                        f"times in a row ({error}); fix it, then run again"
                    )
            if error:
                key = error[:200]
                if key in self.tally.errors or len(self.tally.errors) < MAX_ERRORS:
                    self.tally.errors[key] = self.tally.errors.get(key, 0) + len(jobs)
        if outcome != TEMPORARY:
            self.progress.advance(len(jobs))


def dispatch(
    ledger: Ledger,
    composer: Composer,
    sender: BulkSender,
    *,
    retries: int = 3,
    retry_delay: float = 5.0,
    breaker: int = 20,
    progress: Progress | None = None,
    sleep=time.sleep,
) -> Tally:
    """Send the announcement's pending deliveries; return what happened."""
    progress = progress or NoProgress()
    announcement = composer.announcement
    tally = Tally()
    pending = ledger.counts(announcement.id)["pending"]
    progress.start(pending, announcement.subject)
    sender.begin(composer)
    try:
        for number in range(retries + 1):
            if number:
                if not ledger.counts(announcement.id)["pending"]:
                    break
                delay = retry_delay * 2 ** (number - 1)
                progress.note(f"retry {number} of {retries} in {delay:g} s")
                sleep(delay)
            one = _Pass(ledger, composer, sender, tally, progress, breaker)
            sender.run(one.next_job, one.report)
            if one.stop_reason:
                progress.note(f"pass {number + 1} stopped early: {one.stop_reason}")
            if tally.stopped:
                break
    finally:
        progress.finish()
    ledger.finish_if_done(announcement.id)
    return tally


def iterate(jobs) -> Callable[[], Outgoing | None]:
    """A thread-safe `next_job` over an iterable (for benchmarks and the dry run)."""
    iterator: Iterator = iter(jobs)
    lock = threading.Lock()

    def next_job():
        with lock:
            return next(iterator, None)

    return next_job


__all__ = [
    "BOUNCED",
    "BulkSender",
    "FAILED",
    "NoProgress",
    "OutboxWriter",
    "Progress",
    "RateLimit",
    "SENT",
    "SmtpPool",
    "TEMPORARY",
    "Tally",
    "dispatch",
    "iterate",
    "outcome_of",
]
