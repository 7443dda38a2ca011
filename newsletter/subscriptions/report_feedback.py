"""A parsed report applied: the one `feedback` event its checked proof allows, or a review claim.

A `reports.Notice` becomes a `feedback.Event` or a `feedback.Claim` kept for review.

Contract:
- `proven(notice, settings)` is the set of public ids the report's candidate proofs name, each
  checked by recomputing its seal with the secret key (`mail.proof`): a VERP return path of ours
  it was sent to (or that the returned message carries), or a Message-ID of ours it quotes.
- `apply(notice, feedback, settings) -> [(Failure, Applied)]` acts only on that proof. With
  exactly one subscriber proven, one event goes to them (provider "mailbox", key
  "mailbox:<the report's own Message-ID>:<their address key>", so reading a report twice changes
  nothing; dated by the report, or now when it has no date or one more than a day ahead): the
  failure that names their address (keyed by `addresses.key_of`), else (a forward) the worst one;
  other addresses the report lists are never touched. A report without proof, or whose proofs
  name several subscribers, changes nobody: it is kept for review (`Feedback.review`, listed by
  `invoke bounces.review`). Junk, or a notice without failures, gives [].
Each event is its own short transaction (`Feedback.record`).
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import timedelta

from newsletter.mail import proof
from newsletter.settings import Settings
from newsletter.subscriptions.addresses import key_of
from newsletter.subscriptions.feedback import Applied, Claim, Event, Feedback, Kind
from newsletter.subscriptions.reports import Failure, Notice

PROVIDER = "mailbox"


def proven(notice: Notice, settings: Settings) -> frozenset[str]:
    """The public ids that the report's return paths and Message-IDs prove (see the contract)."""
    return frozenset(
        [p for a in notice.return_paths if (p := proof.proven_by_verp(settings, a))]
        + [p for i in notice.message_ids if (p := proof.proven_by_message_id(settings, i))]
    )


def apply(notice: Notice, feedback: Feedback, settings: Settings) -> list[tuple[Failure, Applied]]:
    """Act on a report (see the module's contract): [(the failure applied, what
    `Feedback.record` did)] when the report proves whom we mailed; [(each failure, REVIEW or
    UNKNOWN)] when it proves nothing (kept for review when it names someone on the list)."""
    if notice.junk or not notice.failures:
        return []
    named = proven(notice, settings)
    if len(named) != 1:
        why = ("no Message-ID or return path of ours proves whom it is about" if not named
               else "its proofs name several subscribers")  # fmt: skip
        result = feedback.review(
            Claim(
                provider=PROVIDER,
                report_key=f"{PROVIDER}:{notice.report_id}",
                kind=_worst(notice.failures).kind,
                addresses=tuple(a for f in notice.failures for a in f.addresses[:1]),
                why=why,
                reason=_worst(notice.failures).reason,
                subject=notice.subject,
                message_id=notice.original_message_id,
            )
        )
        return [(failure, result) for failure in notice.failures]
    (public_id,) = named
    subscriber = feedback.subscribers.get(public_id)
    failure = _about(notice.failures, subscriber.email_key if subscriber else "")
    now = feedback.database.clock()
    occurred = notice.occurred_at
    if occurred is None or occurred > now + timedelta(days=1):
        occurred = now  # no date, or one in the future
    key = f"{PROVIDER}:{notice.report_id}:{subscriber.email_key if subscriber else public_id}"
    event = Event(
        kind=failure.kind,
        public_id=public_id,
        provider=PROVIDER,
        occurred_at=occurred,
        reason=failure.reason,
        message_id=notice.original_message_id,
        key=key,
    )
    return [(failure, feedback.record(event))]


def _about(failures: tuple[Failure, ...], key: str) -> Failure:
    """The failure that names the subscriber's address, else (forwarded) the worst."""
    for failure in failures:
        if any(key_of(candidate) == key for candidate in failure.addresses):
            return failure
    return _worst(failures)


def _worst(failures: Iterable[Failure]) -> Failure:
    order = {Kind.COMPLAINT: 0, Kind.HARD_BOUNCE: 1, Kind.SOFT_BOUNCE: 2}
    return min(failures, key=lambda failure: order[failure.kind])


__all__ = ["PROVIDER", "apply", "proven"]
