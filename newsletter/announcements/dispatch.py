"""Sending one announcement: its emails, owed in the one outgoing-mail ledger, through the one
dispatcher (`newsletter.outgoing`), each result recorded as soon as it is known.

Contract: `Deliveries(ledger, composer, policy, with_data)` is the dispatcher's handler for the
announcement's emails: right before a page is pushed it asks the subscriptions room who its
readers are (a reader no longer confirmed is skipped) and composes each email from the one
rendering; a refused address is recorded as a hard bounce (the provider feedback's one
vocabulary, which bounces the subscriber). `dispatch(ledger, composer, mailer, dispatcher, ...)`
sends what is owed of one announcement in passes: the first takes every email still queued (a run
is itself the retry of the runs before), later ones the temporary failures as the one retry
policy makes them due (`retry_delay`, doubling; failed after `max_attempts` answers), `retries`
times; what is still queued then waits for the next run. A refused message (our account) stops
the run with the provider's words: fix it, then run again. The announcement is marked finished
when nothing of it is left. While it sends, `database.checkpoints_aside()`: the sending thread's
commits leave the write-ahead log to a checkpoint thread (no fsync in the send loop).
"""

from __future__ import annotations

import time
from collections.abc import Iterator

from newsletter import mail
from newsletter.announcements.emails import Composer
from newsletter.announcements.ledger import ANNOUNCEMENT, Delivery, Ledger
from newsletter.outgoing.dispatcher import MAX_WAIT, Dispatcher, NoProgress, Progress, Skip, Tally
from newsletter.outgoing.ledger import Entry, Policy
from newsletter.subscriptions.subscribers import Status

PAGE = 200
CHECKPOINT_EVERY = 0.5  # seconds: how often the write-ahead log is copied while a run sends


class Deliveries:
    """The dispatcher's handler for one announcement's emails."""

    def __init__(self, ledger: Ledger, composer: Composer, policy: Policy, *, with_data: bool):
        self.ledger, self.composer, self.policy = ledger, composer, policy
        self.with_data = with_data

    def compose(self, entries: list[Entry]) -> Iterator[mail.Outgoing | Skip]:
        """Who the readers are now (one query for the page), then each email as it is sent."""
        people = self.ledger.subscribers.recipients([entry.subscriber_id for entry in entries])
        outgoing, with_data = self.composer.outgoing, self.with_data
        for entry in entries:
            person = people.get(entry.subscriber_id)
            if person is None or person[0] != Status.CONFIRMED:
                yield Skip(f"subscriber is {person[0] if person else 'gone'} now")
                continue
            delivery = Delivery(entry.id, entry.about_id, entry.attempts, entry.subscriber_id,
                                person[1], person[2])  # fmt: skip
            yield outgoing(delivery, with_data=with_data)

    def refused(self, entry: Entry, outgoing: mail.Outgoing, error: str) -> None:
        """A permanent refusal of the address at send time: a hard bounce (the sending is the
        proof of whom it is about)."""
        self.ledger.feedback.refused_at_send(entry.subscriber_id, error, outgoing.message_id)


def dispatch(
    ledger: Ledger,
    composer: Composer,
    mailer: mail.Mailer,
    dispatcher: Dispatcher,
    *,
    retries: int = 3,
    retry_delay: float = 5.0,
    max_attempts: int = 10,
    progress: Progress | None = None,
    sleep=time.sleep,
) -> Tally:
    """Send the announcement's owed emails; return what happened in this call."""
    announcement = composer.announcement
    policy = Policy(retry_delay, MAX_WAIT, max_attempts)
    dispatcher.handlers[ANNOUNCEMENT] = Deliveries(
        ledger, composer, policy, with_data=not getattr(mailer, "batches", False)
    )
    with dispatcher.ledger.database.checkpoints_aside(CHECKPOINT_EVERY):
        tally = dispatcher.run(
            mailer,
            kinds=[ANNOUNCEMENT],
            about_id=announcement.id,
            passes=retries + 1,
            every=True,
            page=PAGE,
            sleep=sleep,
            progress=progress or NoProgress(),
            label=announcement.subject,
        )
    ledger.finish_if_done(announcement.id)
    return tally


__all__ = ["Deliveries", "NoProgress", "Progress", "Tally", "dispatch"]
