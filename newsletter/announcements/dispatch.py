"""Sending one announcement's pending deliveries through the mailer, recording each result as
soon as it is known.

Contract: `dispatch(ledger, composer, mailer, results, ...)` goes over the announcement's
`pending` deliveries in passes. Each delivery is checked (the subscriber is still confirmed)
and composed right before it is pushed to the mailer; `results` (a `Results`, the `report` the
mailer was made with) writes each answer to the ledger at once, from the thread that got it:
- accepted -> `sent`;
- `TemporaryFailure` (SMTP 4xx, HTTP 429/5xx, a dropped or refused connection) -> stays
  `pending` (attempts + 1); later passes retry it after the one backoff (`retry_delay`,
  doubling), `retries` times; what is still pending then waits for the next run;
- `RecipientRefused` -> `failed` and the subscriber `bounced`;
- `MessageRefused` (the message itself, or our account) -> stays `pending`, nobody is bounced,
  and the run stops at once with the provider's words: fix it, then run again;
- a subscriber no longer confirmed -> `skipped`.
A pass stops early when the server keeps failing (`breaker` temporary failures in a row).
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import Protocol

from newsletter import backoff, mail
from newsletter.announcements.emails import Composer
from newsletter.announcements.ledger import Delivery, Ledger

PAGE = 200
MAX_PASS_DELAY = 600.0  # seconds: a longer wait is the next run's job (cron)
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
    skipped: int = 0
    retried: int = 0  # temporary failures (each attempt)
    notes: list[str] = field(default_factory=list)
    errors: dict[str, int] = field(default_factory=dict)  # error text -> how often
    stopped: bool = False  # the run must stop (the message or our account is refused)

    def add(self, other: Tally) -> None:
        for name in ("sent", "bounced", "skipped", "retried"):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        self.notes += other.notes
        for text, count in other.errors.items():
            self.errors[text] = self.errors.get(text, 0) + count
        self.stopped = self.stopped or other.stopped


class Results:
    """The mailer's `report`: records each answer in the ledger and keeps the tally. Thread-safe
    (the SMTP workers report from their own threads)."""

    def __init__(self, ledger: Ledger, breaker: int = 20):
        self.ledger, self.breaker = ledger, breaker
        self.tally = Tally()
        self.progress: Progress = NoProgress()
        self.lock = threading.Lock()
        self.temporary_in_row = 0
        self.pass_stop = ""  # why the current pass stops early ("" while it goes on)

    def __call__(self, outgoings: list[mail.Outgoing], error: mail.MailError | None) -> None:
        deliveries: list[Delivery] = [outgoing.ref for outgoing in outgoings]
        ids = [delivery.id for delivery in deliveries]
        text = str(error) if error else ""
        if error is None:
            self.ledger.mark_sent(ids)
        elif isinstance(error, mail.RecipientRefused):
            for outgoing in outgoings:
                self.ledger.bounce(outgoing.ref, text, outgoing.message_id)
        else:  # temporary, or the message refused: pending, for a later pass or run
            self.ledger.mark_retry(ids, text)
        with self.lock:
            tally = self.tally
            if error is None:
                tally.sent += len(ids)
                self.temporary_in_row = 0
            elif isinstance(error, mail.RecipientRefused):
                tally.bounced += len(ids)
            elif isinstance(error, mail.MessageRefused):
                if not tally.stopped:
                    tally.stopped = True
                    tally.notes.append(
                        f"stopped: the provider refused the message itself ({text}); "
                        "nobody was bounced and the emails stay pending: fix it, then run again"
                    )
            else:
                tally.retried += len(ids)
                self.temporary_in_row += len(ids)
                if self.temporary_in_row >= self.breaker and not self.pass_stop:
                    self.pass_stop = f"{self.temporary_in_row} temporary failures in a row"
            if text:
                key = text[:200]
                if key in tally.errors or len(tally.errors) < MAX_ERRORS:
                    tally.errors[key] = tally.errors.get(key, 0) + len(ids)
        if error is None or isinstance(error, mail.RecipientRefused):
            self.progress.advance(len(ids))

    def skipped(self, count: int) -> None:
        with self.lock:
            self.tally.skipped += count
        self.progress.advance(count)

    @property
    def stopping(self) -> bool:
        return bool(self.pass_stop) or self.tally.stopped


def dispatch(
    ledger: Ledger,
    composer: Composer,
    mailer: mail.Mailer,
    results: Results,
    *,
    retries: int = 3,
    retry_delay: float = 5.0,
    progress: Progress | None = None,
    sleep=time.sleep,
) -> Tally:
    """Send the announcement's pending deliveries; return what happened in this call."""
    progress = results.progress = progress or NoProgress()
    before = results.tally
    results.tally = tally = Tally()
    announcement = composer.announcement
    progress.start(ledger.counts(announcement.id)["pending"], announcement.subject)
    try:
        for number in range(retries + 1):
            if number:
                if not ledger.counts(announcement.id)["pending"]:
                    break
                delay = backoff.delay(number, retry_delay, MAX_PASS_DELAY)
                progress.note(f"retry {number} of {retries} in {delay:g} s")
                sleep(delay)
            results.pass_stop, results.temporary_in_row = "", 0
            _one_pass(ledger, composer, mailer, results)
            if results.pass_stop:
                progress.note(f"pass {number + 1} stopped early: {results.pass_stop}")
            if tally.stopped:
                break
    finally:
        progress.finish()
        before.add(tally)
        results.tally = before
    ledger.finish_if_done(announcement.id)
    return tally


def _one_pass(ledger, composer, mailer, results: Results) -> None:
    with_data = not mailer.batches
    after = 0
    while not results.stopping:
        page = ledger.pending(composer.announcement.id, after, PAGE)
        after = page.last_id
        results.skipped(page.skipped)
        if not page.deliveries and not page.skipped:
            break
        for delivery in page.deliveries:
            if results.stopping:
                break
            if not ledger.still_confirmed(delivery.subscriber_id):
                ledger.mark_skipped([delivery.id], "subscriber left during the run")
                results.skipped(1)
                continue
            mailer.push(composer.outgoing(delivery, with_data=with_data))
    if not results.tally.stopped:
        mailer.flush()


__all__ = ["NoProgress", "Progress", "Results", "Tally", "dispatch"]
