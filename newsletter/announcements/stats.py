"""How the list is doing with the mail providers: per announcement and for the last 30 days,
what was sent and what came back (hard and soft bounces, complaints), and the warnings the
bulk-sender rules ask for.

Contract: `stats(database, now=None, days=30) -> Stats`. A feedback event is counted against
the announcement whose message to that subscriber went out last before the event (providers
report hours after sending); events with no such message (a confirmation email, say) count in
the window only. `Stats.warnings()` says when the complaint rate passes 0.1 % (Gmail and Yahoo
ask senders to stay under 0.3 %) or the bounce rate passes 2 %. `format_stats(stats)` is the
text `invoke subscribers.stats` prints.
"""

from __future__ import annotations

import bisect
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from newsletter.announcements.ledger import ANNOUNCEMENT
from newsletter.database import Database, stamp, utcnow
from newsletter.outgoing.ledger import MailLedger
from newsletter.subscriptions.feedback import Feedback, Kind

COMPLAINT_WARNING = 0.001  # 0.1 %
BOUNCE_WARNING = 0.02  # 2 %


@dataclass
class Row:
    label: str
    sent: int = 0
    counts: dict[str, int] = field(default_factory=lambda: dict.fromkeys(Kind, 0))

    @property
    def complaint_rate(self) -> float:
        return self.counts["complaint"] / self.sent if self.sent else 0.0

    @property
    def bounce_rate(self) -> float:
        return self.counts["hard_bounce"] / self.sent if self.sent else 0.0


@dataclass
class Stats:
    announcements: list[Row]
    window: Row

    def warnings(self) -> list[str]:
        out = []
        for row in [*self.announcements, self.window]:
            if row.complaint_rate > COMPLAINT_WARNING:
                out.append(
                    f"{row.label}: complaint rate {row.complaint_rate:.2%} is over 0.1 % "
                    "(Gmail and Yahoo ask for under 0.3 %): check who is on the list and why"
                )
            if row.bounce_rate > BOUNCE_WARNING:
                out.append(
                    f"{row.label}: bounce rate {row.bounce_rate:.2%} is over 2 %: the list has "
                    "dead addresses (an old import?)"
                )
        return out


def stats(database: Database, now: datetime | None = None, days: float = 30) -> Stats:
    now = now or utcnow()
    since = stamp(now - timedelta(days=days))
    db = database.db
    rows: dict[int, Row] = {}
    outgoing = MailLedger(database)
    sent_rows = outgoing.sent_rows(ANNOUNCEMENT)
    sent_per = Counter(about_id for _, _, about_id in sent_rows)
    for announcement_id, subject in db.execute("SELECT id, subject FROM announcements ORDER BY id"):
        rows[announcement_id] = Row(f"#{announcement_id} {subject}", sent_per[announcement_id])
    window = Row(f"last {days:g} days")
    window.sent = outgoing.sent_since(ANNOUNCEMENT, since)
    sends: dict[int, list[tuple[str, int]]] = defaultdict(list)
    for subscriber_id, sent_at, announcement_id in sent_rows:
        sends[subscriber_id].append((sent_at, announcement_id))
    for subscriber_id, kind, occurred_at in Feedback(database).events():
        if occurred_at >= since:
            window.counts[kind] += 1
        history = sends.get(subscriber_id, [])
        index = bisect.bisect_right(history, (occurred_at, float("inf"))) - 1
        if index >= 0:
            rows[history[index][1]].counts[kind] += 1
    return Stats(list(rows.values()), window)


def format_stats(result: Stats) -> str:
    header = f"{'':<44} {'sent':>7} {'hard':>6} {'soft':>6} {'compl.':>6} {'compl. %':>9}"
    lines = ["Announcements and what came back:", header]
    for row in [*result.announcements, result.window]:
        c = row.counts
        lines.append(
            f"{row.label[:44]:<44} {row.sent:>7} {c['hard_bounce']:>6} {c['soft_bounce']:>6} "
            f"{c['complaint']:>6} {row.complaint_rate:>8.2%}"
        )
    lines += [f"WARNING: {text}" for text in result.warnings()]
    return "\n".join(lines)


__all__ = ["Row", "Stats", "format_stats", "stats"]
