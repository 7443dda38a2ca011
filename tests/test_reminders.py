"""The weekly emails of a followed exercise plan (`newsletter.announcements.reminders`), on a
real SQLite file through the real SMTP test server, the site's plans read over HTTP: six weekly
emails and one closing email over seven weeks, each once and in order, whatever the runs; a
follow confirmed mid-week; catching up after downtime; a stop, an erasure, a hard bounce; a
SIGKILL in the middle of a run with many followers, then a re-run; `invoke reminders`."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from pathlib import Path

import pytest

from newsletter.announcements import reminders
from newsletter.database import Database, stamp
from newsletter.outgoing.ledger import MailLedger
from newsletter.subscriptions.addresses import normalize
from newsletter.subscriptions.app import create_app
from newsletter.subscriptions.plan_follows import Follow, PlanFollows
from newsletter.subscriptions.plans import forget_cache
from newsletter.subscriptions.subscribers import new_nonce, new_public_id
from tests.conftest import newsletter_settings, serve_folder
from tests.smtp_server import SmtpSink

pytestmark = [
    pytest.mark.slow,  # an SMTP server, a served site, runs in subprocesses
    pytest.mark.usefixtures("backend"),  # on both databases
]

ROOT = Path(__file__).resolve().parent.parent
MONDAY = datetime(2026, 11, 30, 8, 0, tzinfo=UTC)  # 08:00 in London (GMT in winter)
SUNDAY_NOON = MONDAY - timedelta(hours=20)
NOTE = "add a 1 kg ankle weight"
TITLE = "Side lying leg raise"
SUBJECTS = [f"Week {week} of 6: {TITLE}" for week in range(1, 7)] + [f"Done: 6 weeks of {TITLE}"]


@pytest.fixture(scope="module")
def published(site, tmp_path_factory):
    """The seed's plans.json as the built site publishes it, with a note for week 3, served
    over HTTP: `.url` (the site), `.plan` (the seed's plan)."""
    document = json.loads((site.output / "exercises" / "plans.json").read_text("utf-8"))
    document["plans"][0]["week_notes"] = [{"week": 3, "note": NOTE}]
    root = tmp_path_factory.mktemp("published")
    (root / "exercises").mkdir()
    (root / "exercises" / "plans.json").write_text(json.dumps(document), "utf-8")
    server = serve_folder(root)
    server.plan = document["plans"][0]
    yield server
    server.stop()


@pytest.fixture(autouse=True)
def _fresh_plans_cache():
    forget_cache()
    yield
    forget_cache()


def smtp_settings(tmp_path, sink, published, **changes):
    return newsletter_settings(
        tmp_path, transport="smtp", smtp_host="127.0.0.1", smtp_port=sink.port,
        smtp_security="none", smtp_timeout=5, site_url=published.url, **changes,
    )  # fmt: skip


def follow(settings, plan_id: str, address: str, at: datetime, *, weekday=0, hour=8) -> Follow:
    """A reader follows the plan (the form's request, then the confirmation) at `at`."""
    database = Database(settings.core.database, clock=lambda: at)
    try:
        follows = PlanFollows(database, settings)
        page = f"{settings.core.site_url}/2026/"
        asked = follows.request(address, plan_id, str(weekday), str(hour), source=page,
                                ip="203.0.113.9")  # fmt: skip
        return follows.confirm(asked.follow.public_id, asked.follow.confirm_nonce, at)
    finally:
        database.close()


def follows_of(settings) -> dict[str, Follow]:
    database = Database(settings.core.database)
    try:
        rows = database.db.execute("SELECT public_id FROM plan_follows").fetchall()
        follows = PlanFollows(database, settings)
        return {row[0]: follows.get(row[0]) for row in rows}
    finally:
        database.close()


def ledger_rows(settings) -> list[dict]:
    database = Database(settings.core.database)
    try:
        rows = MailLedger(database).rows()
        return [dict(row) for row in rows if row["kind"] in reminders.KINDS]
    finally:
        database.close()


def step(settings, start: datetime, end: datetime, every: timedelta, sink) -> list[tuple]:
    """Run the reminders as of each moment from `start` to `end`; (moment, subject) of each
    email the server accepted, in the order it arrived."""
    seen, arrived = len(sink.wait_for(0, timeout=0)), []
    moment = start
    while moment <= end:
        summary = reminders.run(settings, as_of=moment)
        assert summary.ok, summary.lines()
        messages = sink.wait_for(seen)
        arrived += [(moment, str(m["Subject"])) for m in messages[seen:]]
        seen = len(messages)
        moment += every
    return arrived


def text_of(message: EmailMessage) -> str:
    return message.get_body(("plain",)).get_content()


def html_of(message: EmailMessage) -> str:
    return message.get_body(("html",)).get_content()


# Seven weeks ------------------------------------------------------------------------------------
@pytest.mark.both_backends  # a promise to keep on PostgreSQL too
def test_seven_weeks_send_six_weekly_emails_and_one_closing_email_each_once_in_order(
    tmp_path, published
):
    with SmtpSink() as sink:
        settings = smtp_settings(tmp_path, sink, published)
        followed = follow(settings, published.plan["id"], "ann@example.com", SUNDAY_NOON)
        assert followed.starts == MONDAY  # the first Monday 08:00 after the confirmation
        arrived = step(settings, SUNDAY_NOON, MONDAY + timedelta(days=52), timedelta(hours=6),
                       sink)  # fmt: skip
        messages = list(sink.messages)
        # Re-runs at moments already run send nothing more.
        for again in (MONDAY, MONDAY + timedelta(days=14, hours=5), MONDAY + timedelta(days=43)):
            assert reminders.run(settings, as_of=again).tally.sent == 0
        assert len(sink.messages) == 7
    assert [subject for _, subject in arrived] == SUBJECTS
    for week, (moment, _) in enumerate(arrived, 1):  # the first run at or after its moment
        due = MONDAY + timedelta(days=7 * (week - 1))
        assert due <= moment < due + timedelta(hours=6), (week, moment)
    assert {str(m["To"]) for m in messages} == {"ann@example.com"}
    assert len({m["Message-ID"] for m in messages}) == 7
    week3 = text_of(messages[2])
    assert f"New this week: {NOTE}" in week3 and NOTE in html_of(messages[2])
    assert "This week: 5 sessions (sessions 11 to 15 of 30)." in week3
    assert all(NOTE not in text_of(m) for m in messages if m is not messages[2])
    for line in ("1. Lay on your side.", "Sets: 3", "Reps: 15–20", "How often: 5 times a week"):
        assert line in text_of(messages[0]), line
    assert published.plan["url"] in text_of(messages[0])
    closing = text_of(messages[6])
    assert "nothing more will come" in closing and "erased 30 days from now" in closing
    assert list(follows_of(settings).values())[0].status == "ended"
    assert all(row["status"] == "sent" for row in ledger_rows(settings))


def test_every_email_carries_a_one_click_stop_and_a_stop_all_link_and_no_tracking(
    tmp_path, published
):
    with SmtpSink() as sink:
        settings = smtp_settings(tmp_path, sink, published)
        followed = follow(settings, published.plan["id"], "ann@example.com", SUNDAY_NOON)
        database = Database(settings.core.database)
        try:
            links = PlanFollows(database, settings).links(followed)
        finally:
            database.close()
        reminders.run(settings, as_of=MONDAY)
        reminders.run(settings, as_of=MONDAY + timedelta(days=42))
        messages = sink.wait_for(2)
    assert [str(m["Subject"]) for m in messages] == [SUBJECTS[0], SUBJECTS[-1]]
    for message in messages:
        assert message["List-Unsubscribe"] == f"<{links['stop']}>"
        assert message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
        assert message["Auto-Submitted"] == "auto-generated"
        text, html = text_of(message), html_of(message)
        assert links["stop"] in text and links["stop_all"] in text
        assert f'href="{links["stop_all"]}"' in html and "Stop all plans" in html
        assert "<img" not in html  # no pixel
        for url in re.findall(r'href="([^"]+)"', html):  # plain links: no tracking
            assert url.startswith((settings.core.site_url, settings.core.base_url,
                                   published.plan["url"].split("/20")[0])), url  # fmt: skip
            assert "utm_" not in url and "?" not in url, url


def test_a_follow_confirmed_mid_week_starts_on_its_chosen_day(tmp_path, published):
    wednesday = MONDAY + timedelta(days=2, hours=3)
    with SmtpSink() as sink:
        settings = smtp_settings(tmp_path, sink, published)
        followed = follow(settings, published.plan["id"], "bob@example.com", wednesday,
                          weekday=0, hour=8)  # fmt: skip
        next_monday = MONDAY + timedelta(days=7)
        assert followed.starts == next_monday
        arrived = step(settings, wednesday, next_monday - timedelta(minutes=1),
                       timedelta(hours=3), sink)  # fmt: skip
        assert arrived == []  # nothing before the chosen day and hour
        assert reminders.run(settings, as_of=next_monday).tally.sent == 1
        assert [str(m["Subject"]) for m in sink.wait_for(1)] == [SUBJECTS[0]]


def test_after_downtime_only_the_current_week_goes_and_the_missed_ones_are_recorded(
    tmp_path, published
):
    """The timer stopped after week 1 and came back in week 4: week 4's email goes (not weeks 2
    and 3 on top); after the plan's end, only the closing email."""
    with SmtpSink() as sink:
        settings = smtp_settings(tmp_path, sink, published)
        follow(settings, published.plan["id"], "cy@example.com", SUNDAY_NOON)
        reminders.run(settings, as_of=MONDAY + timedelta(hours=1))
        back = reminders.run(settings, as_of=MONDAY + timedelta(days=22))  # week 4, Tuesday
        assert (back.owed.weeks, back.owed.missed, back.tally.sent) == (1, 2, 1)
        late = reminders.run(settings, as_of=MONDAY + timedelta(days=60))
        assert (late.owed.closings, late.owed.missed, late.tally.sent) == (1, 2, 1)
        subjects = [str(m["Subject"]) for m in sink.wait_for(3)]
    assert subjects == [SUBJECTS[0], SUBJECTS[3], SUBJECTS[6]]
    by_week = {row["about_id"]: row for row in ledger_rows(settings)}
    statuses = [by_week[week]["status"] for week in range(1, 8)]
    assert statuses == ["sent", "skipped", "skipped", "sent", "skipped", "skipped", "sent"]
    assert "while the reminders were not running" in by_week[2]["last_error"]


def test_a_week_whose_email_never_got_through_is_not_sent_late(tmp_path, published):
    """The server refused week 1 (temporarily) all week: in week 2 only week 2's email goes."""
    with SmtpSink(temporary={"dee@example.com": ["451"] * 4}) as sink:
        settings = smtp_settings(tmp_path, sink, published, announce_retries=3)
        follow(settings, published.plan["id"], "dee@example.com", SUNDAY_NOON)
        first = reminders.run(settings, as_of=MONDAY)
        assert not first.ok and first.pending == 1 and first.tally.sent == 0
        second = reminders.run(settings, as_of=MONDAY + timedelta(days=7))
        assert second.ok and second.tally.sent == 1 and second.tally.skipped == 1
        assert [str(m["Subject"]) for m in sink.wait_for(1)] == [SUBJECTS[1]]
    week1 = next(row for row in ledger_rows(settings) if row["about_id"] == 1)
    assert week1["status"] == "skipped" and "week 1 was over" in week1["last_error"]


# Stopping, erasing, bouncing ---------------------------------------------------------------------
def test_the_one_click_stop_between_weeks_ends_it_at_once(tmp_path, published):
    with SmtpSink() as sink:
        settings = smtp_settings(tmp_path, sink, published)
        follow(settings, published.plan["id"], "eve@example.com", SUNDAY_NOON)
        follow(settings, published.plan["id"], "fay@example.com", SUNDAY_NOON)
        reminders.run(settings, as_of=MONDAY)
        received = {str(m["To"]): m for m in sink.wait_for(2)}
        stop = received["eve@example.com"]["List-Unsubscribe"].strip("<>")
        app = create_app(settings)
        try:  # the mail provider's RFC 8058 one-click POST, to the real app
            answer = app.test_client().post(
                stop.removeprefix(settings.core.base_url),
                data="List-Unsubscribe=One-Click",
                content_type="application/x-www-form-urlencoded",
            )
        finally:
            app.extensions["newsletter"].close()
        assert answer.status_code == 200
        assert {f.email for f in follows_of(settings).values()} == {"fay@example.com"}
        assert not [row for row in ledger_rows(settings) if row["follow_id"] == 1]  # erased
        arrived = step(settings, MONDAY + timedelta(days=1), MONDAY + timedelta(days=43),
                       timedelta(days=1), sink)  # fmt: skip
    assert len(arrived) == 6  # fay's weeks 2-6 and closing; nothing more to eve
    assert {str(m["To"]) for m in sink.messages[2:]} == {"fay@example.com"}


def test_the_follow_record_is_erased_30_days_after_the_end(tmp_path, published):
    with SmtpSink() as sink:
        settings = smtp_settings(tmp_path, sink, published)
        follow(settings, published.plan["id"], "gus@example.com", SUNDAY_NOON)
        end = MONDAY + timedelta(days=42)
        step(settings, MONDAY, end, timedelta(days=7), sink)
        assert [f.status for f in follows_of(settings).values()] == ["ended"]
        reminders.run(settings, as_of=end + timedelta(days=29, hours=23))
        assert len(follows_of(settings)) == 1  # kept 30 days
        erased = reminders.run(settings, as_of=end + timedelta(days=30, minutes=1))
        assert erased.erased == 1
        assert follows_of(settings) == {} and ledger_rows(settings) == []  # and its emails' rows
        assert len(sink.messages) == 7


def test_a_hard_bounce_stops_the_follow(tmp_path, published):
    with SmtpSink(refuse=["gone@example.com"]) as sink:
        settings = smtp_settings(tmp_path, sink, published)
        follow(settings, published.plan["id"], "gone@example.com", SUNDAY_NOON)
        follow(settings, published.plan["id"], "here@example.com", SUNDAY_NOON)
        first = reminders.run(settings, as_of=MONDAY)
        assert first.tally.bounced == 1 and first.tally.sent == 1
        assert {f.email for f in follows_of(settings).values()} == {"here@example.com"}
        later = reminders.run(settings, as_of=MONDAY + timedelta(days=7))
        assert later.tally.sent == 1 and later.tally.bounced == 0
        transactions = sink.transactions
    assert transactions == 3  # the refused address was tried once, never again
    assert [str(m["To"]) for m in sink.messages] == ["here@example.com"] * 2


def test_an_unreadable_site_sends_nothing_and_the_emails_wait(tmp_path, published):
    with SmtpSink() as sink:
        settings = smtp_settings(tmp_path, sink, published)
        follow(settings, published.plan["id"], "hal@example.com", SUNDAY_NOON)
        down = settings.replace(site_url="http://127.0.0.1:9")  # nothing listens there
        summary = reminders.run(down, as_of=MONDAY)
        assert not summary.ok and summary.pending == 1 and summary.tally.sent == 0
        assert "could not be read" in summary.lines()[1]
        assert [row["attempts"] for row in ledger_rows(settings)] == [0]  # no attempt counted
        assert reminders.run(settings, as_of=MONDAY + timedelta(hours=1)).tally.sent == 1
        assert [str(m["Subject"]) for m in sink.wait_for(1)] == [SUBJECTS[0]]


def test_a_second_run_waits_for_nobody_and_announce_does_not_block_it(tmp_path, published):
    with SmtpSink() as sink:
        settings = smtp_settings(tmp_path, sink, published)
        follow(settings, published.plan["id"], "ivy@example.com", SUNDAY_NOON)
        database = Database(settings.core.database)  # the locks as another process takes them
        held = database.run_lock("reminders")
        held.acquire()
        try:
            with pytest.raises(reminders.RemindersLocked, match="another reminders run"):
                reminders.run(settings, as_of=MONDAY)
        finally:
            held.release()
        announcing = database.run_lock("announce")
        announcing.acquire()
        try:
            assert reminders.run(settings, as_of=MONDAY).tally.sent == 1
        finally:
            announcing.release()
            database.close()


# Text from the site reaches no email's structure -------------------------------------------------
def test_the_plans_text_is_text_in_the_emails(tmp_path, published):
    """plans.json comes from outside (the blog, over HTTP): a title with a line break and a
    header, markup in a step and a note arrive as words, never as headers or HTML."""
    hostile = dict(published.plan)
    hostile.update(
        title="Leg raise\r\nBcc: victim@example.com <b>bold</b>",
        steps=['<script>alert("x")</script> Lie down.'],
        week_notes=[{"week": 1, "note": '<img src="https://tracker.example/p.gif">'}],
    )
    root = tmp_path / "site"
    (root / "exercises").mkdir(parents=True)
    (root / "exercises" / "plans.json").write_text(
        json.dumps({"version": 1, "plans": [hostile]}), "utf-8"
    )
    server = serve_folder(root)
    try:
        with SmtpSink() as sink:
            settings = smtp_settings(tmp_path, sink, server)
            follow(settings, hostile["id"], "jo@example.com", SUNDAY_NOON)
            reminders.run(settings, as_of=MONDAY)
            (message,) = sink.wait_for(1)
    finally:
        server.stop()
    assert str(message["Subject"]) == "Week 1 of 6: Leg raise Bcc: victim@example.com <b>bold</b>"
    assert message["Bcc"] is None and "victim" not in str(sink.envelopes)
    html = html_of(message)
    assert "<script>" not in html and "&lt;script&gt;" in html
    assert "<img" not in html and "&lt;img" in html
    assert '<img src="https://tracker.example/p.gif">' in text_of(message)  # plain text: words


# The moment -------------------------------------------------------------------------------------
def test_as_of_is_iso_8601_and_naive_means_the_sites_time_zone():
    zone = "Europe/London"
    assert reminders.parse_moment("2026-11-30T08:00", zone) == MONDAY  # GMT in winter
    summer = reminders.parse_moment("2026-07-06 08:00", zone)
    assert summer == datetime(2026, 7, 6, 7, 0, tzinfo=UTC)  # BST: one hour ahead
    assert reminders.parse_moment("2026-11-30T09:00+01:00", zone) == MONDAY
    assert reminders.parse_moment("2026-11-30T08:00Z", zone) == MONDAY
    for bad in ("next monday", "2026-13-01T08:00", "", "2026-11-30T08:00\n--x"):
        with pytest.raises(ValueError, match="ISO 8601"):
            reminders.parse_moment(bad, zone)


# `invoke reminders`, and a SIGKILL -------------------------------------------------------------
def environment(settings) -> dict[str, str]:
    """The settings as NEWSLETTER_* variables, for `invoke reminders` in a subprocess."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("NEWSLETTER_")}
    env.update(
        NEWSLETTER_DATABASE=str(settings.core.database),
        NEWSLETTER_OUTBOX=str(settings.mail.outbox),
        NEWSLETTER_SECRET_KEY=settings.core.secret_key,
        NEWSLETTER_TRANSPORT=settings.mail.transport,
        NEWSLETTER_SMTP_HOST="127.0.0.1",
        NEWSLETTER_SMTP_PORT=str(settings.smtp.port),
        NEWSLETTER_SMTP_SECURITY="none",
        NEWSLETTER_SMTP_WORKERS=str(settings.smtp.workers),
        NEWSLETTER_FROM=settings.mail.sender,
        NEWSLETTER_SITE_URL=settings.core.site_url,
        NEWSLETTER_BASE_URL=settings.core.base_url,
        NEWSLETTER_POSTAL_ADDRESS=settings.mail.postal_address,
        NEWSLETTER_ANNOUNCE_RETRY_DELAY="0.05",
    )
    return env


def invoke_reminders(settings, *args, **popen) -> subprocess.Popen:
    command = [sys.executable, "-m", "invoke", "reminders", *args]
    return subprocess.Popen(command, cwd=ROOT, env=environment(settings), text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, **popen)  # fmt: skip


def test_invoke_reminders_as_of_prints_one_line_and_refuses_a_bad_moment(tmp_path, published):
    with SmtpSink() as sink:
        settings = smtp_settings(tmp_path, sink, published)
        follow(settings, published.plan["id"], "kim@example.com", SUNDAY_NOON)
        run = invoke_reminders(settings, "--as-of", "2026-11-30T08:30")  # London time
        out, _ = run.communicate(timeout=60)
        assert run.returncode == 0, out
        assert out.strip().splitlines() == [
            "Plan reminders as of 2026-11-30 08:30 UTC: owed 1 weekly and 0 closing email(s); "
            "sent 1, skipped 0, failed 0 (0 bounced), still pending 0; 0 plan(s) ended, "
            "0 follow record(s) erased."
        ]
        bad = invoke_reminders(settings, "--as-of", "monday")
        out, _ = bad.communicate(timeout=60)
        assert bad.returncode == 1 and "No reminders sent: --as-of 'monday'" in out
        assert [str(m["Subject"]) for m in sink.wait_for(1)] == [SUBJECTS[0]]


def add_followers_bulk(settings, plan_id: str, count: int, starts: datetime) -> None:
    """Many confirmed follows at once (one transaction), for the crash test."""
    database = Database(settings.core.database)
    try:
        now = stamp(starts - timedelta(days=1))
        with database.transaction() as db:
            db.executemany(
                "INSERT INTO plan_follows (public_id, email, email_key, plan_id, weekday, hour,"
                " weeks, status, confirm_nonce, created_at, confirmed_at, starts_at, consent_at)"
                " VALUES (?, ?, ?, ?, 0, 8, 6, 'following', ?, ?, ?, ?, ?)",
                [
                    (new_public_id(), *normalize(f"reader{n}@example.com"), plan_id, new_nonce())
                    + (now, now, stamp(starts), now)
                    for n in range(count)
                ],
            )
    finally:
        database.close()


@pytest.mark.both_backends  # a promise to keep on PostgreSQL too
def test_sigkill_in_the_middle_of_a_run_then_a_rerun_sends_each_email_once(tmp_path, published):
    workers, count = 4, 1500
    with SmtpSink(parse=False) as sink:
        settings = smtp_settings(tmp_path, sink, published, smtp_workers=workers)
        add_followers_bulk(settings, published.plan["id"], count, MONDAY)
        run = invoke_reminders(settings, "--as-of", "2026-11-30T08:05")
        deadline = time.monotonic() + 60
        while sum(sink.accepted.values()) < 400 and time.monotonic() < deadline:
            time.sleep(0.005)
        os.kill(run.pid, signal.SIGKILL)
        run.wait(10)
        killed_at = sum(sink.accepted.values())
        assert 400 <= killed_at < count, "the run must die in the middle"
        again = invoke_reminders(settings, "--as-of", "2026-11-30T08:10")  # the lock died too
        out, _ = again.communicate(timeout=120)
        assert again.returncode == 0, out
        week1 = dict(sink.accepted)
        later = invoke_reminders(settings, "--as-of", "2026-12-07T08:05")  # week 2: all of it
        out, _ = later.communicate(timeout=120)
        assert later.returncode == 0, out
    expected = {f"reader{n}@example.com" for n in range(count)}
    assert set(week1) == expected  # everyone has week 1
    assert 0 <= sum(week1.values()) - count <= workers  # at most the messages in flight
    assert all(sink.accepted[address] - week1[address] == 1 for address in expected)


def test_the_chosen_hour_holds_across_the_change_to_summer_time(tmp_path, published):
    """London moves its clocks on 28 March 2027: the Monday 08:00 emails stay at 08:00 there
    (07:00 UTC from then on), not 09:00."""
    with SmtpSink() as sink:
        settings = smtp_settings(tmp_path, sink, published)
        follow(settings, published.plan["id"], "lee@example.com", datetime(2027, 3, 14, tzinfo=UTC))
        arrived = step(settings, datetime(2027, 3, 15, 7, tzinfo=UTC),
                       datetime(2027, 3, 29, 8, tzinfo=UTC), timedelta(hours=1), sink)  # fmt: skip
    assert arrived == [
        (datetime(2027, 3, 15, 8, tzinfo=UTC), SUBJECTS[0]),  # GMT
        (datetime(2027, 3, 22, 8, tzinfo=UTC), SUBJECTS[1]),
        (datetime(2027, 3, 29, 7, tzinfo=UTC), SUBJECTS[2]),  # BST: 08:00 in London
    ]
