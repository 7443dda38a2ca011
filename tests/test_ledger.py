"""The announcement ledger on a real SQLite file: what counts as new, planning in one
transaction, the delivery states, and the run lock."""

from __future__ import annotations

import subprocess
import sys
from datetime import UTC, datetime, timedelta

import pytest

from newsletter.announcements.feed import FeedItem
from newsletter.announcements.ledger import (
    ANNOUNCE,
    ANNOUNCEMENT,
    RECORD,
    WAIT,
    AlreadyAnnounced,
    Draft,
    Ledger,
    LedgerLocked,
)
from newsletter.database import INTEGRITY
from newsletter.outgoing.ledger import MailLedger
from newsletter.subscriptions.subscribers import Status, Subscribers
from tests.announce_helpers import add_subscribers

NOW = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)
WEEK = timedelta(days=7)


def item(n, *, days_old=1.0, link=None, announce=True):
    return FeedItem(
        guid=f"urn:uuid:{n}",
        link=link or f"https://walkagain.example/2026/article-{n}/",
        title=f"Article {n}",
        published=NOW - timedelta(days=days_old),
        announce=announce,
    )


@pytest.fixture
def settings(make_settings):
    return make_settings()


@pytest.fixture
def ledger(settings):
    store = Subscribers.open(settings.database)
    yield Ledger(store.database)
    store.close()


def plan_all(ledger, decisions):
    drafts = [
        Draft("article", d.item.guid, d.item.title, [d.item])
        for d in decisions
        if d.action == ANNOUNCE
    ]
    return ledger.plan(decisions, drafts)


def actions(decisions):
    return [(d.item.guid, d.action) for d in decisions]


def test_first_run_records_everything_and_sends_nothing(ledger):
    decisions = ledger.select([item(1), item(2)], now=NOW, max_age=WEEK)
    assert actions(decisions) == [("urn:uuid:1", RECORD), ("urn:uuid:2", RECORD)]
    assert {d.reason for d in decisions} == {"in the feed before the first run"}
    plan_all(ledger, decisions)
    assert ledger.select([item(1), item(2)], now=NOW, max_age=WEEK) == []  # known now
    decisions = ledger.select([item(1), item(2), item(3)], now=NOW, max_age=WEEK)
    assert actions(decisions) == [("urn:uuid:3", ANNOUNCE)]


def test_a_first_run_on_an_empty_feed_still_counts_as_the_first_run(ledger):
    plan_all(ledger, ledger.select([], now=NOW, max_age=WEEK))  # the timer runs before any post
    assert actions(ledger.select([item(1)], now=NOW, max_age=WEEK)) == [("urn:uuid:1", ANNOUNCE)]


def test_send_existing_announces_the_back_catalogue_on_the_first_run(ledger):
    items = [item(1), item(2, days_old=2), item(3, days_old=30)]
    decisions = ledger.select(items, now=NOW, max_age=WEEK, send_existing=True)
    assert actions(decisions) == [  # oldest first; too old stays too old
        ("urn:uuid:3", RECORD),
        ("urn:uuid:2", ANNOUNCE),
        ("urn:uuid:1", ANNOUNCE),
    ]


def test_known_by_guid_or_by_link_old_opted_out_and_not_live(ledger):
    plan_all(ledger, ledger.select([item(1)], now=NOW, max_age=WEEK))
    renamed = item(1, link="https://walkagain.example/2026/a-better-slug/")  # same guid
    moved = FeedItem(guid="urn:uuid:other", link="HTTP://WalkAgain.example/2026/article-1",
                     title="Same page, new guid")  # fmt: skip
    old = item(2, days_old=8)
    quiet = item(3, announce=False)
    offline = item(4)
    fine = item(5)
    decisions = ledger.select(
        [renamed, moved, old, quiet, offline, fine],
        now=NOW,
        max_age=WEEK,
        is_live=lambda i: "answers 404" if i is offline else None,
    )
    assert actions(decisions) == [
        ("urn:uuid:2", RECORD),
        ("urn:uuid:3", RECORD),
        ("urn:uuid:4", WAIT),
        ("urn:uuid:5", ANNOUNCE),
    ]
    assert [d.reason for d in decisions[:3]] == [
        "older than 7 days when seen",
        "opted out (Announce: no)",
        "not live yet: answers 404",
    ]
    plan_all(ledger, decisions)
    # The article that was not live is not recorded: the next run looks at it again.
    assert actions(ledger.select([offline], now=NOW, max_age=WEEK)) == [("urn:uuid:4", ANNOUNCE)]


def test_plan_makes_one_delivery_per_confirmed_subscriber_in_one_transaction(settings, ledger):
    plan_all(ledger, ledger.select([item(1)], now=NOW, max_age=WEEK))
    people = add_subscribers(
        settings,
        {
            "a@example.com": Status.CONFIRMED,
            "b@example.com": Status.CONFIRMED,
            "u@example.com": Status.UNCONFIRMED,
            "gone@example.com": Status.UNSUBSCRIBED,
            "bounce@example.com": Status.BOUNCED,
            "spam@example.com": Status.COMPLAINED,
        },
    )
    (announcement,) = plan_all(ledger, ledger.select([item(2)], now=NOW, max_age=WEEK))
    rows = ledger.deliveries(announcement.id)
    assert sorted(r["email"] for r in rows) == ["a@example.com", "b@example.com"]
    assert {r["status"] for r in rows} == {"queued"}
    assert {r["kind"] for r in rows} == {"announcement"}  # rows of the one outgoing-mail ledger
    with pytest.raises(INTEGRITY):  # unique per (announcement, subscriber)
        with ledger.database.transaction() as db:
            MailLedger.add(db, "announcement", [people["a@example.com"].id],
                           about_id=announcement.id, now="x")  # fmt: skip
    # A failure inside plan() leaves nothing behind: not the items, not the deliveries.
    decisions = ledger.select([item(3), item(4)], now=NOW, max_age=WEEK)
    clash = [Draft("article", "same", "x", [decisions[0].item]),
             Draft("article", "same", "y", [decisions[1].item])]  # fmt: skip
    with pytest.raises(INTEGRITY):
        ledger.plan(decisions, clash)
    assert len(ledger.items()) == 2 and ledger.counts()["queued"] == 2


def test_an_announcement_finishes_when_none_of_its_emails_is_left(settings, ledger):
    plan_all(ledger, ledger.select([item(1)], now=NOW, max_age=WEEK))
    add_subscribers(settings, {f"{n}@example.com": Status.CONFIRMED for n in "abc"})
    (announcement,) = plan_all(ledger, ledger.select([item(2)], now=NOW, max_age=WEEK))
    a, b, c = ledger.outgoing.claim(kinds=[ANNOUNCEMENT], about_id=announcement.id)
    ledger.outgoing.sent([a.id])
    ledger.outgoing.skip([c.id], "subscriber is unsubscribed now")
    assert not ledger.finish_if_done(announcement.id)  # b is still in flight
    assert [u.id for u in ledger.unfinished()] == [announcement.id]
    ledger.outgoing.sent([b.id])
    assert ledger.finish_if_done(announcement.id) and ledger.unfinished() == []
    assert ledger.counts(announcement.id) == {
        "queued": 0, "sending": 0, "sent": 2, "failed": 0, "skipped": 1
    }  # fmt: skip
    rows = {r["email"]: r for r in ledger.deliveries(announcement.id)}
    assert rows["a@example.com"]["attempts"] == 1 and rows["c@example.com"]["attempts"] == 0
    # Forgetting a subscriber (GDPR) removes their ledger rows too.
    ledger.subscribers.forget("a@example.com")
    assert "a@example.com" not in {r["email"] for r in ledger.deliveries()}


def test_the_run_lock_takes_back_what_a_dead_run_left_in_flight(settings, ledger):
    plan_all(ledger, ledger.select([item(1)], now=NOW, max_age=WEEK))
    add_subscribers(settings, {"a@example.com": Status.CONFIRMED})
    (announcement,) = plan_all(ledger, ledger.select([item(2)], now=NOW, max_age=WEEK))
    assert len(ledger.outgoing.claim(kinds=[ANNOUNCEMENT])) == 1  # then the run died
    assert ledger.outgoing.claim(kinds=[ANNOUNCEMENT]) == []  # its lease holds it
    with ledger.lock():
        (entry,) = ledger.outgoing.claim(kinds=[ANNOUNCEMENT])
    assert entry.about_id == announcement.id


def test_a_second_run_is_refused_while_the_first_holds_the_lock(settings, ledger):
    other = Subscribers.open(settings.database)
    try:
        with ledger.lock():
            with pytest.raises(LedgerLocked, match="another announce run is sending"):
                with Ledger(other.database).lock():
                    pass
        with Ledger(other.database).lock():  # released: the next run may go
            pass
    finally:
        other.close()


@pytest.mark.both_backends  # a promise to keep on PostgreSQL too
def test_a_run_in_another_process_holds_the_lock_until_it_dies(settings, ledger):
    """The run lock is a flock: another process holding it refuses us, naming its pid; when
    that process is killed (SIGKILL: no cleanup at all), the kernel releases it at once. On
    PostgreSQL the server releases it when it reads the dead process's closed connection, a
    moment later: the lock waits for that, since the holder it names is dead on this machine
    (the first CI on two workers caught the moment)."""
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD_THE_LOCK, str(settings.database)],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "holding"
        with pytest.raises(LedgerLocked, match=f"pid {holder.pid} since"):
            with ledger.lock():
                pass
    finally:
        holder.kill()
        holder.wait(5)
    with ledger.lock():  # the dead run's lock is gone with it: no lease to wait out
        pass


HOLD_THE_LOCK = """
import sys, time
from newsletter.announcements.ledger import Ledger
from newsletter.database import Database
with Ledger(Database(sys.argv[1])).lock():
    print("holding", flush=True)
    time.sleep(60)
"""


def test_a_recorded_item_is_planned_on_request_once(ledger, settings):
    """`invoke announce --item`: an item recorded without an email gets its announcement and one
    delivery per confirmed reader; asked again (or by its link under another guid), it is
    refused and nothing is written."""
    add_subscribers(settings, {"ann@example.com": Status.CONFIRMED,
                               "una@example.com": Status.UNCONFIRMED})  # fmt: skip
    plan_all(ledger, ledger.select([item(1), item(2)], now=NOW, max_age=WEEK))  # first run
    chosen = item(1)
    draft = Draft("article", chosen.guid, chosen.title, [chosen])
    announcement = ledger.plan_recorded(chosen, draft)
    assert announcement.key == chosen.guid and ledger.counts(announcement.id)["queued"] == 1
    rows = {row["guid"]: row for row in ledger.items()}
    assert rows["urn:uuid:1"]["outcome"] == "announced"
    assert rows["urn:uuid:1"]["reason"].startswith("on request; recorded before: in the feed")
    assert rows["urn:uuid:2"]["outcome"] == "recorded"
    moved = item(9, link=chosen.link)  # the same page under another guid
    for again in (chosen, moved):
        with pytest.raises(AlreadyAnnounced):
            ledger.plan_recorded(again, Draft("article", again.guid, again.title, [again]))
    assert len(ledger.unfinished()) == 1 and len(ledger.deliveries()) == 1
