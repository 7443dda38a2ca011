"""The one outgoing-mail ledger on a real SQLite file: every kind of email in one table, each
row claimed once under a lease, the one retry policy, idempotent results, and no feature in it."""

import json

import pytest

from newsletter.database import INTEGRITY
from newsletter.outgoing.ledger import MailLedger, Policy
from newsletter.subscriptions.addresses import normalize
from newsletter.subscriptions.subscribers import CONFIRMATION, Status, Subscribers
from tests.race import race_each

POLICY = Policy(base=60, cap=3600, max_attempts=3)


@pytest.fixture
def store(database_target, clock):
    store = Subscribers.open(database_target, clock=clock)
    yield store
    store.close()


def subscribe(store, address, **kwargs):
    email, key = normalize(address)
    return store.request_subscription(email, key, **kwargs)


def owe(store, kind, ids, about_id=None):
    with store.database.transaction() as db:
        MailLedger.add(db, kind, ids, about_id=about_id, now=store.database.now())


def test_each_row_is_claimed_once_retried_with_backoff_and_reclaimed_after_its_lease(store, clock):
    for n in range(3):
        subscribe(store, f"r{n}@example.com")  # each sign-up owes one confirmation
    ledger = MailLedger(store.database)
    first = ledger.claim(kinds=[CONFIRMATION], limit=2)
    second = ledger.claim(kinds=[CONFIRMATION], limit=5)
    assert len(first) == 2 and len(second) == 1
    assert {e.id for e in first}.isdisjoint({e.id for e in second})
    assert ledger.claim(kinds=[CONFIRMATION]) == []  # all leased
    ledger.sent([first[0].id])
    ledger.sent([first[0].id])  # recording twice changes nothing
    ledger.retry([first[1].id], "451 try later", POLICY)
    ledger.fail([second[0].id], "550 no such user")
    assert ledger.claim(kinds=[CONFIRMATION]) == []  # the retry is not due yet
    clock.advance(seconds=61)
    (retry,) = ledger.claim(kinds=[CONFIRMATION])
    assert retry.id == first[1].id and retry.attempts == 1
    # A sender that died mid-send: after the lease its email is claimed again.
    clock.advance(minutes=11)
    (again,) = ledger.claim(kinds=[CONFIRMATION])
    assert again.id == retry.id
    assert ledger.counts(CONFIRMATION) == {
        "queued": 0, "sending": 1, "sent": 1, "failed": 1, "skipped": 0
    }  # fmt: skip
    rows = {row["id"]: row for row in ledger.rows(CONFIRMATION)}
    assert rows[first[0].id]["attempts"] == 1 and rows[first[0].id]["sent_at"]
    assert rows[second[0].id]["last_error"] == "550 no such user"


def test_the_one_retry_policy_doubles_and_gives_up_after_max_attempts(store, clock):
    subscribe(store, "reader@example.com")
    ledger = MailLedger(store.database)
    waits = []
    for _ in range(3):
        (entry,) = ledger.claim(kinds=[CONFIRMATION], every=True)
        ledger.retry([entry.id], "451 busy", POLICY)
        (row,) = ledger.rows(CONFIRMATION)
        if row["status"] == "queued":
            waits.append(round((ledger.next_due([CONFIRMATION]) - clock()).total_seconds()))
    assert waits == [60, 120]  # then the third answer was the last one allowed
    (row,) = ledger.rows(CONFIRMATION)
    assert row["status"] == "failed" and row["attempts"] == 3
    assert row["last_error"] == "gave up after 3 attempts: 451 busy"
    ledger.sent([row["id"]])  # a late answer never revives a finished row
    assert ledger.rows(CONFIRMATION)[0]["status"] == "failed"


def _page_statement(store, ledger, monkeypatch, **claim) -> tuple[str, tuple]:
    """The statement (and its arguments) that claims a page, as the ledger sends it."""
    database, seen = store.database, []
    if database.dialect == "postgresql":  # the claims' lane
        write_soon = database.write_soon

        def recording(statement, args=(), **kwargs):
            seen.append((statement, tuple(args)))
            return write_soon(statement, args, **kwargs)

        monkeypatch.setattr(database, "write_soon", recording)
        ledger.claim(**claim)
        return next((s, a) for s, a in seen if "SET status = 'sending'" in s)
    database.db.set_trace_callback(seen.append)  # SQLite gives it with its values in place
    try:
        ledger.claim(**claim)
    finally:
        database.db.set_trace_callback(None)
    return next(s for s in seen if "SET status = 'sending'" in s), ()


def test_a_page_of_one_thing_comes_from_its_index_in_id_order_without_a_sort(store, monkeypatch):
    """The dispatcher's page (one announcement's queued rows after the last page, in id order)
    is read from the partial index of what is queued (`outgoing_mail_about`) in the order it
    needs: no sort of every owed row for each page, which at 100,000 readers would make every
    page cost the whole list."""
    database = store.database
    now = database.now()
    with database.transaction() as db:
        db.executemany(
            "INSERT INTO subscribers (public_id, email, email_key, status, confirm_nonce,"
            " created_at, status_changed_at, confirmed_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            [(f"pub-{n:07d}", f"r{n}@example.com", f"r{n}@example.com", "confirmed", "n",
              now, now, now) for n in range(3000)],
        )  # fmt: skip
    ids = [row[0] for row in database.db.execute("SELECT id FROM subscribers ORDER BY id")]
    owe(store, "announcement", ids, about_id=7)
    owe(store, "announcement", ids[:1000], about_id=8)  # another thing's rows, the same index
    ledger = MailLedger(store.database)
    first = ledger.claim(kinds=["announcement"], about_id=7, limit=200)
    assert [e.id for e in first] == sorted(e.id for e in first) and len(first) == 200
    statement, args = _page_statement(
        store, ledger, monkeypatch, kinds=["announcement"], about_id=7, after_id=first[-1].id
    )
    if database.dialect == "postgresql":
        with database.transaction() as db:  # only what could serve the order is left to it
            db.execute("ANALYZE outgoing_mail")
            db.execute("SET LOCAL enable_seqscan = off")
            db.execute("SET LOCAL enable_sort = off")
            (plan,) = db.execute("EXPLAIN (FORMAT JSON) " + statement, args).fetchone()
        plan = json.loads(plan) if isinstance(plan, str) else plan
        nodes, todo = [], [plan[0]["Plan"]]
        while todo:
            node = todo.pop()
            nodes.append(node)
            todo += node.get("Plans", [])
        assert "Sort" not in {node["Node Type"] for node in nodes}, plan
        assert "outgoing_mail_about" in {node.get("Index Name") for node in nodes}, plan
    else:
        steps = [row[3] for row in database.db.execute("EXPLAIN QUERY PLAN " + statement)]
        assert not any("TEMP B-TREE" in step for step in steps), steps
        assert any("INDEX outgoing_mail_about" in step for step in steps), steps


def test_kinds_and_what_they_are_about_stay_apart(store):
    subscribe(store, "ann@example.com")
    (ann,) = store.list()
    owe(store, "announcement", [ann.id], about_id=7)
    owe(store, "announcement", [ann.id], about_id=8)
    ledger = MailLedger(store.database)
    assert [e.about_id for e in ledger.claim(kinds=["announcement"], about_id=8)] == [8]
    (confirmation,) = ledger.claim(kinds=[CONFIRMATION])
    assert confirmation.about_id is None
    with pytest.raises(INTEGRITY):  # one email per (kind, about, reader)
        owe(store, "announcement", [ann.id], about_id=7)
    # The announcer, under its run lock, takes back what a dead run left in flight.
    assert ledger.release(kinds=["announcement"]) == 1
    assert ledger.counts("announcement") == {
        "queued": 2, "sending": 0, "sent": 0, "failed": 0, "skipped": 0
    }  # fmt: skip
    assert ledger.counts(CONFIRMATION)["sending"] == 1  # another kind: untouched
    # Forgetting a reader (GDPR) removes every email owed or sent to them.
    store.forget(ann.email)
    assert ledger.rows() == []


def test_owing_once_leaves_a_row_already_owed_as_it_is_and_unfinished_counts_kinds(store):
    """`once=True` (a plan's week, owed by every run that finds it due) inserts nothing for a
    row already owed, whatever became of it; `unfinished` counts what is queued or in flight."""
    subscribe(store, "ann@example.com")
    (ann,) = store.list()
    ledger = MailLedger(store.database)
    now = store.database.now()
    with store.database.transaction() as db:
        first = MailLedger.add(db, "plan_week", [ann.id], about_id=1, now=now, once=True)
        assert first and MailLedger.add(db, "plan_week", [ann.id], about_id=2, now=now, once=True)
    ledger.skip([first], "missed")
    with store.database.transaction() as db:
        again = MailLedger.add(db, "plan_week", [ann.id], about_id=1, now=now, once=True)
        MailLedger.add(db, "plan_week", [ann.id, ann.id], about_id=2, now=now, once=True)
    assert again == 0
    assert [(r["about_id"], r["status"]) for r in ledger.rows("plan_week")] == [
        (1, "skipped"), (2, "queued")
    ]  # fmt: skip
    assert ledger.unfinished(["plan_week"]) == 1
    assert ledger.unfinished(["plan_week", CONFIRMATION]) == 2  # and ann's confirmation
    ledger.claim(kinds=["plan_week"])
    assert ledger.unfinished(["plan_week"]) == 1  # in flight: still unfinished


def test_many_threads_write_and_claim_without_database_is_locked(tmp_path):
    stores = [Subscribers.open(tmp_path / "busy.sqlite3") for _ in range(2)]  # two "processes"

    def work(n):
        store, claimed = stores[n % 2], []
        for i in range(25):
            subscribe(store, f"user{i}@example.com")  # everyone races on the same 25
            subscribe(store, f"t{n}-{i}@example.com")
            claimed += [e.id for e in MailLedger(store.database).claim(kinds=[CONFIRMATION],
                                                                       limit=3)]  # fmt: skip
        return claimed

    claimed = [entry for each in race_each(work, 8) for entry in each]
    assert sum(stores[0].counts().values()) == 25 + 8 * 25
    # one confirmation per address, and no row claimed twice
    assert sum(MailLedger(stores[0].database).counts(CONFIRMATION).values()) == 25 + 8 * 25
    assert len(claimed) == len(set(claimed))
    assert stores[0].list(Status.CONFIRMED) == []
    for store in stores:
        store.close()
