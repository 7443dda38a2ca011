"""`invoke bounces.fetch`: the bounce mailbox read once: `mailbox` -> `reports` -> applying.

Bounces and spam complaints that come back by email, for plain SMTP senders.

Contract: `fetch(settings, ssl_context=None) -> Report` logs in to NEWSLETTER_IMAP_HOST
(`mailbox.Mailbox`: IMAPS; tests pass an `ssl_context` that trusts their own certificate), reads
every message of NEWSLETTER_IMAP_FOLDER not flagged \\Deleted without marking it read, parses it
(`reports.parse`) and applies it (`report_feedback.apply`: only on proof that we mailed the
subscriber). A message that gave at least one event `Feedback` recorded (or had recorded before)
is moved to NEWSLETTER_IMAP_DONE_FOLDER (created when missing). Everything else stays where it
is, untouched and unread, for a person to look at: junk (auto-replies, other mail, malformed
MIME), reports without proof (also kept for `invoke bounces.review`) and reports about someone no
longer on the list. A report on which a flufl.bounce detector failed is logged as one warning
line naming it, never a traceback. `MailboxError` says why the mailbox could not be read. Each
event is its own short transaction (`Feedback.record`), never held across the network, so a
fetch runs safely beside an announcement that is sending, or beside another fetch.
"""

from __future__ import annotations

import logging
import ssl
from dataclasses import dataclass, field

from newsletter.database import Database
from newsletter.settings import Settings
from newsletter.subscriptions import report_feedback, reports
from newsletter.subscriptions.feedback import Applied, Feedback, Kind
from newsletter.subscriptions.mailbox import Mailbox, MailboxError, folder_name

log = logging.getLogger(__name__)


@dataclass
class Report:
    """What one `fetch` did, for the task to print."""

    folder: str
    done_folder: str
    read: int = 0  # messages looked at
    moved: int = 0  # handled, moved to the done folder
    not_moved: int = 0  # handled, but the move failed: read again (as duplicates) next time
    applied: dict[Kind, int] = field(default_factory=lambda: dict.fromkeys(Kind, 0))
    duplicate: int = 0  # events recorded by an earlier fetch
    unknown: int = 0  # proven, but about nobody on the list now (erased since): left alone
    stale: int = 0  # proven, but dated before the subscriber's current subscription
    review: int = 0  # reports without proof: changed nobody, kept for review, left alone
    junk: int = 0  # messages that are not a bounce or complaint: left alone
    left: list[str] = field(default_factory=list)  # one line per message left alone

    def lines(self) -> list[str]:
        applied = ", ".join(f"{count} {kind.replace('_', ' ')}" for kind, count in
                            self.applied.items())  # fmt: skip
        lines = [
            f"Bounce mailbox {self.folder}: {self.read} message(s) read, {self.moved} moved to "
            f"{self.done_folder}.",
            f"Recorded: {applied}; {self.duplicate} already recorded before"
            + (f", {self.stale} dated before the subscription they name" if self.stale else "")
            + ".",
            f"Left in {self.folder}: {self.review} without proof that we mailed whom they name "
            f"(kept for review: invoke bounces.review), {self.unknown} about someone no longer "
            f"on the list, {self.junk} not a bounce or complaint.",
        ]
        if self.not_moved:
            lines.append(
                f"{self.not_moved} handled message(s) could not be moved: they are read again "
                "next time and change nothing."
            )
        return lines


def fetch(settings: Settings, ssl_context: ssl.SSLContext | None = None) -> Report:
    """Read the bounce mailbox once (see the module's contract)."""
    if not settings.imap.host:
        raise MailboxError("NEWSLETTER_IMAP_HOST is not set: there is no bounce mailbox to read")
    folder, done = settings.imap.folder, settings.imap.done_folder
    folder_name(folder), folder_name(done)  # both usable, before anything is read
    report = Report(folder, done)
    database = Database(settings.core.database)
    try:
        feedback = Feedback.from_settings(database, settings)
        with Mailbox.connect(settings.imap.host, settings.imap.port, settings.imap.user,
                             settings.imap.password, ssl_context) as box:  # fmt: skip
            box.select(folder)
            done_ready = False
            for uid in box.uids():
                raw = box.fetch(uid)
                if raw is None:  # gone meanwhile (another fetch moved it)
                    continue
                if not take(raw, feedback, settings, report):
                    continue
                if not done_ready:
                    box.create(done)
                    done_ready = True
                if box.move(uid, done):
                    report.moved += 1
                else:
                    report.not_moved += 1
    finally:
        database.close()
    return report


def take(raw: bytes, feedback: Feedback, settings: Settings, report: Report) -> bool:
    """Parse and apply one message, counted in `report`: True when it is handled (to be moved),
    False when it stays in the folder (why: one line in `report.left`)."""
    report.read += 1
    notice = reports.parse(raw)
    if notice.problems:
        log.warning(
            "bounce mailbox: report %s (%r): %s failed on it; left for a person",
            notice.report_id[:200], notice.subject[:100], "; ".join(notice.problems),
        )  # fmt: skip
    subject = (notice.subject or "(no subject)")[:200]
    if notice.junk:
        report.junk += 1
        report.left.append(f"{subject}: {notice.junk}")
        return False
    results = report_feedback.apply(notice, feedback, settings)
    if any(result == Applied.REVIEW for _, result in results):
        report.review += 1
        names = ", ".join(a for f in notice.failures[:5] for a in f.addresses[:1])
        report.left.append(f"{subject}: no proof that we mailed whom it names ({names})")
        return False
    for failure, result in results:
        if result == Applied.DUPLICATE:
            report.duplicate += 1
        elif result == Applied.UNKNOWN:
            report.unknown += 1
        elif result == Applied.STALE:
            report.stale += 1
        else:
            report.applied[failure.kind] += 1
    if all(result == Applied.UNKNOWN for _, result in results):
        report.left.append(f"{subject}: about someone no longer on the list")
        return False
    return True


__all__ = ["MailboxError", "Report", "fetch", "take"]
