"""`invoke announce`: one email per new article in the feed, to every confirmed subscriber.

Contract: `run(settings, ...)` does, in this order, and returns a `Summary`:
1. read the feed (output/feeds/all.rss.xml, or a URL): a broken feed raises `FeedError` and
   nothing is sent;
2. take the run lock (a second run raises `LedgerLocked`);
3. decide what is new (ledger.select: first run, too old, opted out, not live yet);
4. plan the new announcements and their deliveries in ONE transaction;
5. send every unfinished announcement (earlier runs' leftovers first), recording each result.
The flood guard, between 3 and 4: when more new items (articles and videos, whatever the
announce mode) than NEWSLETTER_ANNOUNCE_MAX_ITEMS (default 5; 0: no limit) would be announced,
the run raises `TooManyNewItems` listing them, having sent and recorded nothing, unless
`yes=True` (`invoke announce --yes`). The first run on an empty ledger records, never sends,
so it is not held. `dry_run=True` does 1 and 3 without writing anything to the ledger, and
renders every email it would send to `<outbox>/preview/` (saying when --yes would be needed).
`preview()` renders the latest announcement (or the newest feed item) as an HTML page.
Previews are private like the outbox: files 0600, folders 0700.
The mailer is the one `newsletter.mail.connect` makes from NEWSLETTER_TRANSPORT: outbox
(default), smtp (NEWSLETTER_SMTP_WORKERS reused connections) or mailgun (the batch API).
"""

from __future__ import annotations

import shutil
import sys
import time
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path

import requests

from newsletter import mail
from newsletter.announcements.dispatch import NoProgress, Progress, Results, Tally, dispatch
from newsletter.announcements.emails import Composer, drafts
from newsletter.announcements.feed import FeedError, FeedItem, read_feed, read_video_feed
from newsletter.announcements.ledger import (
    ANNOUNCE,
    RECORD,
    WAIT,
    Announcement,
    Decision,
    Delivery,
    Ledger,
)
from newsletter.database import Database, utcnow
from newsletter.mail.outbox import OutboxMailer
from newsletter.private_files import private_folder, write_private
from newsletter.settings import Settings, load
from newsletter.subscriptions.subscribers import Status
from newsletter.subscriptions.tokens import Tokens


@dataclass
class Summary:
    feed: str
    dry_run: bool = False
    announced: list[Announcement] = field(default_factory=list)  # planned in this run
    resumed: list[Announcement] = field(default_factory=list)  # left over from earlier runs
    recorded: list[Decision] = field(default_factory=list)  # new items recorded, not sent
    waiting: list[Decision] = field(default_factory=list)  # new items not live yet
    tally: Tally = field(default_factory=Tally)
    pending: int = 0  # deliveries still pending after the run, all announcements
    previews: int = 0  # dry run: emails rendered
    preview_folder: Path | None = None
    problems: list[str] = field(default_factory=list)  # e.g. the video feed could not be read
    held: list[FeedItem] = field(default_factory=list)  # dry run: what a run would hold for --yes
    limit: int = 0  # NEWSLETTER_ANNOUNCE_MAX_ITEMS, for the dry run's words

    @property
    def ok(self) -> bool:
        """Nothing failed and nothing is left pending or waiting."""
        t = self.tally
        return not (t.bounced or t.stopped or self.pending or self.waiting or self.problems)

    def lines(self) -> list[str]:
        out = [f"Feed: {self.feed}"] + [f"  PROBLEM: {problem}" for problem in self.problems]
        for decision in self.recorded:
            out.append(f"  recorded, not sent: {decision.item.title} ({decision.reason})")
        for decision in self.waiting:
            out.append(f"  waiting for a later run: {decision.item.title} ({decision.reason})")
        for announcement in self.announced:
            out.append(f"  new announcement: {announcement.subject}")
        for announcement in self.resumed:
            out.append(f"  resumed from an earlier run: {announcement.subject}")
        if self.dry_run:
            if self.held:
                out += flood_lines(self.held, self.limit)
                out.append("  A run without --yes would send nothing and record nothing.")
            out.append(
                f"Dry run: {self.previews} email(s) rendered to {self.preview_folder}; "
                "nothing sent, nothing recorded."
            )
            return out
        if not (self.announced or self.resumed):
            out.append("Nothing to announce.")
        t = self.tally
        out.append(
            f"Announced items: {sum(len(a.items) for a in self.announced)}, sent: {t.sent}, "
            f"skipped: {t.skipped}, failed: {t.bounced} "
            f"({t.bounced} bounced), still pending: {self.pending}"
        )
        for text, count in sorted(t.errors.items(), key=lambda e: -e[1])[:5]:
            out.append(f"  {count} x {text}")
        out += [f"  {note}" for note in t.notes]
        if self.pending:
            out.append("Pending emails go out at the next `invoke announce`.")
        return out


class TooManyNewItems(Exception):
    """The flood guard: this run would announce more new items than
    NEWSLETTER_ANNOUNCE_MAX_ITEMS (a feed that gave its archive new guids, a restored backup),
    so it sent and recorded nothing; a person who checked them runs again with `yes=True`
    (`invoke announce --yes`). str() lists the items, title and link."""

    def __init__(self, items: list[FeedItem], limit: int):
        self.items, self.limit = list(items), limit
        lines = flood_lines(self.items, limit)
        lines.append(
            "Nothing was sent, nothing was recorded. If they are all new, send them with "
            "`invoke announce --yes`; if not, fix the feed first."
        )
        super().__init__("\n".join(lines))


def flood_lines(items: list[FeedItem], limit: int) -> list[str]:
    lines = [
        f"This run would announce {len(items)} new items to every subscriber, more than "
        f"NEWSLETTER_ANNOUNCE_MAX_ITEMS={limit}: it needs --yes."
    ]
    return lines + [f"  - {item.title} <{item.link}>" for item in items]


def _held(settings: Settings, new_items: list[FeedItem], yes: bool) -> bool:
    """True when the flood guard holds this run: more new items than the limit, and no --yes.
    Items, not emails: a digest of the whole archive is the archive mailed all the same."""
    limit = settings.announce_max_items
    return not yes and limit > 0 and len(new_items) > limit


def run(
    settings: Settings | None = None,
    *,
    dry_run: bool = False,
    feed_url: str | None = None,
    send_existing: bool = False,
    check_live: bool = False,
    yes: bool = False,
    progress: Progress | None = None,
    connect=None,
    sleep=time.sleep,
) -> Summary:
    """`connect(report)` makes the mailer (default: `mail.connect` from the settings). Raises
    `TooManyNewItems` (nothing sent, nothing recorded) when the flood guard holds the run."""
    settings = load(settings)
    feed = read_feed(feed_url or settings.feed_url or None)
    summary = Summary(feed=feed.source, dry_run=dry_run)
    sources = Sources(feed.items, _videos(settings, summary))
    database = Database(settings.database)
    try:
        ledger, tokens = Ledger(database), Tokens(settings.secret_key)
        if dry_run:
            return _dry_run(
                settings, ledger, tokens, sources, summary, send_existing, check_live, yes
            )
        with ledger.lock():
            decisions = _decide(settings, ledger, sources, send_existing, check_live)
            summary.recorded = [d for d in decisions if d.action == RECORD]
            summary.waiting = [d for d in decisions if d.action == WAIT]
            summary.resumed = ledger.unfinished()
            new_items = [d.item for d in decisions if d.action == ANNOUNCE]
            if _held(settings, new_items, yes):  # before anything is written or sent
                raise TooManyNewItems(new_items, settings.announce_max_items)
            summary.announced = ledger.plan(
                decisions,
                drafts(new_items, settings),
                sources=() if sources.videos is None else ("videos",),
            )
            results = Results(ledger, breaker=max(20, 3 * settings.smtp_workers))
            connect = connect or (
                lambda report: mail.connect(settings, report, workers=settings.smtp_workers)
            )
            mailer = connect(results)
            try:
                for announcement in ledger.unfinished():
                    dispatch(
                        ledger,
                        Composer(settings, tokens, announcement),
                        mailer,
                        results,
                        retries=settings.announce_retries,
                        retry_delay=settings.announce_retry_delay,
                        progress=progress,
                        sleep=sleep,
                    )
                    if results.tally.stopped:
                        break
            finally:
                mailer.close()
            summary.tally = results.tally
            summary.pending = ledger.counts()["pending"]
        return summary
    finally:
        database.close()


@dataclass(frozen=True)
class Sources:
    """What is announced: the blog's articles, and the channel's videos (None: not read)."""

    articles: list[FeedItem]
    videos: list[FeedItem] | None = None


def _videos(settings: Settings, summary: Summary) -> list[FeedItem] | None:
    """The channel feed's videos; a feed that cannot be read stops nothing else: the run goes
    on with the articles and reports the problem (and exits non-zero)."""
    if not settings.video_feed_url:
        return None
    try:
        return read_video_feed(settings.video_feed_url, timeout=settings.smtp_timeout).items
    except FeedError as problem:
        summary.problems.append(f"the video feed was not read: {problem}")
        return None


def _decide(settings, ledger, sources: Sources, send_existing, check_live) -> list[Decision]:
    common = dict(
        now=utcnow(),
        max_age=timedelta(days=settings.announce_max_age_days),
        send_existing=send_existing,
    )
    is_live = live_check(timeout=settings.smtp_timeout) if check_live else None
    decisions = ledger.select(sources.articles, is_live=is_live, **common)
    if sources.videos is None:
        return decisions
    embedded = {video for item in sources.articles for video in item.videos}
    first_run = ledger.is_empty("videos")
    for decision in ledger.select(sources.videos, first_run=first_run, **common):
        video = decision.item.guid.removeprefix("yt:video:")
        if decision.action == ANNOUNCE and video in embedded:  # one email: the article's
            decision = Decision(decision.item, RECORD, "announced with the article that embeds it")
        elif decision.action == ANNOUNCE and decision.item.short and settings.video_skip_shorts:
            decision = Decision(decision.item, RECORD, "a Short (NEWSLETTER_VIDEO_SKIP_SHORTS)")
        decisions.append(decision)
    return decisions


def live_check(timeout: float = 10.0):
    """is_live(item): None when the article's URL answers 200 (after redirects), else why not."""
    http = requests.Session()

    def is_live(item: FeedItem) -> str | None:
        try:
            with http.get(item.link, timeout=(timeout, timeout), stream=True) as response:
                if response.status_code == 200:
                    return None
                return f"{item.link} answers {response.status_code}"
        except requests.RequestException as error:
            return f"{item.link} cannot be reached ({type(error).__name__})"

    return is_live


# Dry run and preview --------------------------------------------------------------------------
def _dry_run(settings, ledger, tokens, sources, summary, send_existing, check_live, yes) -> Summary:
    decisions = _decide(settings, ledger, sources, send_existing, check_live)
    summary.recorded = [d for d in decisions if d.action == RECORD]
    summary.waiting = [d for d in decisions if d.action == WAIT]
    new_items = [d.item for d in decisions if d.action == ANNOUNCE]
    if _held(settings, new_items, yes):
        summary.held, summary.limit = new_items, settings.announce_max_items
    folder = settings.outbox / "preview"
    shutil.rmtree(folder, ignore_errors=True)
    private_folder(settings.outbox, ours=True)  # the writer makes the preview folder 0700
    rendered = mail.Collect()
    writer = OutboxMailer(folder, rendered)

    subscribers = ledger.subscribers.list(Status.CONFIRMED)
    for draft in drafts(new_items, settings):
        announcement = Announcement(0, draft.kind, draft.key, draft.subject, draft.items, "", None)
        summary.announced.append(announcement)
        composer = Composer(settings, tokens, announcement)
        for s in subscribers:
            writer.push(composer.outgoing(Delivery(0, 0, 0, s.id, s.public_id, s.email)))
    for announcement in ledger.unfinished():
        summary.resumed.append(announcement)
        composer = Composer(settings, tokens, announcement)
        for r in ledger.deliveries(announcement.id):
            if r["status"] == "pending":
                delivery = Delivery(r["id"], announcement.id, r["attempts"], r["subscriber_id"],
                                    r["public_id"], r["email"])  # fmt: skip
                writer.push(composer.outgoing(delivery))
    summary.previews = sum(error is None for error in rendered.results.values())
    summary.preview_folder = folder
    return summary


def preview(settings: Settings | None = None, *, feed_url: str | None = None) -> Path:
    """The latest announcement (or, before the first one, the newest feed item) as an HTML page
    at <outbox>/preview/latest.html, with a sample unsubscribe link; returns its path."""
    settings = load(settings)
    database = Database(settings.database)
    try:
        announcement = Ledger(database).latest()
    finally:
        database.close()
    if announcement is None:
        feed = read_feed(feed_url or settings.feed_url or None)
        if not feed.items:
            raise ValueError(f"nothing to preview: no announcement yet and {feed.source} is empty")
        (draft,) = drafts(feed.items[:1], settings)
        announcement = Announcement(0, draft.kind, draft.key, draft.subject, draft.items, "", None)
    composer = Composer(settings, Tokens(settings.secret_key), announcement)
    sample = f"{settings.base_url}/unsubscribe/sample-link-in-the-preview"
    target = settings.outbox / "preview" / "latest.html"
    private_folder(settings.outbox, ours=True)
    private_folder(target.parent, ours=True)
    return write_private(target, composer.bodies(sample)[1].encode("utf-8"))


# Progress on the terminal ---------------------------------------------------------------------
class TerminalProgress:
    """A progress bar on a terminal (rich); elsewhere (cron, CI) a line every 10 %."""

    def __init__(self, stream=None):
        self.stream = stream or sys.stderr
        self.tty = hasattr(self.stream, "isatty") and self.stream.isatty()
        self._bar = None

    def start(self, total: int, label: str) -> None:
        self.total, self.done, self.label, self._shown = total, 0, label, -1
        self._started = time.monotonic()
        if self.tty:
            from rich.console import Console
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeRemainingColumn

            self._bar = Progress(
                "[progress.description]{task.description}",
                BarColumn(),
                MofNCompleteColumn(),
                TimeRemainingColumn(),
                console=Console(file=self.stream),
                transient=False,
            )
            self._bar.start()
            self._task = self._bar.add_task(label[:40], total=total)
        else:
            print(f"Sending {label!r}: {total} email(s)", file=self.stream, flush=True)

    def advance(self, count: int = 1) -> None:
        if not count:
            return
        self.done += count
        if self._bar is not None:
            self._bar.advance(self._task, count)
        elif self.total:
            tenth = self.done * 10 // self.total
            if tenth != self._shown:
                self._shown = tenth
                print(f"  {self.done}/{self.total}", file=self.stream, flush=True)

    def note(self, text: str) -> None:
        if self._bar is not None:
            self._bar.console.print(f"  {text}")
        else:
            print(f"  {text}", file=self.stream, flush=True)

    def finish(self) -> None:
        if self._bar is not None:
            self._bar.stop()
            self._bar = None
        seconds = time.monotonic() - self._started
        rate = self.done / seconds if seconds > 0 else 0
        print(f"  {self.done} handled in {seconds:.1f} s ({rate:.0f}/s)", file=self.stream)


__all__ = [
    "NoProgress",
    "Summary",
    "TerminalProgress",
    "TooManyNewItems",
    "live_check",
    "preview",
    "run",
]
