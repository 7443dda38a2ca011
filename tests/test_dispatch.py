"""An announcement through the one dispatcher over a real ledger (SQLite): each answer recorded
at once, retry passes after the one retry policy's backoff, a pass that stops early when the
server keeps failing, and a refused message that stops the run without bouncing anyone. The
mailer is a small one of our own interface that answers what each test tells it to; the
database's clock is the test's, moved on by the dispatcher's waits."""

from __future__ import annotations

import pytest

from newsletter import mail
from newsletter.announcements.dispatch import dispatch
from newsletter.announcements.emails import Composer
from newsletter.announcements.feed import FeedItem
from newsletter.announcements.ledger import Draft, Ledger
from newsletter.outgoing.dispatcher import Dispatcher
from newsletter.subscriptions.subscribers import Status, Subscribers
from newsletter.subscriptions.tokens import Tokens
from tests.announce_helpers import add_subscribers
from tests.clock import Clock

READERS = [f"r{n}@example.com" for n in range(6)]


class Scripted:
    """A mailer that answers each push at once: `answers[address]` is a list of errors (or None)
    taken in turn, then accepted."""

    batches = False

    def __init__(self, report, answers=None):
        self.report, self.answers, self.pushed = report, answers or {}, []

    def push(self, outgoing):
        self.pushed.append(outgoing.to)
        queue = self.answers.get(outgoing.to, [])
        self.report([outgoing], queue.pop(0) if queue else None)

    def flush(self):
        pass

    def close(self):
        pass


@pytest.fixture
def world(make_settings):
    settings = make_settings()
    people = add_subscribers(settings, {address: Status.CONFIRMED for address in READERS})
    store = Subscribers.open(settings.database, clock=Clock())
    ledger = Ledger(store.database)
    item = FeedItem(guid="urn:uuid:1", link="https://walkagain.example/2026/a/", title="A")
    (announcement,) = ledger.plan([], [Draft("article", item.guid, item.title, [item])])
    composer = Composer(settings, Tokens(settings.secret_key), announcement)
    yield settings, store, ledger, composer, people
    store.close()


def run(ledger, composer, answers=None, **options):
    dispatcher = Dispatcher(ledger.outgoing, {}, breaker=options.pop("breaker", 20))
    mailer = Scripted(dispatcher.report, answers)
    waits = []

    def sleep(seconds):
        waits.append(seconds)
        ledger.database.clock.advance(seconds=seconds)

    options.setdefault("retry_delay", 5.0)
    tally = dispatch(ledger, composer, mailer, dispatcher, sleep=sleep, **options)
    return tally, mailer, waits


def test_each_answer_is_recorded_and_temporary_ones_are_retried_with_backoff(world):
    settings, store, ledger, composer, _ = world
    temporary = mail.TemporaryFailure("451 busy")
    answers = {
        "r1@example.com": [mail.RecipientRefused("550 no such user")],
        "r2@example.com": [temporary, temporary],  # goes on the third pass
        "r3@example.com": [temporary] * 9,  # still pending after every pass
    }
    tally, mailer, waits = run(ledger, composer, answers, retries=3)
    assert (tally.sent, tally.bounced, tally.retried) == (4, 1, 2 + 4)
    assert waits == [5.0, 10.0, 20.0]  # the one backoff: doubling
    assert mailer.pushed.count("r3@example.com") == 4 and mailer.pushed.count("r0@example.com") == 1
    rows = {r["email"]: r["status"] for r in ledger.deliveries()}
    assert rows == {**dict.fromkeys(READERS, "sent"), "r1@example.com": "failed",
                    "r3@example.com": "queued"}  # fmt: skip
    assert [s.email for s in store.list(Status.BOUNCED)] == ["r1@example.com"]
    assert ledger.unfinished()  # r3 waits for the next run


def test_a_pass_stops_early_when_the_server_keeps_failing(world):
    _, _, ledger, composer, _ = world
    down = {address: [mail.TemporaryFailure("421 down")] * 9 for address in READERS}
    tally, mailer, waits = run(ledger, composer, down, retries=1, breaker=2)
    assert len(mailer.pushed) == 4  # two per pass, then the pass gives up
    assert tally.sent == 0 and ledger.counts()["queued"] == 6


def test_a_refused_message_stops_the_run_and_bounces_nobody(world):
    _, store, ledger, composer, _ = world
    refused = {"r2@example.com": [mail.MessageRefused("554 5.7.1 refused by policy")]}
    tally, mailer, waits = run(ledger, composer, refused, retries=3)
    assert mailer.pushed == READERS[:3] and waits == []  # nothing after the refusal, no retries
    assert tally.stopped and tally.bounced == 0 and tally.sent == 2
    assert any("554 5.7.1 refused by policy" in note for note in tally.notes)
    assert ledger.counts() == {"queued": 4, "sending": 0, "sent": 2, "failed": 0, "skipped": 0}
    assert store.list(Status.BOUNCED) == []


def test_who_left_before_their_turn_is_skipped(world):
    _, store, ledger, composer, people = world
    store.unsubscribe(people["r4@example.com"].public_id)
    tally, mailer, _ = run(ledger, composer)
    assert "r4@example.com" not in mailer.pushed
    assert (tally.sent, tally.skipped) == (5, 1) and ledger.finish_if_done(composer.announcement.id)


def test_while_a_run_sends_the_log_is_copied_by_a_thread_not_by_the_senders_commits(tmp_path):
    """checkpoints_aside: the sending connection never checkpoints (no fsync in its commits),
    yet the write-ahead log reaches the database file while the run goes on; SQLite's setting
    is back afterwards."""
    import time

    from newsletter.announcements.dispatch import CHECKPOINT_EVERY
    from newsletter.database import Database

    database = Database(tmp_path / "newsletter.sqlite3")
    try:
        db = database.db
        db.execute("CREATE TABLE filler (x BLOB)")
        file = database.path
        with database.checkpoints_aside(CHECKPOINT_EVERY):
            assert db.execute("PRAGMA wal_autocheckpoint").fetchone()[0] == 0
            before = file.stat().st_size
            for _ in range(40):  # 40 commits of 64 KB: 2.5 MB through the log
                with database.transaction() as tx:
                    tx.execute("INSERT INTO filler VALUES (randomblob(65536))")
            deadline = time.monotonic() + 10 * CHECKPOINT_EVERY
            while file.stat().st_size < before + 2_000_000 and time.monotonic() < deadline:
                time.sleep(0.05)
            assert file.stat().st_size >= before + 2_000_000  # copied while still sending
        assert db.execute("PRAGMA wal_autocheckpoint").fetchone()[0] == 1000
    finally:
        database.close()


def test_pages_claimed_ahead_send_each_reader_once_in_order(world, monkeypatch):
    """Each page is claimed while the one before it goes out (PostgreSQL: on a connection of
    its own): every reader once, in id order, nothing left in flight."""
    _, _, ledger, composer, _ = world
    monkeypatch.setattr("newsletter.announcements.dispatch.PAGE", 2)
    tally, mailer, _ = run(ledger, composer)
    assert mailer.pushed == READERS and tally.sent == 6
    assert ledger.counts() == {"queued": 0, "sending": 0, "sent": 6, "failed": 0, "skipped": 0}


def test_a_stop_gives_back_the_page_claimed_ahead_untried(world, monkeypatch):
    """Pages of two: the refusal on the second page stops the run while the third page is
    claimed already; its rows go back to the queue as they were (no attempt counted, no lease
    left to run out), and the next run sends them."""
    _, _, ledger, composer, _ = world
    monkeypatch.setattr("newsletter.announcements.dispatch.PAGE", 2)
    refused = {"r2@example.com": [mail.MessageRefused("554 5.7.1 refused by policy")]}
    tally, mailer, _ = run(ledger, composer, refused, retries=3)
    assert mailer.pushed == READERS[:3] and tally.stopped
    assert ledger.counts() == {"queued": 4, "sending": 0, "sent": 2, "failed": 0, "skipped": 0}
    untried = ledger.database.db.execute(
        "SELECT attempts, locked_until FROM outgoing_mail WHERE subscriber_id IN"
        " (SELECT id FROM subscribers WHERE email IN ('r4@example.com', 'r5@example.com'))"
    ).fetchall()
    assert [tuple(row) for row in untried] == [(0, None), (0, None)]
    tally, mailer, _ = run(ledger, composer)
    assert mailer.pushed == READERS[2:] and tally.sent == 4
