"""`invoke announce` end to end over fixture content built by Pelican, into the outbox:
who gets what, and what is never sent."""

from __future__ import annotations

import shutil
import uuid

import pytest

from newsletter.announcements import run as announce
from newsletter.announcements.feed import FeedError
from newsletter.announcements.ledger import Ledger, LedgerLocked
from newsletter.mail import OutboxMailer
from newsletter.subscriptions.subscribers import Status, Subscribers
from tests.announce_helpers import (
    add_subscribers,
    build,
    outbox_messages,
    recent,
    recipients,
)
from tests.conftest import serve_folder, write_article

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


def test_digest_mode_sends_one_email_for_several_articles(site):
    settings, content, output = site
    settings = settings.replace(announce_mode="digest")
    announce.run(settings, feed_url=build(content, output))
    write_article(content, "two", "Second article", recent(3))
    write_article(content, "three", "Third article", recent(2))
    summary = announce.run(settings, feed_url=build(content, output))
    messages = outbox_messages(settings.outbox)
    assert recipients(messages) == CONFIRMED
    assert {m["Subject"] for m in messages} == {
        "2 new articles on Walk Again: Second article, Third article"
    }
    html = messages[0].get_body(("html",)).get_content()
    assert html.index("Second article") < html.index("Third article")
    assert len(summary.announced) == 1 and len(summary.announced[0].items) == 2


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
        assert len(ledger.items()) == 1 and ledger.counts()["pending"] == 0
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
        pending = [r["email"] for r in ledger.deliveries() if r["status"] == "pending"]
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
