"""The one dispatcher: claims owed emails from the ledger, has the feature compose them, pushes
them through the one mailer and records each answer as soon as it is known.

Contract: a feature gives one `Handler` per kind of email: its `policy` (the one retry policy
with its settings), `compose(entries)` (for each claimed entry, the `mail.Outgoing` to send,
whose `ref` is the entry's id, or a `Skip` saying why it is no longer owed: the reader left)
and `refused(entry, outgoing, error)` (the address was refused for good: record the bounce).
`Dispatcher(ledger, handlers)` is the mailer's `report` (`mail.connect(settings,
dispatcher.report)`) and `run(mailer, kinds=..., ...)` sends, in passes:
- accepted -> `sent`, all the messages of one report in one transaction (the SMTP mailer reports
  together the answers it read together); `report` returns that record on its way (`Written`),
  and the mailer ends no connection's next message before it is done;
- `TemporaryFailure` (SMTP 4xx, HTTP 429/5xx, a dropped connection) -> queued again after the
  policy's backoff, or `failed` after its `max_attempts`; the next pass of the same run waits
  until every retry due within `max_wait` seconds is due, then takes them all; a later one is
  a later run's (or the background sender's next look's);
- `RecipientRefused` -> `failed`, and the handler records the bounce, in one transaction;
- `MessageRefused` (the message itself, or our account) -> retried like a temporary failure,
  nobody is bounced, and the run stops at once with the provider's words;
- a `Skip` -> `skipped`.
A pass stops early after `breaker` temporary failures in a row; what it claimed and did not
push is given back untried. `stop` (an event) ends a run between two emails.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Protocol

from newsletter import mail
from newsletter.database import Written
from newsletter.outgoing.ledger import Entry, MailLedger, Policy

MAX_WAIT = 600.0  # seconds: a longer wait for a retry is the next run's job
MAX_ERRORS = 50  # distinct error texts kept for the summary


@dataclass(frozen=True)
class Skip:
    """An entry no longer owed (the reader left, or confirmed meanwhile): why."""

    reason: str


class Handler(Protocol):
    """What a feature gives the dispatcher for one kind of email. `compose` yields one result
    per entry, in order, as each is made (a generator: the dispatcher pushes each at once)."""

    policy: Policy

    def compose(self, entries: list[Entry]) -> Iterable[mail.Outgoing | Skip]: ...

    def refused(self, entry: Entry, outgoing: mail.Outgoing, error: str) -> None: ...


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
    failed: int = 0  # gave up after the policy's attempts
    notes: list[str] = field(default_factory=list)
    errors: dict[str, int] = field(default_factory=dict)  # error text -> how often
    stopped: bool = False  # the run must stop (the message or our account is refused)

    def add(self, other: Tally) -> None:
        for name in ("sent", "bounced", "skipped", "retried", "failed"):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        self.notes += other.notes
        for text, count in other.errors.items():
            self.errors[text] = self.errors.get(text, 0) + count
        self.stopped = self.stopped or other.stopped


class Dispatcher:
    """Sends the ledger's owed emails of the kinds it has handlers for. Its `report` is
    thread-safe (the SMTP workers report from their own threads)."""

    def __init__(
        self,
        ledger: MailLedger,
        handlers: dict[str, Handler],
        *,
        breaker: int = 20,
        stop: threading.Event | None = None,
        before_push: Callable[[], None] | None = None,
    ):
        self.ledger, self.handlers, self.breaker = ledger, handlers, breaker
        self.stop = stop or threading.Event()
        self.before_push = before_push
        self.tally = Tally()
        self.progress: Progress = NoProgress()
        self._lock = threading.Lock()
        self._inflight: dict[int, Entry] = {}
        self._written: deque[Written] = deque()  # records on their way, oldest first
        self._temporary_in_row = 0
        self._pass_stop = ""  # why the current pass stops early ("" while it goes on)

    # The mailer's report ----------------------------------------------------------------------
    def report(
        self, outgoings: list[mail.Outgoing], error: mail.MailError | None
    ) -> Written | None:
        with self._lock:
            entries = [self._inflight.pop(outgoing.ref) for outgoing in outgoings]
        ids = [entry.id for entry in entries]
        text = str(error) if error else ""
        given_up = 0
        written = None
        if error is None:
            written = self.ledger.sent_soon(ids)  # the mailer waits for it (see mail.Report)
            with self._lock:
                self._written.append(written)
                while self._written and self._written[0].done():
                    self._written.popleft().wait()  # raises a record that failed
        elif isinstance(error, mail.RecipientRefused):
            for entry, outgoing in zip(entries, outgoings, strict=True):
                with self.ledger.database.transaction():
                    self.handlers[entry.kind].refused(entry, outgoing, text)
                    self.ledger.fail([entry.id], text)
        else:  # temporary, or the message refused: queued again, after the backoff
            for kind in {entry.kind for entry in entries}:
                same = [entry.id for entry in entries if entry.kind == kind]
                given_up += self.ledger.retry(same, text, self.handlers[kind].policy)
        with self._lock:
            tally = self.tally
            if error is None:
                tally.sent += len(ids)
                self._temporary_in_row = 0
            elif isinstance(error, mail.RecipientRefused):
                tally.bounced += len(ids)
            else:
                tally.failed += given_up
                if isinstance(error, mail.MessageRefused):
                    if not tally.stopped:
                        tally.stopped = True
                        tally.notes.append(
                            f"stopped: the provider refused the message itself ({text}); "
                            "nobody was bounced and the emails stay queued: fix it, then run again"
                        )
                else:
                    tally.retried += len(ids)
                    self._temporary_in_row += len(ids)
                    if self._temporary_in_row >= self.breaker and not self._pass_stop:
                        self._pass_stop = f"{self._temporary_in_row} temporary failures in a row"
            if text:
                key = text[:200]
                if key in tally.errors or len(tally.errors) < MAX_ERRORS:
                    tally.errors[key] = tally.errors.get(key, 0) + len(ids)
        done = len(ids) if error is None or isinstance(error, mail.RecipientRefused) else given_up
        if done:
            self.progress.advance(done)
        return written

    @property
    def stopping(self) -> bool:
        return bool(self._pass_stop) or self.tally.stopped or self.stop.is_set()

    # Sending ----------------------------------------------------------------------------------
    def run(
        self,
        mailer: mail.Mailer,
        *,
        kinds: Sequence[str] | None = None,
        about_id: int | None = None,
        passes: int = 1,
        every: bool = False,
        page: int = 200,
        flush_every: int | None = None,
        max_wait: float = MAX_WAIT,
        sleep: Callable[[float], None] = time.sleep,
        progress: Progress | None = None,
        label: str = "",
    ) -> Tally:
        """Send what is owed of `kinds` (default: every kind with a handler), about `about_id`
        if given, in up to `passes` passes; the first takes every queued row when `every` (a run
        is itself the retry). Returns what happened in this call; `self.tally` adds it up."""
        kinds = tuple(kinds or self.handlers)
        progress = self.progress = progress or NoProgress()
        before, self.tally = self.tally, Tally()
        tally = self.tally
        counts = self.ledger.counts(kinds[0], about_id) if len(kinds) == 1 else None
        progress.start(counts["queued"] + counts["sending"] if counts else 0, label)
        clock = self.ledger.database.clock
        due_by = None
        try:
            for number in range(passes):
                if number:  # wait until the retries due within max_wait are all due
                    horizon = clock() + timedelta(seconds=max_wait)
                    wake = self.ledger.next_due(kinds, about_id, last_by=horizon)
                    if wake is None:
                        if self.ledger.next_due(kinds, about_id) is not None:
                            progress.note(f"the next retry is more than {max_wait:g} s away")
                        break
                    wait = max(0.0, (wake - clock()).total_seconds())
                    progress.note(f"retry {number} of {passes - 1} in {wait:g} s")
                    sleep(wait)
                    due_by = max(clock(), wake)
                self._pass_stop, self._temporary_in_row = "", 0
                self._one_pass(mailer, kinds, about_id, due_by, every and not number, page,
                               flush_every)  # fmt: skip
                if self._pass_stop:
                    progress.note(f"pass {number + 1} stopped early: {self._pass_stop}")
                if tally.stopped or self.stop.is_set():
                    break
        finally:
            progress.finish()
            before.add(tally)
            self.tally = before
        return tally

    def _one_pass(self, mailer, kinds, about_id, due_by, every, page, flush_every) -> None:
        """Page after page, each claimed while the one before it goes out (`claim_soon`);
        a page claimed ahead that a stop leaves unsent is given back untried."""

        def claim(after: int):
            return self.ledger.claim_soon(
                kinds=kinds, about_id=about_id, limit=page, after_id=after, due_by=due_by,
                every=every,
            )  # fmt: skip

        self._pushed = 0
        ahead = claim(0) if not self.stopping else None
        try:
            while ahead is not None:
                claimed, ahead = ahead.entries(), None
                if not claimed:
                    break
                if not self.stopping:  # one thing's rows in id order: after this page's last
                    ahead = claim(claimed[-1].id if about_id is not None else 0)
                for kind in dict.fromkeys(entry.kind for entry in claimed):
                    same = [e for e in claimed if e.kind == kind]
                    self._send_kind(mailer, kind, same, flush_every)
                if self.stopping:  # the page claimed ahead goes back (below)
                    break
        finally:
            if ahead is not None:  # claimed, never tried: back in the queue as it was
                self.ledger.give_back(entry.id for entry in ahead.entries())
        if not self.tally.stopped:
            mailer.flush()
        self._settle()

    def _settle(self) -> None:
        """Every record on its way done (the mailer waited for them already, but a pass ends
        with all its results in the ledger, whatever the mailer)."""
        while self._written:
            with self._lock:
                written = self._written.popleft() if self._written else None
            if written is not None:
                written.wait()

    def _send_kind(self, mailer, kind: str, entries: list[Entry], flush_every) -> None:
        """Push each entry's email as soon as it is made (the mailer's workers never wait on a
        whole page being composed); record skips; give back what a stop left untried; retry
        what could not be made (a bug must not lose the email)."""
        handler = self.handlers.get(kind)
        if handler is None:
            self.ledger.fail([e.id for e in entries], f"unknown kind of email {kind!r}")
            return
        skips: dict[str, list[int]] = {}
        done = 0
        try:
            for entry, made in zip(entries, handler.compose(entries), strict=True):
                done += 1
                if isinstance(made, Skip):
                    skips.setdefault(made.reason, []).append(entry.id)
                    continue
                if self.before_push is not None:
                    self.before_push()
                if self.stopping:
                    done -= 1
                    break
                with self._lock:
                    self._inflight[entry.id] = entry
                mailer.push(made)
                self._pushed += 1
                if flush_every and self._pushed % flush_every == 0:
                    mailer.flush()
        except Exception as problem:  # noqa: BLE001 - the rest is retried, the error kept
            text = f"could not compose: {problem!r}"
            self.ledger.retry([e.id for e in entries[done:]], text, handler.policy)
            with self._lock:
                self.tally.errors[text[:200]] = len(entries) - done
            done = len(entries)
        self.ledger.give_back(e.id for e in entries[done:])  # untried: a stop came first
        for reason, skipped in skips.items():
            self.ledger.skip(skipped, reason)
        count = sum(len(skipped) for skipped in skips.values())
        if count:
            with self._lock:
                self.tally.skipped += count
            self.progress.advance(count)


__all__ = ["Dispatcher", "Handler", "MAX_WAIT", "NoProgress", "Progress", "Skip", "Tally"]
