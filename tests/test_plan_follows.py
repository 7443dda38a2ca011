"""Following an exercise plan (newsletter/subscriptions/plan_follows.py, plans.py): the store on a
real SQLite file, the plans read over real HTTP, the confirmation email through the real sender
and the real SMTP test server."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from newsletter.database import Database, parse_stamp
from newsletter.outgoing.ledger import MailLedger
from newsletter.subscriptions import admin
from newsletter.subscriptions import plans as plans_module
from newsletter.subscriptions.plan_follows import (
    FOLLOWING,
    PLAN_CONFIRMATION,
    InvalidFollow,
    PlanFollows,
)
from newsletter.subscriptions.plans import Plans, PlansUnavailable
from newsletter.subscriptions.sender import Sender
from newsletter.subscriptions.subscribers import Subscribers
from newsletter.subscriptions.tokens import Tokens
from tests.clock import Clock
from tests.conftest import newsletter_settings, serve_folder
from tests.smtp_server import SmtpSink

PLAN = "6f1d7c52-3b8e-4f0a-9a57-2c4e8d1b9e30-side-lying-leg-raise"
OTHER = "0a8c3f52-1111-4f0a-9a57-2c4e8d1b9e30-clamshell"
MONDAY_0800 = datetime(2026, 12, 7, 8, 0, tzinfo=UTC)  # London is on UTC in December


def plan(plan_id=PLAN, title="Side lying leg raise", weeks=6, per_week=5, **changes):
    record = {
        "id": plan_id,
        "title": title,
        "url": f"https://walkagain.example/2026/knee/#exercise-{plan_id[-8:]}",
        "calendar": f"https://walkagain.example/exercises/{plan_id}.ics",
        "steps": ["Lie on your side.", "Raise and lower your top leg slowly."],
        "prescription": [{"label": "Sets", "value": "3"}],
        "prescription_text": "Sets: 3\nReps: 15–20",
        "sessions_per_week": per_week,
        "weeks": weeks,
        "sessions": per_week * weeks,
        "week_notes": [{"week": 3, "note": "add a 1 kg ankle weight"}],
    }
    record.update(changes)
    return record


def publish(folder, plans, version=1):
    (folder / "exercises").mkdir(parents=True, exist_ok=True)
    document = {"version": version, "site": "https://walkagain.example", "plans": plans}
    (folder / "exercises" / "plans.json").write_text(json.dumps(document), encoding="utf-8")


@pytest.fixture
def blog(tmp_path):
    """A site serving exercises/plans.json (the seed's plan and another) over real HTTP."""
    folder = tmp_path / "site"
    publish(folder, [plan(), plan(OTHER, "Clamshell", weeks=4, per_week=3)])
    server = serve_folder(folder)
    plans_module.forget_cache()
    yield server
    server.stop()
    plans_module.forget_cache()


@pytest.fixture
def clock():
    return Clock(datetime(2026, 12, 2, 10, 0, tzinfo=UTC))  # a Wednesday


@pytest.fixture
def store(tmp_path, blog, clock, backend):
    settings = newsletter_settings(tmp_path, backend=backend, site_url=blog.url)
    database = Database(settings.core.database, clock=clock)
    yield PlanFollows(database, settings)
    database.close()


def ledger(follows):
    return [
        dict(row)
        for row in follows.database.db.execute(
            "SELECT kind, follow_id, subscriber_id, status FROM outgoing_mail ORDER BY id"
        )
    ]


def rows(follows):
    return follows.database.db.execute("SELECT * FROM plan_follows ORDER BY id").fetchall()


def ask(follows, email="Reader@Example.com", plan_id=PLAN, weekday="0", hour="8", **kw):
    kw.setdefault("source", "https://walkagain.example/2026/knee/")
    kw.setdefault("ip", "203.0.113.9")
    return follows.request(email, plan_id, weekday, hour, **kw)


# Asking -------------------------------------------------------------------------------------------
def test_a_request_stores_the_least_and_owes_one_confirmation(store):
    result = ask(store)
    assert result.outcome == "queued"
    (row,) = rows(store)
    assert (row["email"], row["email_key"], row["plan_id"]) == (
        "Reader@example.com", "reader@example.com", PLAN,
    )  # fmt: skip
    assert (row["weekday"], row["hour"], row["weeks"], row["status"]) == (0, 8, 6, "unconfirmed")
    assert row["starts_at"] is None and row["consent_source"].endswith("/2026/knee/")
    assert row["consent_ip_hash"] and "203.0.113" not in row["consent_ip_hash"]
    assert len(row["public_id"]) >= 20 and row["public_id"] != str(row["id"])
    assert ledger(store) == [
        {"kind": PLAN_CONFIRMATION, "follow_id": row["id"], "subscriber_id": None,
         "status": "queued"},
    ]  # fmt: skip
    assert store.database.db.execute("SELECT count(*) FROM signup_requests").fetchone()[0] == 0


def test_ticking_the_newsletter_stores_a_sign_up_request_with_its_own_opt_in(store):
    ask(store, newsletter=True)
    (request,) = store.database.db.execute("SELECT email, source FROM signup_requests")
    assert request["email"] == "Reader@example.com"
    assert Subscribers(store.database).list() == []  # only asked: the sender applies it


@pytest.mark.parametrize(
    "email, plan_id, weekday, hour, says",
    [
        ("not an address", PLAN, "0", "8", "address"),
        ("reader@example.com", "no-such-plan", "0", "8", "no such exercise plan"),
        ("reader@example.com", PLAN.upper(), "0", "8", "no such exercise plan"),
        ("reader@example.com", PLAN + "\n", "0", "8", "no such exercise plan"),
        ("reader@example.com", ["a", "b"], "0", "8", "no such exercise plan"),
        ("reader@example.com", PLAN, "7", "8", "day of the week"),
        ("reader@example.com", PLAN, "-1", "8", "day of the week"),
        ("reader@example.com", PLAN, "１", "8", "day of the week"),  # a fullwidth digit
        ("reader@example.com", PLAN, "", "8", "day of the week"),
        ("reader@example.com", PLAN, None, "8", "day of the week"),
        ("reader@example.com", PLAN, "0", "24", "hour"),
        ("reader@example.com", PLAN, "0", "8.5", "hour"),
        ("reader@example.com", PLAN, "0", "008", "hour"),
        ("reader@example.com", PLAN, "0", True, "hour"),
        ("reader@exam\u202eple.com", PLAN, "0", "8", "address"),
        ("reader@example.com\r\nBcc: x@example.com", PLAN, "0", "8", "address"),
        ("a" * 300 + "@example.com", PLAN, "0", "8", "address"),
    ],
)
def test_bad_input_is_refused_with_a_sentence_and_nothing_is_stored(
    store, email, plan_id, weekday, hour, says
):
    with pytest.raises(InvalidFollow) as refused:
        store.request(email, plan_id, weekday, hour, source=None, ip=None)
    assert says in str(refused.value).lower() and len(str(refused.value)) > 20
    assert rows(store) == [] and ledger(store) == []


def test_plans_that_cannot_be_read_refuse_clearly_and_store_nothing(tmp_path, clock, backend):
    settings = newsletter_settings(
        tmp_path, backend=backend, site_url="http://127.0.0.1:9"
    )  # nothing listens
    database = Database(settings.core.database, clock=clock)
    follows = PlanFollows(database, settings)
    with pytest.raises(PlansUnavailable, match="127.0.0.1:9/exercises/plans.json"):
        ask(follows)
    assert rows(follows) == [] and ledger(follows) == []
    database.close()


def test_asking_again_soon_changes_nothing_and_later_sends_a_new_link(store, clock):
    first = ask(store).follow
    assert ask(store, weekday="3").outcome == "throttled"
    (row,) = rows(store)
    assert (row["confirm_nonce"], row["weekday"]) == (first.confirm_nonce, 0)
    clock.advance(minutes=11)
    again = ask(store, weekday="3", hour="19")
    assert again.outcome == "queued" and again.follow.id == first.id
    assert (again.follow.weekday, again.follow.hour) == (3, 19)
    assert again.follow.confirm_nonce != first.confirm_nonce
    assert len(ledger(store)) == 2
    # The first email's link no longer confirms: only the latest request's does.
    assert store.confirm(first.public_id, first.confirm_nonce) is None
    assert store.confirm(first.public_id, again.follow.confirm_nonce).status == FOLLOWING


def test_a_reader_may_follow_several_plans(store):
    ask(store)
    ask(store, plan_id=OTHER)
    assert sorted(row["plan_id"] for row in rows(store)) == sorted([PLAN, OTHER])


# Confirming ---------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "confirmed, starts",
    [
        (datetime(2026, 12, 2, 10, 0, tzinfo=UTC), MONDAY_0800),  # a Wednesday: next Monday
        (datetime(2026, 12, 7, 7, 59, tzinfo=UTC), MONDAY_0800),  # the Monday, before 08:00
        (datetime(2026, 12, 7, 8, 0, tzinfo=UTC), MONDAY_0800),  # at 08:00 exactly: at once
        (datetime(2026, 12, 7, 8, 1, tzinfo=UTC), MONDAY_0800 + timedelta(days=7)),
        # British Summer Time: 08:00 in London is 07:00 UTC.
        (datetime(2026, 6, 10, 12, 0, tzinfo=UTC), datetime(2026, 6, 15, 7, 0, tzinfo=UTC)),
        # Confirmed on the Sunday the clocks go forward: Monday 08:00 BST.
        (datetime(2026, 3, 29, 0, 30, tzinfo=UTC), datetime(2026, 3, 30, 7, 0, tzinfo=UTC)),
    ],
)
def test_confirming_starts_at_the_first_chosen_weekday_and_hour_in_the_sites_zone(
    store, confirmed, starts
):
    pending = ask(store).follow
    follow = store.confirm(pending.public_id, pending.confirm_nonce, confirmed)
    assert follow.status == FOLLOWING
    assert parse_stamp(follow.starts_at) == starts
    assert follow["starts_at"] == follow.starts_at and follow.starts == starts
    assert parse_stamp(follow.confirmed_at) == confirmed


def test_confirming_twice_changes_nothing_and_a_wrong_nonce_or_id_confirms_nothing(store, clock):
    pending = ask(store).follow
    assert store.confirm(pending.public_id, "wrong-nonce") is None
    assert store.confirm("no-such-follow", pending.confirm_nonce) is None
    assert rows(store)[0]["status"] == "unconfirmed"
    first = store.confirm(pending.public_id, pending.confirm_nonce)
    clock.advance(days=3)
    again = store.confirm(pending.public_id, pending.confirm_nonce)
    assert again == first and store.confirmation(pending.public_id, pending.confirm_nonce)[0] == (
        "already"
    )


def test_asking_again_while_following_changes_nothing_and_sends_nothing(store):
    pending = ask(store).follow
    store.confirm(pending.public_id, pending.confirm_nonce)
    result = ask(store, weekday="4")
    assert result.outcome == "already_following"
    assert rows(store)[0]["weekday"] == 0 and len(ledger(store)) == 1


def test_following_lists_only_followers_and_counts_are_per_plan(store):
    a = ask(store, "a@example.com").follow
    b = ask(store, "b@example.com", plan_id=OTHER).follow
    ask(store, "c@example.com")  # never confirms
    for pending in (a, b):
        store.confirm(pending.public_id, pending.confirm_nonce)
    following = store.following()
    assert [f.email for f in following] == ["a@example.com", "b@example.com"]
    assert following[0].weeks == 6 and following[1].weeks == 4
    assert set(store.by_ids([a.id, b.id, 999])) == {a.id, b.id}
    assert store.counts_by_plan() == {PLAN: 1, OTHER: 1}


# Ending, stopping, erasing ------------------------------------------------------------------------
def test_an_ended_follow_is_erased_after_the_keep_days_with_its_emails(store, clock):
    pending = ask(store).follow
    follow = store.confirm(pending.public_id, pending.confirm_nonce)
    ended = clock.advance(days=42)
    store.end(follow.id, ended)
    assert rows(store)[0]["status"] == "ended" and store.following() == []
    assert store.counts_by_plan() == {}
    assert store.erase_ended(ended + timedelta(days=29, hours=23)) == 0
    assert store.erase_ended(ended + timedelta(days=30, minutes=1)) == 1
    assert rows(store) == [] and ledger(store) == []


def test_the_keep_days_are_a_setting(tmp_path, blog, clock, backend):
    settings = newsletter_settings(tmp_path, backend=backend, site_url=blog.url, plan_keep_days=2)
    database = Database(settings.core.database, clock=clock)
    follows = PlanFollows(database, settings)
    pending = ask(follows).follow
    follow = follows.confirm(pending.public_id, pending.confirm_nonce)
    follows.end(follow.id, clock.now)
    assert follows.erase_ended(clock.now + timedelta(days=2, seconds=1)) == 1
    database.close()


def test_an_unconfirmed_request_is_erased_once_its_link_has_expired(store, clock):
    ask(store)
    assert store.erase_ended(clock.now + timedelta(hours=47)) == 0
    assert store.erase_ended(clock.now + timedelta(hours=48, seconds=1)) == 1
    assert rows(store) == [] and ledger(store) == []


def test_following_is_never_erased_by_the_sweep(store, clock):
    pending = ask(store).follow
    store.confirm(pending.public_id, pending.confirm_nonce)
    assert store.erase_ended(clock.now + timedelta(days=400)) == 0


def test_asking_again_after_the_end_starts_afresh(store, clock):
    pending = ask(store).follow
    follow = store.confirm(pending.public_id, pending.confirm_nonce)
    store.end(follow.id, clock.advance(days=42))
    clock.advance(days=1)
    fresh = ask(store).follow
    assert fresh.public_id != follow.public_id and fresh.status == "unconfirmed"
    assert [row["public_id"] for row in rows(store)] == [fresh.public_id]
    assert store.get(follow.public_id) is None


def test_stop_deletes_at_once_with_the_emails_owed(store):
    pending = ask(store).follow
    ask(store, plan_id=OTHER)
    assert store.stop(pending.public_id) is True
    assert store.stop(pending.public_id) is False
    assert [row["plan_id"] for row in rows(store)] == [OTHER]
    assert [row["follow_id"] for row in ledger(store)] == [rows(store)[0]["id"]]


def test_stop_all_deletes_every_plan_of_that_mailbox_only(store):
    mine = ask(store, "Reader@Example.com").follow
    ask(store, "reader@example.com", plan_id=OTHER)
    ask(store, "someone.else@example.com")
    assert store.stop_all_of(mine.public_id) == 2
    assert [row["email"] for row in rows(store)] == ["someone.else@example.com"]
    assert store.stop_all("SOMEONE.ELSE@example.com") == 1 and rows(store) == []
    assert store.stop_all("not an address") == 0 and store.stop_all_of("nobody") == 0


def test_forgetting_an_address_erases_its_plans_and_stats_count_per_plan(tmp_path, blog, backend):
    settings = newsletter_settings(tmp_path, backend=backend, site_url=blog.url)
    database = Database(settings.core.database)
    follows = PlanFollows(database, settings)
    for address in ("gone@example.com", "stays@example.com"):
        pending = ask(follows, address).follow
        follows.confirm(pending.public_id, pending.confirm_nonce)
    ask(follows, "gone@example.com", plan_id=OTHER)
    database.close()
    assert admin.stats(settings)["plans"] == {PLAN: 2}
    assert admin.forget_follows(settings, "GONE@example.com") == 2
    ask(PlanFollows(Database(settings.core.database), settings), "gone@example.com")
    subscriber, files = admin.forget(settings, "Gone@Example.com")
    assert subscriber is None and files == []
    check = Database(settings.core.database)
    left = check.db.execute("SELECT email FROM plan_follows").fetchall()
    assert [row["email"] for row in left] == ["stays@example.com"]
    check.close()
    text = admin.format_stats(admin.stats(settings))
    assert f"Following a plan: 1\n  {PLAN}  1" in text and "example.com" not in text


# The published plans ------------------------------------------------------------------------------
def test_plans_are_read_over_http_and_a_plan_that_breaks_the_contract_is_left_out(tmp_path, caplog):
    folder = tmp_path / "site"
    publish(folder, [plan(), plan(OTHER, weeks=0), {"id": "x"}, plan(), "text",
                     plan("bad-url", url="javascript:alert(1)")])  # fmt: skip
    server = serve_folder(folder)
    try:
        settings = newsletter_settings(site_url=server.url)
        plans = Plans(settings, cache_seconds=0)
        assert [p["id"] for p in plans.all()] == [PLAN]
        assert plans.get(PLAN)["weeks"] == 6 and plans.get(OTHER) is None
        assert plans.get("../../etc/passwd") is None and plans.get(None) is None
        assert "weeks must be a whole number" in caplog.text and "listed twice" in caplog.text
    finally:
        server.stop()


@pytest.mark.parametrize(
    "body, says",
    [
        (b"<html>not json</html>", "could not be read"),
        (b'{"version": 2, "plans": []}', "not version 1"),
        (b'{"version": 1, "plans": {}}', "not version 1"),
        (b"[]", "not version 1"),
        (b"\xff\xfe", "could not be read"),
    ],
)
def test_a_broken_plans_file_is_one_clear_error(tmp_path, body, says):
    folder = tmp_path / "site" / "exercises"
    folder.mkdir(parents=True)
    (folder / "plans.json").write_bytes(body)
    server = serve_folder(tmp_path / "site")
    try:
        plans = Plans(newsletter_settings(site_url=server.url), cache_seconds=0)
        with pytest.raises(PlansUnavailable, match=says):
            plans.get(PLAN)
    finally:
        server.stop()


def test_a_missing_or_huge_plans_file_is_a_clear_error(tmp_path, monkeypatch):
    server = serve_folder(tmp_path)
    try:
        plans = Plans(newsletter_settings(site_url=server.url), cache_seconds=0)
        with pytest.raises(PlansUnavailable, match="404"):
            plans.all()
        monkeypatch.setattr(plans_module, "MAX_BYTES", 100)
        publish(tmp_path, [plan()])
        with pytest.raises(PlansUnavailable, match="larger than 100 bytes"):
            plans.all()
    finally:
        server.stop()


def test_the_plans_are_cached_for_a_short_while(tmp_path):
    folder = tmp_path / "site"
    publish(folder, [plan()])
    server = serve_folder(folder)
    plans_module.forget_cache()
    try:
        settings = newsletter_settings(site_url=server.url)
        assert Plans(settings).get(PLAN) is not None
        publish(folder, [])
        assert Plans(settings).get(PLAN) is not None  # read a moment ago: not fetched again
        assert Plans(settings, cache_seconds=0).get(PLAN) is None
    finally:
        server.stop()
        plans_module.forget_cache()


# The confirmation email ---------------------------------------------------------------------------
def test_the_confirmation_email_says_what_when_what_is_kept_and_carries_the_stop_link(
    tmp_path, blog, backend
):
    with SmtpSink() as server:
        settings = newsletter_settings(
            tmp_path, backend=backend, site_url=blog.url, transport="smtp", smtp_host="127.0.0.1",
            smtp_port=server.port, smtp_security="none", smtp_timeout=2,
        )  # fmt: skip
        database = Database(settings.core.database)
        # the link's token carries its second: stopped, so the email's and the check's match
        stamp = datetime.now(UTC).timestamp()
        tokens = Tokens(settings.core.secret_key, clock=lambda: stamp)
        follows = PlanFollows(database, settings, tokens=tokens)
        pending = ask(follows, "reader@example.com", weekday="2", hour="19").follow
        sender = Sender(settings, database, tokens)
        sender.drain(timeout=10)
        (message,) = server.wait_for(1)
    assert message["Subject"] == "Confirm: follow “Side lying leg raise” by email"
    assert message["To"] == "reader@example.com"
    text = message.get_body(("plain",)).get_content()
    html = message.get_body(("html",)).get_content()
    for body in (text, html):
        assert "Wednesday at 19:00" in body and "Europe/London" in body and "6 weeks" in body
        assert "deleted 30 days after the plan" in body and "48 hours" in body
        assert follows.confirm_url(pending) in body
    stop = follows.links(pending)["stop"]
    assert message["List-Unsubscribe"] == f"<{stop}>"
    assert message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert stop in text and stop in html
    assert [row["status"] for row in ledger(follows)] == ["sent"]
    database.close()


def test_no_confirmation_email_once_confirmed_or_stopped(tmp_path, blog, backend):
    settings = newsletter_settings(tmp_path, backend=backend, site_url=blog.url)
    database = Database(settings.core.database)
    tokens = Tokens(settings.core.secret_key)
    follows = PlanFollows(database, settings, tokens=tokens)
    confirmed = ask(follows, "a@example.com").follow
    follows.confirm(confirmed.public_id, confirmed.confirm_nonce)
    stopped = ask(follows, "b@example.com").follow
    ask(follows, "c@example.com")
    follows.stop(stopped.public_id)
    counts = Sender(settings, database, tokens).drain(timeout=10)
    assert counts["sent"] == 1 and counts["skipped"] == 1
    sent = list(settings.mail.outbox.glob("*.eml"))
    assert len(sent) == 1 and b"c@example.com" in sent[0].read_bytes()
    assert MailLedger(database).counts(PLAN_CONFIRMATION)["sent"] == 1
    database.close()


def test_a_refused_address_deletes_the_pending_follow(tmp_path, blog, backend):
    with SmtpSink(refuse={"nobody@example.com"}) as server:
        settings = newsletter_settings(
            tmp_path, backend=backend, site_url=blog.url, transport="smtp", smtp_host="127.0.0.1",
            smtp_port=server.port, smtp_security="none", smtp_timeout=2,
        )  # fmt: skip
        database = Database(settings.core.database)
        follows = PlanFollows(database, settings)
        ask(follows, "nobody@example.com")
        Sender(settings, database, Tokens(settings.core.secret_key)).drain(timeout=10)
    assert rows(follows) == [] and ledger(follows) == []
    database.close()


def test_the_default_zone_is_the_blogs_timezone():
    """The hour a reader picks on the card is in the blog's TIMEZONE: the endpoint's default
    (NEWSLETTER_TIMEZONE) is the same zone."""
    import runpy

    from newsletter.settings import ROOT, Settings

    assert Settings().core.timezone == runpy.run_path(str(ROOT / "pelicanconf.py"))["TIMEZONE"]
