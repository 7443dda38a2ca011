"""`invoke announce`: one email per new article in the feed, to every confirmed subscriber.

Contract: `run(settings, ...)` does, in this order, and returns a `Summary`:
1. read the feed (output/feeds/all.rss.xml, or a URL): a broken feed raises `FeedError` and
   nothing is sent;
2. take the run lock (a second run raises `LedgerLocked`);
3. decide what is new (ledger.select: first run, too old, opted out, not live yet);
4. plan the new announcements and their deliveries in ONE transaction;
5. send every unfinished announcement (earlier runs' leftovers first), recording each result;
6. the weekly digests (`weekly`): at or after the author's day and hour, make the week's
   digests (once), then send every digest owed, each result recorded.
Who gets what (issue 20): each new item is its own announcement (NEWSLETTER_ANNOUNCE_MODE is
now the default frequency of new readers: each -> "each", digest -> "weekly"); it is owed to
the confirmed readers whose topics include its topic, by email now for the readers of
frequency "each", in their next weekly digest for the others. `clock=` (a callable giving an
aware UTC datetime; `invoke announce --as-of`) is the run's "now", for tests and a late run.
The flood guard, between 3 and 4: when more new items (articles and videos, whatever the
announce mode) than NEWSLETTER_ANNOUNCE_MAX_ITEMS (default 5; 0: no limit) would be announced,
the run raises `TooManyNewItems` listing them, having sent and recorded nothing, unless
`yes=True` (`invoke announce --yes`). The first run on an empty ledger records, never sends,
so it is not held. `dry_run=True` does 1 and 3 without writing anything to the ledger, and
renders every email it would send to `<outbox>/preview/` (saying when --yes would be needed).
`item=` (`invoke announce --item SLUG`, or the guid, the `Id`, the URL) announces one article of
the feed that the ledger recorded without an email (the first run's back catalogue, too old,
`Announce: no`), and nothing else: with the same lock and dry run (one article is within any
flood limit); an article announced before, new (not recorded yet) or not in the feed raises
`ItemRefused`, whose str() is the sentence to show (with close matches).
`test=ADDRESS` (`invoke announce --test you@example.com`) sends the emails the next run would
send, one of each kind (article, video, digest), to that one address through the live transport,
"[Test] " in their Subject, and records nothing: it reads the ledger (read-only; a missing database
is not created) with the same decisions as a real run (`_decide`, the flood guard, or `item=`), and
when nothing is new it sends the latest announcement again (or the newest feed item). It takes no
run lock: it neither waits for nor holds up a real run. It returns a `test_send.TestSend`
(`lines()`, `ok`); a bad address raises `test_send.TestSendRefused` before anything is read.
Composing and sending: `newsletter.announcements.test_send`.
`preview()` renders the latest announcement (or the newest feed item) as an HTML page.
Previews are private like the outbox: files 0600, folders 0700.
The mailer is the one `newsletter.mail.connect` makes from NEWSLETTER_TRANSPORT: outbox
(default), smtp (NEWSLETTER_SMTP_WORKERS reused connections) or mailgun (the batch API).
"""

from __future__ import annotations

import difflib
import shutil
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo

import requests

from newsletter import mail
from newsletter.announcements import test_send, weekly
from newsletter.announcements.dispatch import NoProgress, Progress, Tally, dispatch
from newsletter.announcements.emails import Composer, drafts, subject_for
from newsletter.announcements.feed import FeedError, FeedItem, read_feed, read_video_feed
from newsletter.announcements.ledger import (
    ANNOUNCE,
    FIRST_RUN,
    RECORD,
    WAIT,
    AlreadyAnnounced,
    Announcement,
    Decision,
    Delivery,
    Ledger,
    link_key,
)
from newsletter.database import Database, utcnow
from newsletter.mail.outbox import OutboxMailer
from newsletter.outgoing.dispatcher import Dispatcher
from newsletter.private_files import private_folder, write_private
from newsletter.settings import Settings, load
from newsletter.subscriptions.choices import Choices
from newsletter.subscriptions.subscribers import Status, Subscribers
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
    chosen: Decision | None = None  # --item: the article, and why it was recorded without email
    # --send-existing on a ledger that has run before: it does nothing; the articles still in the
    # feed that were recorded without an email, newest first, which --item sends
    send_existing_ignored: bool = False
    unsent: list[FeedItem] = field(default_factory=list)
    digests: int = 0  # weekly digests made in this run (their week's time had come)

    @property
    def ok(self) -> bool:
        """Nothing failed and nothing is left pending or waiting."""
        t = self.tally
        return not (
            t.bounced or t.failed or t.stopped or self.pending or self.waiting or self.problems
        )

    def lines(self) -> list[str]:
        out = [f"Feed: {self.feed}"] + [f"  PROBLEM: {problem}" for problem in self.problems]
        for decision in self.recorded:
            out.append(f"  recorded, not sent: {decision.item.title} ({decision.reason})")
        back = [d.item for d in self.recorded if d.reason == FIRST_RUN and d.item.kind == "article"]
        if back:
            out.append(
                "  First run: the articles already in the feed are recorded, not sent, so the "
                "back catalogue is never mailed by surprise. To send one of them: "
                f"`invoke announce --item {slug_of(back[-1].link)}` (its slug, guid or URL)."
            )
        if self.chosen:
            out.append(
                f"  chosen with --item: {self.chosen.item.title} "
                f"(recorded without an email before: {self.chosen.reason})"
            )
        ignored = ""
        if self.send_existing_ignored:
            example = slug_of(self.unsent[0].link) if self.unsent else "SLUG"  # the newest
            ignored = (
                "--send-existing applies only to a first run, and this ledger has run before; "
                "to send an article it recorded without an email: "
                f"`invoke announce --item {example}`."
            )
            if self.unsent:
                names = [slug_of(item.link) for item in self.unsent]
                more = f" and {len(names) - 5} more" if len(names) > 5 else ""
                ignored += f" Recorded, not sent, still in the feed: {', '.join(names[:5])}{more}."
            if self.dry_run or self.announced or self.resumed:
                out.append(f"  {ignored}")
        for decision in self.waiting:
            out.append(f"  waiting for a later run: {decision.item.title} ({decision.reason})")
        for announcement in self.announced:
            out.append(f"  new announcement: {announcement.subject}")
        for announcement in self.resumed:
            out.append(f"  resumed from an earlier run: {announcement.subject}")
        if self.digests:
            out.append(f"  weekly digests made: {self.digests}")
        if self.dry_run:
            if self.held:
                out += flood_lines(self.held, self.limit)
                out.append("  A run without --yes would send nothing and record nothing.")
            out.append(
                f"Dry run: {self.previews} email(s) rendered to {self.preview_folder}; "
                "nothing sent, nothing recorded."
            )
            return out
        if not (self.announced or self.resumed or self.digests):
            out.append(f"Nothing to announce: {ignored}" if ignored else "Nothing to announce.")
        t = self.tally
        out.append(
            f"Announced items: {sum(len(a.items) for a in self.announced)}, sent: {t.sent}, "
            f"skipped: {t.skipped}, failed: {t.bounced + t.failed} "
            f"({t.bounced} bounced), still pending: {self.pending}"
        )
        for text, count in sorted(t.errors.items(), key=lambda e: -e[1])[:5]:
            out.append(f"  {count} x {text}")
        out += [f"  {note}" for note in t.notes]
        if self.pending:
            out.append("Pending emails go out at the next `invoke announce`.")
        return out


class ItemRefused(Exception):
    """`--item` names no article of the feed, an article announced before, or a new one (a
    plain run announces it): nothing was sent or recorded; str() says why and what to do."""


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
    limit = settings.announce.max_items
    return not yes and limit > 0 and len(new_items) > limit


def run(
    settings: Settings | None = None,
    *,
    dry_run: bool = False,
    feed_url: str | None = None,
    send_existing: bool = False,
    check_live: bool = False,
    yes: bool = False,
    item: str | None = None,
    test: str | None = None,
    progress: Progress | None = None,
    connect=None,
    sleep=time.sleep,
    clock=None,
) -> Summary | test_send.TestSend:
    """`connect(report)` makes the mailer (default: `mail.connect` from the settings). Raises
    `TooManyNewItems` (nothing sent, nothing recorded) when the flood guard holds the run, and
    `ItemRefused` when `item` cannot be announced. `test`: the test send (see the module's
    contract), which returns a `TestSend`."""
    settings = load(settings)
    if test is not None:
        if dry_run:
            raise test_send.TestSendRefused(
                "--test sends real emails to one address, --dry-run renders them to files: "
                "use one or the other."
            )
        return _test_send(
            settings, test, feed_url, send_existing, check_live, yes, item, connect, clock
        )
    if item is not None and send_existing:
        raise ItemRefused(
            "--item sends one article the ledger recorded; --send-existing sends the back "
            "catalogue on a first run: use one or the other."
        )
    feed = read_feed(feed_url or settings.announce.feed_url or None, timeout=settings.http.timeout)
    summary = Summary(feed=feed.source, dry_run=dry_run)
    if item is not None:
        chosen = choose(feed.items, item, feed.source)
        return _announce_item(settings, chosen, summary, check_live, progress, connect, sleep)
    sources = Sources(feed.items, _videos(settings, summary))
    database = Database(settings.core.database, **({"clock": clock} if clock else {}))
    try:
        ledger, tokens = Ledger(database), Tokens(settings.core.secret_key)
        if send_existing and not ledger.is_empty():
            summary.send_existing_ignored = True
            unsent = [i for i in feed.items if _recorded_reason(ledger, i) is not None]
            summary.unsent = sorted(unsent, key=lambda i: i.published or utcnow(), reverse=True)
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
                raise TooManyNewItems(new_items, settings.announce.max_items)
            summary.announced = ledger.plan(
                decisions,
                each_alone(new_items, settings),
                sources=() if sources.videos is None else ("videos",),
            )
            summary.digests = weekly.close_due(database, settings)
            _send(settings, ledger, tokens, ledger.unfinished(), summary, progress, connect, sleep,
                  digests=True)  # fmt: skip
        return summary
    finally:
        database.close()


def each_alone(items: list[FeedItem], settings: Settings):
    """One draft per item: each item is its own announcement, to the readers of its topic (a
    weekly reader gets it in their digest)."""
    return [draft for item in items for draft in drafts([item], settings)]


def _send(
    settings, ledger, tokens, announcements, summary, progress, connect, sleep, *, digests=False
) -> None:
    """Send the announcements' pending deliveries (and, with `digests`, every weekly digest
    owed), each result recorded; the tally and what is still pending go into the summary."""
    dispatcher = Dispatcher(ledger.outgoing, {}, breaker=max(20, 3 * settings.smtp.workers))
    connect = connect or (
        lambda report: mail.connect(settings, report, workers=settings.smtp.workers)
    )
    mailer = connect(dispatcher.report)
    try:
        for announcement in announcements:
            dispatch(
                ledger,
                Composer(settings, tokens, announcement),
                mailer,
                dispatcher,
                retries=settings.announce.retries,
                retry_delay=settings.announce.retry_delay,
                max_attempts=settings.endpoint.max_attempts,
                progress=progress,
                sleep=sleep,
            )
            if dispatcher.tally.stopped:
                break
        if digests and not dispatcher.tally.stopped:
            weekly.send(ledger.database, settings, tokens, mailer, dispatcher,
                        progress=progress, sleep=sleep)  # fmt: skip
    finally:
        mailer.close()
    summary.tally = dispatcher.tally
    counts = ledger.counts()
    summary.pending = counts["queued"] + counts["sending"]
    if digests:
        left = ledger.outgoing.counts(weekly.KIND)
        summary.pending += left["queued"] + left["sending"]


# One chosen article: --item ---------------------------------------------------------------------
def slug_of(link: str) -> str:
    """The last part of an article's URL path: `https://…/2026/knee-pain/` -> `knee-pain`."""
    return urlsplit(link).path.rstrip("/").rsplit("/", 1)[-1].removesuffix(".html")


def choose(items: list[FeedItem], wanted: str, source: str = "the feed") -> FeedItem:
    """The article of the feed that `wanted` names: its guid (or the `Id` in `urn:uuid:<Id>`),
    its URL (scheme and trailing slash ignored), its path or its slug. `ItemRefused`, with the
    close matches, when none or several do."""
    text = wanted.strip()
    articles = [item for item in items if item.kind == "article"]
    if not text:
        raise ItemRefused("--item needs an article: its slug, guid or URL.")

    def names(item: FeedItem) -> bool:
        if text in (item.guid, item.guid.removeprefix("urn:uuid:")):
            return True
        if "://" in text:
            return link_key(text) == link_key(item.link)
        path = urlsplit(item.link).path.strip("/")
        return text.strip("/") in (slug_of(item.link), path)

    found = [item for item in articles if names(item)]
    if len(found) == 1:
        return found[0]
    if found:
        listed = "; ".join(f"{item.title} <{item.link}>" for item in found)
        raise ItemRefused(f"--item {text!r} names {len(found)} articles ({listed}): use its URL.")
    slugs = [slug_of(item.link) for item in articles]
    close = difflib.get_close_matches(slug_of(text) or text, slugs, n=3, cutoff=0.6)
    sentence = f"No article in {source} has the slug, guid or URL {text!r}."
    if close:
        sentence += f" Did you mean: {', '.join(close)}?"
    elif slugs:
        sentence += f" Its newest: {', '.join(slugs[:3])}."
    raise ItemRefused(sentence)


def _recorded_reason(ledger: Ledger, item: FeedItem) -> str | None:
    """Why the ledger recorded `item` without an email; None when it never recorded it, or
    announced it."""
    rows = ledger.rows(item)
    if not rows or any(row["outcome"] == "announced" for row in rows):
        return None
    return rows[0]["reason"] or "recorded"


def _refusal(ledger: Ledger, item: FeedItem) -> str:
    """Why `item`, which is not recorded-and-unsent, cannot be sent with --item."""
    announced = [row for row in ledger.rows(item) if row["outcome"] == "announced"]
    if announced:
        row = announced[0]
        sent = ledger.counts(row["announcement_id"])["sent"] if row["announcement_id"] else 0
        when = (row["announced_at"] or row["seen_at"])[:10]
        return (
            f"{item.title!r} was announced already, on {when} ({sent} email(s) sent): "
            "an article is emailed once, never twice."
        )
    first = " (a first run records it without sending)" if ledger.is_empty() else ""
    return (
        f"{item.title!r} is new: the ledger has not recorded it, so a plain `invoke announce` "
        f"announces it{first}. --item is for an article recorded without an email."
    )


def _announce_item(settings, item, summary, check_live, progress, connect, sleep) -> Summary:
    """Plan and send (or, dry, render) the one article `item`, nothing else."""
    database = Database(settings.core.database)
    try:
        ledger, tokens = Ledger(database), Tokens(settings.core.secret_key)
        if check_live and (problem := live_check(timeout=settings.http.timeout)(item)):
            raise ItemRefused(f"{item.title!r} is not live yet ({problem}): nothing was sent.")
        (draft,) = drafts([item], settings)
        if summary.dry_run:
            if (reason := _recorded_reason(ledger, item)) is None:
                raise ItemRefused(_refusal(ledger, item))
            summary.chosen = Decision(item, ANNOUNCE, reason)
            _previews(settings, ledger, tokens, summary, [item], resumed=False)
            return summary
        with ledger.lock():
            if (reason := _recorded_reason(ledger, item)) is None:
                raise ItemRefused(_refusal(ledger, item))
            summary.chosen = Decision(item, ANNOUNCE, reason)
            try:
                summary.announced = [ledger.plan_recorded(item, draft)]
            except AlreadyAnnounced:  # between the look and the plan: the lock makes it rare
                raise ItemRefused(_refusal(ledger, item)) from None
            _send(settings, ledger, tokens, summary.announced, summary, progress, connect, sleep)
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
    if not settings.announce.video_feed_url:
        return None
    try:
        return read_video_feed(
            settings.announce.video_feed_url, timeout=settings.http.timeout
        ).items
    except FeedError as problem:
        summary.problems.append(f"the video feed was not read: {problem}")
        return None


def _decide(settings, ledger, sources: Sources, send_existing, check_live) -> list[Decision]:
    common = dict(
        now=ledger.database.clock(),
        max_age=timedelta(days=settings.announce.max_age_days),
        send_existing=send_existing,
    )
    is_live = live_check(timeout=settings.http.timeout) if check_live else None
    decisions = ledger.select(sources.articles, is_live=is_live, **common)
    if sources.videos is None:
        return decisions
    embedded = {video for item in sources.articles for video in item.videos}
    first_run = ledger.is_empty("videos")
    for decision in ledger.select(sources.videos, first_run=first_run, **common):
        video = decision.item.guid.removeprefix("yt:video:")
        if decision.action == ANNOUNCE and video in embedded:  # one email: the article's
            decision = Decision(decision.item, RECORD, "announced with the article that embeds it")
        elif (
            decision.action == ANNOUNCE
            and decision.item.short
            and settings.announce.video_skip_shorts
        ):
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


# The test send: --test ADDRESS ----------------------------------------------------------------
def _test_send(settings, address, feed_url, send_existing, check_live, yes, item, connect, clock):
    """What the next run would send, one email of each kind, to `address` (see the contract)."""
    to = test_send.recipient(address)  # a bad address: refused before anything is read
    feed = read_feed(feed_url or settings.announce.feed_url or None, timeout=settings.http.timeout)
    report = test_send.TestSend(feed.source, to, test_send.transport(settings))
    notes = report.notes
    with _reading(settings, clock) as ledger:
        if ledger.subscribers.get(test_send.TEST_PUBLIC_ID) is not None:  # never, but be sure
            raise test_send.TestSendRefused(
                f"a subscriber has the test's public id {test_send.TEST_PUBLIC_ID!r}: not sent."
            )
        if item is not None:
            chosen = choose(feed.items, item, feed.source)
            if _recorded_reason(ledger, chosen) is None:
                notes.append(f"A real `--item` would refuse it: {_refusal(ledger, chosen)}")
            else:
                notes.append(f"A real `--item` would send {chosen.title!r} to every reader.")
            announcements = [test_send.from_draft(d) for d in drafts([chosen], settings)]
        else:
            announcements = _next_run(settings, ledger, feed, send_existing, check_live, yes, notes)
            announcements.append(_next_digest(settings, ledger, announcements, notes))
        chosen_ones, rest = test_send.one_of_each(announcements)
    if rest:
        titles = ", ".join(repr(a.subject) for a in rest[:5]) + (" ..." if len(rest) > 5 else "")
        notes.append(
            f"Sent here: one email of each kind; the real run would send {len(rest)} more to each "
            f"reader: {titles}."
        )
    report.sent = test_send.send(settings, to, chosen_ones, connect=connect, feed=feed.source)
    return report


def _next_run(settings, ledger, feed, send_existing, check_live, yes, notes) -> list[Announcement]:
    """The announcements the next plain run would make (unsaved), with notes on what it would
    do; when it would send nothing, the latest announcement (or the newest feed item) instead."""
    probe = Summary(feed=feed.source)
    decisions = _decide(
        settings, ledger, Sources(feed.items, _videos(settings, probe)), send_existing, check_live
    )
    notes += [f"PROBLEM: {problem}" for problem in probe.problems]
    recorded = [d for d in decisions if d.action == RECORD]
    for decision in recorded[:5]:
        notes.append(f"the next run records, not sends: {decision.item.title} ({decision.reason})")
    if len(recorded) > 5:
        notes.append(f"... and {len(recorded) - 5} more recorded, not sent")
    for decision in (d for d in decisions if d.action == WAIT):
        notes.append(f"the next run waits: {decision.item.title} ({decision.reason})")
    new_items = [d.item for d in decisions if d.action == ANNOUNCE]
    readers = sum(1 for _ in Subscribers.confirmed_ids(ledger.database.db))
    left = ledger.counts()
    if pending := left["queued"] + left["sending"]:
        notes.append(f"The next run also sends {pending} email(s) left over by earlier runs.")
    if new_items:
        planned = each_alone(new_items, settings)
        notes.append(
            f"The next run would announce {len(new_items)} new item(s): {len(planned)} email(s) "
            f"to each of {readers} confirmed subscriber(s)."
        )
        if _held(settings, new_items, yes):
            notes += flood_lines(new_items, settings.announce.max_items)
            notes.append(
                "The real run would send nothing and record nothing without --yes; these are "
                "the emails it would send with it."
            )
        return [test_send.from_draft(draft) for draft in planned]
    first = any(d.reason == FIRST_RUN for d in recorded)
    notes.append(
        "The next run is a first run: it records what is in the feed and sends nothing."
        if first
        else "Nothing is new: the next run would send no new announcement."
    )
    if latest := ledger.latest():
        notes.append(
            f"Sent again, to show the real email: the latest announcement, {latest.subject!r} "
            f"(of {latest.created_at[:10]})."
        )
        return [latest]
    if not feed.items:
        raise test_send.TestSendRefused(
            f"nothing to send: no announcement yet and {feed.source} is empty."
        )
    newest = sorted(feed.items, key=lambda i: i.published or utcnow(), reverse=True)[0]
    notes.append(
        "Nothing was announced yet; sent to show the real email: the newest item of the feed, "
        f"{newest.title!r}."
    )
    return [test_send.from_draft(draft) for draft in drafts([newest], settings)]


def _next_digest(settings, ledger, coming: list[Announcement], notes) -> Announcement:
    """The weekly digest as it would go to a reader of every topic: the items announced since
    the last week's digests were made, and those the next run announces (or, with none, the
    latest few announcements, to show the email)."""
    db = ledger.database.db
    (closed,) = db.execute("SELECT max(closed_at) FROM digest_periods").fetchone()
    since = [row[0] for row in db.execute(
        "SELECT id FROM announcements WHERE kind = 'article' AND created_at > ? ORDER BY id",
        (closed or "",),
    )]  # fmt: skip
    items = weekly.announcement_for(ledger.database, since, settings).items
    items += [item for unsaved in coming if unsaved.id == 0 for item in unsaved.items]
    moment = weekly.slot(settings, ledger.database.clock()) + timedelta(days=7)
    when = moment.astimezone(ZoneInfo(settings.core.timezone)).strftime("%A %d %B, %H:%M")
    if items:
        notes.append(f"The next weekly digest ({when}) holds {len(items)} item(s) so far.")
    else:
        latest = [row[0] for row in db.execute(
            "SELECT id FROM announcements ORDER BY id DESC LIMIT 3"
        )][::-1]  # fmt: skip
        items = weekly.announcement_for(ledger.database, latest, settings).items
        items = items or [item for announcement in coming for item in announcement.items]
        notes.append(
            f"The next weekly digest ({when}) holds nothing yet; sent with the latest items, to "
            "show the email."
        )
    return Announcement(
        0, "digest", "weekly:test", subject_for(settings, "digest", items), items, "", None
    )


@contextmanager
def _reading(settings: Settings, clock=None) -> Iterator[Ledger]:
    """The ledger, read-only (SQLite refuses any write); a database that does not exist yet is
    not created: an empty one in a temporary folder stands in (the next run is a first run)."""
    target = settings.core.database
    with tempfile.TemporaryDirectory() as spare:
        if isinstance(target, Path) and not target.exists():
            target = Path(spare) / "empty.sqlite3"
        database = Database(target, **({"clock": clock} if clock else {}))
        try:
            database.read_only()
            yield Ledger(database)
        finally:
            database.close()


# Dry run and preview --------------------------------------------------------------------------
def _dry_run(settings, ledger, tokens, sources, summary, send_existing, check_live, yes) -> Summary:
    decisions = _decide(settings, ledger, sources, send_existing, check_live)
    summary.recorded = [d for d in decisions if d.action == RECORD]
    summary.waiting = [d for d in decisions if d.action == WAIT]
    new_items = [d.item for d in decisions if d.action == ANNOUNCE]
    if _held(settings, new_items, yes):
        summary.held, summary.limit = new_items, settings.announce.max_items
    return _previews(settings, ledger, tokens, summary, new_items)


def _previews(settings, ledger, tokens, summary, new_items, *, resumed=True) -> Summary:
    """Render what would be sent to `<outbox>/preview/`: the new items' emails and (`resumed`)
    the pending ones of earlier runs."""
    folder = settings.mail.outbox / "preview"
    shutil.rmtree(folder, ignore_errors=True)
    private_folder(settings.mail.outbox, ours=True)  # the writer makes the preview folder 0700
    rendered = mail.Collect()
    writer = OutboxMailer(folder, rendered)

    subscribers = ledger.subscribers.list(Status.CONFIRMED)
    for draft in each_alone(new_items, settings):
        announcement = Announcement(0, draft.kind, draft.key, draft.subject, draft.items, "", None)
        summary.announced.append(announcement)
        composer = Composer(settings, tokens, announcement)
        readers = set(Choices.readers(ledger.database.db, draft.topic))  # as the run would owe
        for s in subscribers:
            if s.id in readers:
                writer.push(composer.outgoing(Delivery(0, 0, 0, s.id, s.public_id, s.email)))
    for announcement in ledger.unfinished() if resumed else ():
        summary.resumed.append(announcement)
        composer = Composer(settings, tokens, announcement)
        for r in ledger.deliveries(announcement.id):
            if r["status"] in ("queued", "sending"):
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
    database = Database(settings.core.database)
    try:
        announcement = Ledger(database).latest()
    finally:
        database.close()
    if announcement is None:
        feed = read_feed(
            feed_url or settings.announce.feed_url or None, timeout=settings.http.timeout
        )
        if not feed.items:
            raise ValueError(f"nothing to preview: no announcement yet and {feed.source} is empty")
        (draft,) = drafts(feed.items[:1], settings)
        announcement = Announcement(0, draft.kind, draft.key, draft.subject, draft.items, "", None)
    composer = Composer(settings, Tokens(settings.core.secret_key), announcement)
    sample = f"{settings.core.base_url}/unsubscribe/sample-link-in-the-preview"
    target = settings.mail.outbox / "preview" / "latest.html"
    private_folder(settings.mail.outbox, ours=True)
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
    "ItemRefused",
    "NoProgress",
    "Summary",
    "TerminalProgress",
    "TooManyNewItems",
    "live_check",
    "preview",
    "run",
]
