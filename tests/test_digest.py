"""Weekly digests (issue 20): each reader gets the items of the topics they chose, by email for
each item or in one digest on the author's day and hour, exactly once, across crashes and
re-runs. Real SQLite, the real announcer, the outbox transport; a test clock moves the week."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from newsletter.announcements import run as announce
from newsletter.announcements import weekly
from newsletter.database import Database
from newsletter.outgoing.ledger import MailLedger
from newsletter.subscriptions import digests
from newsletter.subscriptions.choices import Choice
from tests.clock import Clock
from tests.reader_choices_helpers import add_readers, take, topic_feed

KNEES, HIPS = frozenset({"knees"}), frozenset({"hips"})
A, B, C = "knees-each@example.com", "all-weekly@example.com", "hips-weekly@example.com"
TUESDAY = datetime(2026, 12, 1, 10, 0, tzinfo=UTC)  # the digest: Mondays at 08:00, London


@pytest.fixture
def week(make_settings, tmp_path):
    """Three readers (knees/each, everything/weekly, hips/weekly), a first run on an empty
    feed, and a clock on a Tuesday morning."""
    settings = make_settings(timezone="Europe/London")
    clock = Clock(TUESDAY)
    feed = tmp_path / "feed.xml"
    topic_feed(feed, [])
    announce.run(settings, feed_url=str(feed), clock=clock)  # the first run: nothing yet
    ids = add_readers(
        settings,
        {A: Choice(KNEES, "each"), B: Choice(None, "weekly"), C: Choice(HIPS, "weekly")},
        clock=clock,
    )
    return settings, clock, feed, ids, []


def publish(week, n: int, title: str, topic: str):
    settings, clock, feed, _ids, items = week
    items.append((n, title, topic, clock.now - timedelta(minutes=5)))
    topic_feed(feed, items)
    return announce.run(settings, feed_url=str(feed), clock=clock)


def test_each_reader_gets_what_they_chose_once(week):
    settings, clock, feed, _ids, _items = week
    publish(week, 1, "Knees one", "knees")
    assert take(settings) == {A: ["Knees one"]}  # the weekly readers wait
    clock.advance(days=1)
    publish(week, 2, "Hips one", "hips")
    assert take(settings) == {}  # nobody reads hips each time
    clock.advance(days=2)
    publish(week, 3, "Knees two", "knees")
    assert take(settings) == {A: ["Knees two"]}
    clock.advance(days=1, hours=23)  # Sunday: not yet
    assert announce.run(settings, feed_url=str(feed), clock=clock).digests == 0
    assert take(settings) == {}

    clock.now = datetime(2026, 12, 7, 8, 0, tzinfo=UTC)  # Monday 08:00 in London (UTC in winter)
    summary = announce.run(settings, feed_url=str(feed), clock=clock)
    assert summary.digests == 2 and summary.ok
    assert take(settings) == {
        B: ["Hips one", "Knees one", "Knees two", "digest: 3"],
        C: ["Hips one", "digest: 1"],
    }
    clock.advance(hours=3)  # a later run the same week: nothing again
    assert announce.run(settings, feed_url=str(feed), clock=clock).digests == 0
    assert take(settings) == {}

    clock.advance(days=1)
    publish(week, 4, "Hips two", "hips")  # next week's
    clock.now = datetime(2026, 12, 14, 9, 30, tzinfo=UTC)
    assert announce.run(settings, feed_url=str(feed), clock=clock).digests == 2
    assert take(settings) == {B: ["Hips two", "digest: 1"], C: ["Hips two", "digest: 1"]}


def test_a_video_goes_to_the_readers_of_videos(week):
    settings, clock, feed, ids, _items = week
    publish(week, 1, "A new video", "videos")
    assert take(settings) == {}  # A chose knees only; B and C are weekly
    clock.now = datetime(2026, 12, 7, 8, 5, tzinfo=UTC)
    announce.run(settings, feed_url=str(feed), clock=clock)
    assert take(settings) == {B: ["A new video", "digest: 1"]}


def test_the_digest_day_and_hour_are_the_authors(week):
    settings, clock, feed, _ids, _items = week
    settings = settings.replace(digest_weekday=2, digest_hour=18)
    publish(week, 1, "Knees one", "knees")
    take(settings)
    clock.now = datetime(2026, 12, 2, 17, 59, tzinfo=UTC)  # Wednesday, before 18:00
    assert announce.run(settings, feed_url=str(feed), clock=clock).digests == 0
    clock.now = datetime(2026, 12, 2, 18, 0, tzinfo=UTC)
    assert announce.run(settings, feed_url=str(feed), clock=clock).digests == 1
    assert take(settings) == {B: ["Knees one", "digest: 1"]}


def test_summer_time_the_hour_is_local():
    monday_8_bst = digests.last_slot(datetime(2026, 6, 8, 7, 30, tzinfo=UTC), 0, 8, "Europe/London")
    assert monday_8_bst == datetime(2026, 6, 8, 7, 0, tzinfo=UTC)
    assert digests.last_slot(datetime(2026, 6, 8, 6, 59, tzinfo=UTC), 0, 8, "Europe/London") == (
        datetime(2026, 6, 1, 7, 0, tzinfo=UTC)
    )


def test_closing_a_week_is_one_transaction_and_happens_once(week):
    """The digest rows and their emails are owed together: a crash between the two cannot
    happen (one transaction), and closing again makes nothing."""
    settings, clock, feed, ids, _items = week
    publish(week, 1, "Knees one", "knees")
    take(settings)
    clock.now = datetime(2026, 12, 7, 8, 0, tzinfo=UTC)
    database = Database(settings.database, clock=clock)
    try:
        with pytest.raises(RuntimeError):
            with database.transaction() as db:
                digests.close(db, "2026-12-07T08:00:00.000000Z", database.now())
                raise RuntimeError("the power goes")
        assert digests.owed(database.db, ids[B]) == [1]  # still owed, no digest, no email
        assert MailLedger(database).counts(weekly.KIND)["queued"] == 0
        assert weekly.close_due(database, settings) == 1
        assert weekly.close_due(database, settings) == 0
        assert digests.owed(database.db, ids[B]) == []
        assert MailLedger(database).counts(weekly.KIND)["queued"] == 1
    finally:
        database.close()


def test_a_run_that_died_while_sending_digests_is_finished_by_the_next(week, monkeypatch):
    settings, clock, feed, ids, _items = week
    publish(week, 1, "Knees one", "knees")
    publish(week, 2, "Hips one", "hips")
    take(settings)
    clock.now = datetime(2026, 12, 7, 8, 0, tzinfo=UTC)

    def dies(*args, **kwargs):
        raise KeyboardInterrupt("killed after the digests were made")

    monkeypatch.setattr(weekly, "send", dies)
    with pytest.raises(KeyboardInterrupt):
        announce.run(settings, feed_url=str(feed), clock=clock)
    monkeypatch.undo()
    assert take(settings) == {}
    clock.advance(minutes=5)
    summary = announce.run(settings, feed_url=str(feed), clock=clock)
    assert summary.digests == 0 and summary.tally.sent == 2  # made before, sent now
    assert take(settings) == {
        B: ["Hips one", "Knees one", "digest: 2"],
        C: ["Hips one", "digest: 1"],
    }
    assert announce.run(settings, feed_url=str(feed), clock=clock).tally.sent == 0


def test_a_reader_who_leaves_gets_no_digest(week):
    settings, clock, feed, ids, _items = week
    publish(week, 1, "Knees one", "knees")
    take(settings)
    database = Database(settings.database)
    try:
        from newsletter.subscriptions.subscribers import Subscribers

        store = Subscribers(database)
        store.unsubscribe(store.by_ids([ids[B]])[ids[B]].public_id)
    finally:
        database.close()
    clock.now = datetime(2026, 12, 7, 8, 0, tzinfo=UTC)
    announce.run(settings, feed_url=str(feed), clock=clock)
    assert take(settings) == {}


def test_the_digest_email_is_a_whole_email(week):
    settings, clock, feed, ids, _items = week
    publish(week, 1, "Knees & <one>", "knees")
    publish(week, 2, "Hips one", "hips")
    take(settings)
    clock.now = datetime(2026, 12, 7, 8, 0, tzinfo=UTC)
    announce.run(settings, feed_url=str(feed), clock=clock)
    from tests.announce_helpers import outbox_messages

    (message,) = [m for m in outbox_messages(settings.outbox) if m["To"] == B]
    assert message["Subject"] == "2 new articles on Walk Again: Knees & <one>, Hips one"
    assert message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert message["List-Unsubscribe"].startswith("<https://")
    html = message.get_body(("html",)).get_content()
    assert "Knees &amp; &lt;one&gt;" in html and "<one>" not in html
    assert html.index("Knees") < html.index("Hips one")


@pytest.mark.parametrize(("value", "day"), [("monday", 0), ("Sun", 6), ("4", 4), ("WEDNESDAY", 2)])
def test_the_digest_day_is_a_name_or_a_number(value, day):
    from newsletter.settings import Settings

    assert Settings.from_env({"NEWSLETTER_DIGEST_WEEKDAY": value}).announce.digest_weekday == day


@pytest.mark.parametrize(
    ("name", "value", "words"),
    [
        ("NEWSLETTER_DIGEST_WEEKDAY", "someday", "must be a day of the week"),
        ("NEWSLETTER_DIGEST_WEEKDAY", "7", "must be a day of the week"),
        ("NEWSLETTER_DIGEST_HOUR", "24", "must be an hour from 0 to 23"),
        ("NEWSLETTER_DIGEST_HOUR", "-1", "must be a whole number"),
    ],
)
def test_a_bad_digest_day_or_hour_names_the_variable(name, value, words):
    from newsletter.settings import ConfigError, Settings

    with pytest.raises(ConfigError, match=f"{name}={value!r}: {words}"):
        Settings.from_env({name: value})


def test_the_dry_run_renders_only_what_each_reader_would_get(week):
    settings, clock, feed, _ids, items = week
    items.append((1, "Knees one", "knees", clock.now - timedelta(minutes=5)))
    topic_feed(feed, items)
    dry = announce.run(settings, feed_url=str(feed), clock=clock, dry_run=True)
    from tests.announce_helpers import outbox_messages

    previews = outbox_messages(settings.outbox / "preview")
    assert dry.previews == 1 and [m["To"] for m in previews] == [A]  # the weekly ones wait
    items.append((2, "Hips one", "hips", clock.now - timedelta(minutes=4)))
    topic_feed(feed, items)
    dry = announce.run(settings, feed_url=str(feed), clock=clock, dry_run=True)
    assert dry.previews == 1  # the knees article to A; the hips one to nobody now


def test_digests_through_the_real_smtp_server_with_faults(week):
    """A temporary failure is retried (the one policy), a refused address is a hard bounce,
    and every other weekly reader gets their digest once, through a real SMTP server."""
    from newsletter.subscriptions.subscribers import Status, Subscribers
    from tests.smtp_server import SmtpSink

    settings, clock, feed, ids, _items = week
    publish(week, 1, "Knees one", "knees")
    publish(week, 2, "Hips one", "hips")
    take(settings)
    clock.now = datetime(2026, 12, 7, 8, 0, tzinfo=UTC)
    with SmtpSink(temporary={B: ["451"]}, refuse=[C]) as sink:
        smtp = settings.replace(transport="smtp", smtp_host="127.0.0.1", smtp_port=sink.port,
                                smtp_security="none", smtp_timeout=5)  # fmt: skip
        summary = announce.run(smtp, feed_url=str(feed), clock=clock)
        assert summary.digests == 2 and summary.tally.bounced == 1 and summary.tally.sent == 1
        assert sink.accepted == {B: 1}
        again = announce.run(smtp, feed_url=str(feed), clock=clock)
        assert again.tally.sent == 0 and sink.accepted == {B: 1}
    database = Database(settings.database)
    try:
        assert Subscribers(database).by_ids([ids[C]])[ids[C]].status == Status.BOUNCED
    finally:
        database.close()


def test_a_digest_left_in_flight_by_a_dead_run_goes_once_with_the_next(week):
    """A run killed while a digest was being sent (its row `sending`, under a lease): the next
    run holds the run lock, takes it back at once and sends it; nothing twice."""
    settings, clock, feed, ids, _items = week
    publish(week, 1, "Knees one", "knees")
    take(settings)
    clock.now = datetime(2026, 12, 7, 8, 0, tzinfo=UTC)
    database = Database(settings.database, clock=clock)
    try:
        assert weekly.close_due(database, settings) == 1
        (claimed,) = MailLedger(database).claim(kinds=[weekly.KIND])  # then the run dies
        assert claimed.subscriber_id == ids[B]
    finally:
        database.close()
    summary = announce.run(settings, feed_url=str(feed), clock=clock)
    assert summary.tally.sent == 1 and summary.pending == 0
    assert take(settings) == {B: ["Knees one", "digest: 1"]}
    assert announce.run(settings, feed_url=str(feed), clock=clock).tally.sent == 0
