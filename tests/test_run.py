"""`invoke announce` end to end over fixture content built by Pelican, into the outbox:
who gets what, and what is never sent."""

from __future__ import annotations

import email
import email.policy
import os
import shutil
import subprocess
import sys
import uuid
from html import escape
from pathlib import Path

import pytest

from newsletter.announcements import run as announce
from newsletter.announcements.feed import FeedError
from newsletter.announcements.ledger import Ledger, LedgerLocked
from newsletter.mail import OutboxMailer
from newsletter.subscriptions.subscribers import Status, Subscribers
from tests.announce_helpers import (
    ATTACKER_DEK,
    HOSTILE_TEXTS,
    add_subscribers,
    archive,
    as_words,
    assert_whole_email,
    build,
    outbox_messages,
    recent,
    recipients,
    write_feed,
)
from tests.conftest import serve_folder, write_article

ROOT = Path(__file__).resolve().parent.parent
INVOKE = Path(sys.executable).parent / "invoke"

PEOPLE = {
    "ann@example.com": Status.CONFIRMED,
    "bob@example.com": Status.CONFIRMED,
    "una@example.com": Status.UNCONFIRMED,
    "ursula@example.com": Status.UNSUBSCRIBED,
    "bea@example.com": Status.BOUNCED,
    "cal@example.com": Status.COMPLAINED,
}
CONFIRMED = ["ann@example.com", "bob@example.com"]


@pytest.fixture
def site(make_settings, tmp_path, content_dir):
    settings = make_settings()
    add_subscribers(settings, PEOPLE)
    write_article(content_dir, "first", "The first article", recent(48))
    return settings, content_dir, tmp_path / "output"


def ledger_of(settings):
    store = Subscribers.open(settings.database)
    return Ledger(store.database), store


def test_the_announcement_story(site):
    settings, content, output = site
    feed = build(content, output)
    first = announce.run(settings, feed_url=feed)
    assert outbox_messages(settings.outbox) == [] and first.ok  # the back catalogue stays quiet
    assert [d.reason for d in first.recorded] == ["in the feed before the first run"]

    new_id = str(uuid.uuid4())
    write_article(content, "knees", 'Knees & Hips <Part 1> "quoted"', recent(1), id=new_id,
                  subtitle="The dek", summary="Why the hip matters.")  # fmt: skip
    write_article(content, "quiet", "Housekeeping", recent(1), announce="no")
    write_article(content, "draft", "A draft", recent(1), status="draft")
    write_article(content, "later", "From the future", recent(-72))
    second = announce.run(settings, feed_url=build(content, output))
    messages = outbox_messages(settings.outbox)
    assert recipients(messages) == CONFIRMED  # not unconfirmed, unsubscribed, bounced, complained
    assert {m["Subject"] for m in messages} == {'Knees & Hips <Part 1> "quoted"'}
    assert second.ok and second.tally.sent == 2
    assert [d.item.title for d in second.recorded] == ["Housekeeping"]
    assert "Announced items: 1, sent: 2, skipped: 0, failed: 0 (0 bounced), still pending: 0" in (
        second.lines()
    )

    third = announce.run(settings, feed_url=feed)  # nothing new: nothing sent
    assert third.tally.sent == 0 and len(outbox_messages(settings.outbox)) == 2

    # The slug changes, the guid (Id) stays: not announced again.
    (content / "articles" / "knees.md").unlink()
    write_article(content, "knees-v2", "Knees and hips, part 1", recent(1), id=new_id,
                  slug="knees-and-hips-part-1")  # fmt: skip
    fourth = announce.run(settings, feed_url=build(content, output))
    assert fourth.tally.sent == 0 and fourth.recorded == []
    assert len(outbox_messages(settings.outbox)) == 2

    ledger, store = ledger_of(settings)
    try:
        titles = {row["title"] for row in ledger.items()}
        assert titles == {"The first article", 'Knees & Hips <Part 1> "quoted"', "Housekeeping"}
        assert "A draft" not in titles and "From the future" not in titles  # never in the feed
    finally:
        store.close()


def test_digest_mode_no_longer_groups_a_run_for_the_readers_of_each(site):
    """Issue 20: NEWSLETTER_ANNOUNCE_MODE=digest is the default frequency of new readers
    (weekly); the readers of "each" (every existing reader) still get each article alone."""
    settings, content, output = site
    settings = settings.replace(announce_mode="digest")
    announce.run(settings, feed_url=build(content, output))
    write_article(content, "two", "Second article", recent(3))
    write_article(content, "three", "Third article", recent(2))
    summary = announce.run(settings, feed_url=build(content, output))
    messages = outbox_messages(settings.outbox)
    assert sorted(recipients(messages)) == sorted(CONFIRMED * 2)
    assert {m["Subject"] for m in messages} == {"Second article", "Third article"}
    assert len(summary.announced) == 2


def test_dry_run_renders_every_email_and_records_nothing(site):
    settings, content, output = site
    announce.run(settings, feed_url=build(content, output))
    write_article(content, "two", "Second article", recent(3))
    feed = build(content, output)
    dry = announce.run(settings, feed_url=feed, dry_run=True)
    preview = settings.outbox / "preview"
    assert dry.previews == 2 and recipients(outbox_messages(preview)) == CONFIRMED
    assert outbox_messages(settings.outbox) == []  # nothing sent
    real = announce.run(settings, feed_url=feed)  # ... and nothing recorded
    assert real.tally.sent == 2
    page = announce.preview(settings)
    assert page.name == "latest.html" and "Second article" in page.read_text()


def test_a_broken_feed_sends_nothing(site):
    settings, content, output = site
    feed = build(content, output)
    announce.run(settings, feed_url=feed)
    write_article(content, "two", "Second article", recent(3))
    feed = build(content, output)
    feed.write_bytes(feed.read_bytes()[:-200])  # cut short mid-upload
    with pytest.raises(FeedError, match="not well-formed"):
        announce.run(settings, feed_url=feed)
    ledger, store = ledger_of(settings)
    try:
        assert len(ledger.items()) == 1 and ledger.counts()["queued"] == 0
    finally:
        store.close()
    assert outbox_messages(settings.outbox) == []


def test_check_live_waits_for_the_deploy(tmp_path, site):
    settings, content, output = site
    server = serve_folder(output)
    try:
        announce.run(settings, feed_url=build(content, output, server.url))
        write_article(content, "two", "Second article", recent(3))
        feed = build(content, output, server.url)
        page = next(output.glob("*/second-article"))
        shutil.move(page, tmp_path / "held-back")  # built, not deployed yet
        waiting = announce.run(settings, feed_url=feed, check_live=True)
        assert waiting.tally.sent == 0 and not waiting.ok
        assert "answers 404" in waiting.waiting[0].reason
        shutil.move(tmp_path / "held-back", page)
        live = announce.run(settings, feed_url=feed, check_live=True)
        assert live.tally.sent == 2 and live.ok
    finally:
        server.stop()


class Interrupted(OutboxMailer):
    """Writes `limit` emails, then the process is interrupted (Ctrl-C)."""

    def __init__(self, folder, report, limit):
        super().__init__(folder, report)
        self.limit = limit

    def push(self, outgoing):
        if self.limit == 0:
            raise KeyboardInterrupt
        self.limit -= 1
        super().push(outgoing)


def test_an_interrupted_run_resumes_where_it_stopped_and_skips_who_left(site):
    settings, content, output = site
    extra = {f"reader{n}@example.com": Status.CONFIRMED for n in range(8)}
    people = add_subscribers(settings, extra)
    announce.run(settings, feed_url=build(content, output))
    write_article(content, "two", "Second article", recent(3))
    feed = build(content, output)
    with pytest.raises(KeyboardInterrupt):
        announce.run(
            settings,
            feed_url=feed,
            connect=lambda report: Interrupted(settings.outbox, report, 4),
        )
    assert len(outbox_messages(settings.outbox)) == 4
    ledger, store = ledger_of(settings)
    try:
        unsent = ("queued", "sending")  # claimed by the run that was interrupted, or not yet
        pending = [r["email"] for r in ledger.deliveries() if r["status"] in unsent]
        assert len(pending) == 6
        store.unsubscribe(people[pending[-1]].public_id)  # leaves before the re-run
    finally:
        store.close()
    resumed = announce.run(settings, feed_url=feed)
    assert resumed.tally.sent == 5 and resumed.tally.skipped == 1 and resumed.ok
    assert [a.subject for a in resumed.resumed] == ["Second article"]
    sent = recipients(outbox_messages(settings.outbox))
    assert len(sent) == len(set(sent)) == 9 and pending[-1] not in sent


def test_a_second_run_refuses_while_one_is_sending(site):
    settings, content, output = site
    feed = build(content, output)
    ledger, store = ledger_of(settings)
    try:
        with ledger.lock():
            with pytest.raises(LedgerLocked, match="another announce run is sending"):
                announce.run(settings, feed_url=feed)
    finally:
        store.close()


def test_feed_text_never_reaches_the_structure_of_the_emails_in_the_outbox(make_settings, tmp_path):
    """Issue 17: titles, deks and summaries holding the composer's old markers, Mailgun's
    variables or header text are words in whole emails, in the .eml files of the outbox."""
    settings = make_settings(reply_to="mark@walkagain.example", announce_max_items=0)
    add_subscribers(settings, {"ann@example.com": Status.CONFIRMED})
    items = [(n, text, ATTACKER_DEK, f"<p>{escape(text)}</p>")
             for n, text in enumerate(HOSTILE_TEXTS, 1)]  # fmt: skip
    feed = write_feed(tmp_path / "feed.xml", [], old=True)
    announce.run(settings, feed_url=feed)
    summary = announce.run(settings, feed_url=write_feed(feed, items, old=True))
    assert summary.ok and summary.tally.sent == len(items)
    written = {message["Subject"]: message for message in outbox_messages(settings.outbox)}
    assert sorted(written) == sorted(as_words(text) for text in HOSTILE_TEXTS)
    for text in HOSTILE_TEXTS:
        for shows in (text, ATTACKER_DEK):
            assert_whole_email(written[as_words(text)], settings, "ann@example.com",
                               subject=as_words(text), shows=shows)  # fmt: skip


# The flood guard: more new items than NEWSLETTER_ANNOUNCE_MAX_ITEMS wait for --yes -------------
def ledger_state(settings):
    ledger, store = ledger_of(settings)
    try:
        return sorted(row["guid"] for row in ledger.items()), ledger.counts(), ledger.latest()
    finally:
        store.close()


@pytest.mark.slow
@pytest.mark.parametrize("mode", ["each", "digest"])
def test_a_flood_of_new_items_sends_nothing_without_yes(make_settings, tmp_path, mode):
    """Today's defect: 300 new guids in the feed (an archive re-numbered) sent 300 emails to
    every subscriber. Now the run sends and records nothing, lists the items, and a person
    who checked them sends them with --yes."""
    settings = make_settings(announce_mode=mode)
    add_subscribers(settings, PEOPLE)
    feed = write_feed(tmp_path / "feed.xml", [], old=True)
    first = announce.run(settings, feed_url=feed)  # the first run records, never held
    assert first.ok and len(first.recorded) == 1
    write_feed(feed, archive(300), old=True)
    before = ledger_state(settings)
    with pytest.raises(announce.TooManyNewItems) as held:
        announce.run(settings, feed_url=feed)
    assert len(held.value.items) == 300
    message = str(held.value)
    assert (
        "would announce 300 new items" in message and "NEWSLETTER_ANNOUNCE_MAX_ITEMS=5" in message
    )
    assert "invoke announce --yes" in message
    for n in (1, 150, 300):
        assert f"  - Archive item {n} <https://walkagain.example/2026/item-{n}/>" in message
    assert outbox_messages(settings.outbox) == []  # nothing sent
    assert ledger_state(settings) == before  # nothing recorded: the next run sees them again

    dry = announce.run(settings, feed_url=feed, dry_run=True)
    assert "it needs --yes" in "\n".join(dry.lines()) and len(dry.held) == 300
    assert ledger_state(settings) == before and outbox_messages(settings.outbox) == []

    sent = announce.run(settings, feed_url=feed, yes=True)
    # Issue 20: the mode is the new readers' default; every item goes alone to these readers.
    assert sent.ok and sent.tally.sent == 300 * len(CONFIRMED)
    assert recipients(outbox_messages(settings.outbox)).count("ann@example.com") == 300
    again = announce.run(settings, feed_url=feed)  # sent and recorded: not held again
    assert again.ok and again.tally.sent == 0


def test_up_to_the_limit_goes_without_yes_and_zero_means_no_limit(make_settings, tmp_path):
    settings = make_settings()
    add_subscribers(settings, PEOPLE)
    feed = write_feed(tmp_path / "feed.xml", [], old=True)
    announce.run(settings, feed_url=feed)
    five = announce.run(settings, feed_url=write_feed(feed, archive(5), old=True))
    assert five.ok and five.tally.sent == 5 * len(CONFIRMED)
    write_feed(feed, archive(5) + archive(6, start=6), old=True)
    with pytest.raises(announce.TooManyNewItems):
        announce.run(settings.replace(announce_max_items=3), feed_url=feed)
    unlimited = announce.run(settings.replace(announce_max_items=0), feed_url=feed)
    assert unlimited.ok and unlimited.tally.sent == 6 * len(CONFIRMED)


# Announcing an older article on purpose: --item -------------------------------------------------
def item_site(site):
    """Two articles that the first run records without an email, and a third announced after."""
    settings, content, output = site
    write_article(content, "second", "The second article", recent(24))
    first = announce.run(settings, feed_url=build(content, output))
    write_article(content, "third", "The third article", recent(2))
    feed = build(content, output)
    assert announce.run(settings, feed_url=feed).tally.sent == len(CONFIRMED)
    return settings, feed, first


def sent_since(settings, before: set[str]):
    """The emails written to the outbox since `before` (the names of its files then)."""
    return [
        email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
        for path in sorted(settings.outbox.glob("*.eml"))
        if path.name not in before
    ]


def outbox_names(settings) -> set[str]:
    return {path.name for path in settings.outbox.glob("*.eml")}


def test_the_first_run_says_how_to_send_an_article_it_recorded(site):
    settings, content, output = site
    write_article(content, "second", "The second article", recent(24))
    first = announce.run(settings, feed_url=build(content, output))
    assert outbox_messages(settings.outbox) == []
    lines = "\n".join(first.lines())
    assert "First run: the articles already in the feed are recorded, not sent" in lines
    assert "To send one of them: `invoke announce --item the-second-article`" in lines


def test_item_sends_one_recorded_article_once(site):
    settings, feed, _ = item_site(site)
    before = outbox_names(settings)
    dry = announce.run(settings, feed_url=feed, item="the-first-article", dry_run=True)
    assert dry.previews == len(CONFIRMED) and outbox_names(settings) == before
    assert {m["Subject"] for m in outbox_messages(settings.outbox / "preview")} == {
        "The first article"
    }

    sent = announce.run(settings, feed_url=feed, item="the-first-article")
    assert sent.ok and sent.tally.sent == len(CONFIRMED)
    new = sent_since(settings, before)
    assert recipients(new) == CONFIRMED and {m["Subject"] for m in new} == {"The first article"}
    lines = sent.lines()
    assert "  chosen with --item: The first article (recorded without an email before: " \
        "in the feed before the first run)" in lines  # fmt: skip
    assert "Announced items: 1, sent: 2, skipped: 0, failed: 0 (0 bounced), still pending: 0" in (
        lines
    )
    # Sent once: by slug, URL or guid it is refused now, with a sentence; a plain run sends nothing.
    link = sent.announced[0].items[0].link
    for name in ("the-first-article", link.replace("https://", "http://"), sent.announced[0].key):
        with pytest.raises(announce.ItemRefused, match="was announced already, on .* never twice"):
            announce.run(settings, feed_url=feed, item=name)
    assert announce.run(settings, feed_url=feed).tally.sent == 0
    assert len(outbox_names(settings)) == len(before) + len(CONFIRMED)


def test_item_refuses_what_it_cannot_send_and_sends_nothing(site):
    settings, feed, _ = item_site(site)
    before = outbox_names(settings)
    refusals = {
        "the-third-article": "'The third article' was announced already, on 20",  # a plain run's
        "the-frist-article": "No article in .* has the slug, guid or URL 'the-frist-article'. "
        "Did you mean: the-first-article?",
        "urn:uuid:no-such-id": "No article in .*'urn:uuid:no-such-id'",
    }
    for name, sentence in refusals.items():
        with pytest.raises(announce.ItemRefused, match=sentence):
            announce.run(settings, feed_url=feed, item=name)
    with pytest.raises(announce.ItemRefused, match="use one or the other"):
        announce.run(settings, feed_url=feed, item="the-first-article", send_existing=True)
    _, content, output = site
    write_article(content, "fourth", "The fourth article", recent(1))  # new: a plain run's job
    newer = build(content, output)
    with pytest.raises(announce.ItemRefused, match="is new: .* a plain `invoke announce`"):
        announce.run(settings, feed_url=newer, item="the-fourth-article")
    assert outbox_names(settings) == before
    ledger, store = ledger_of(settings)
    try:
        outcomes = {row["title"]: row["outcome"] for row in ledger.items()}
        assert outcomes == {"The first article": "recorded", "The second article": "recorded",
                            "The third article": "announced"}  # fmt: skip
    finally:
        store.close()


def test_send_existing_on_a_later_run_says_it_is_for_a_first_run(site):
    settings, feed, _ = item_site(site)
    later = announce.run(settings, feed_url=feed, send_existing=True)
    assert later.tally.sent == 0
    (nothing,) = [line for line in later.lines() if line.startswith("Nothing to announce")]
    assert nothing == (
        "Nothing to announce: --send-existing applies only to a first run, and this ledger has "
        "run before; to send an article it recorded without an email: "
        "`invoke announce --item the-second-article`. Recorded, not sent, still in the feed: "
        "the-second-article, the-first-article."
    )


@pytest.mark.slow
def test_invoke_announce_item_through_the_task(site, tmp_path):
    settings, feed, _ = item_site(site)
    env = {k: v for k, v in os.environ.items() if not k.startswith("NEWSLETTER_")}
    env.update(
        NEWSLETTER_DATABASE=str(settings.database),
        NEWSLETTER_OUTBOX=str(settings.outbox),
        NEWSLETTER_SECRET_KEY=settings.secret_key,
        NEWSLETTER_FROM=settings.sender,
        NEWSLETTER_SITE_URL=settings.site_url,
        NEWSLETTER_BASE_URL=settings.base_url,
        NEWSLETTER_POSTAL_ADDRESS=settings.postal_address,
    )

    def invoke(*args):
        command = [str(INVOKE), "announce", "--feed-url", str(feed), *args]
        return subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True)

    before = outbox_names(settings)
    sent = invoke("--item", "the-second-article")
    assert sent.returncode == 0, sent.stderr
    assert "Announced items: 1, sent: 2" in sent.stdout
    new = sent_since(settings, before)
    assert recipients(new) == CONFIRMED and {m["Subject"] for m in new} == {"The second article"}
    again = invoke("--item", "the-second-article")
    assert again.returncode == 1
    assert "Not announced: 'The second article' was announced already" in again.stderr
    assert len(outbox_names(settings)) == len(before) + len(CONFIRMED)
