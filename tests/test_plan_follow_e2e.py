"""Issue 21 end to end: the seed site built with the follow form on, the real endpoint served
over HTTP, the real SMTP test server, headless Chromium. Two readers follow the seed's plan
with the card's form (no JavaScript) for Mondays at 08:00 and confirm from the email (a page,
then its button); `invoke reminders --as-of`, stepped day by day through seven weeks, sends
the first exactly six weekly emails and one closing email, in order, each once; the second
reader's stop link in week 2 (a page, then its button) ends theirs at once; the follow record
is gone 30 days after the end (the stop link then says there is nothing to stop). The card's
calendar feed (its `webcal://` link) expands to the plan's 30 sessions."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import threading
from datetime import date, timedelta
from pathlib import Path
from urllib.request import urlopen
from zoneinfo import ZoneInfo

import icalendar
import pytest
import recurring_ical_events
from werkzeug.serving import make_server

from newsletter.database import Database
from newsletter.subscriptions.app import create_app
from newsletter.subscriptions.plan_follows import PlanFollows
from newsletter.subscriptions.plans import forget_cache
from tests.conftest import ARTICLE_PATH, build_site, newsletter_settings, serve_folder
from tests.newsletter_helpers import QuietHandler
from tests.smtp_server import SmtpSink

ROOT = Path(__file__).resolve().parent.parent
CARD = "exercise-side-lying-leg-raise"
TITLE = "Side lying leg raise"
WEEKLY = [f"Week {week} of 6: {TITLE}" for week in range(1, 7)]
CLOSING = f"Done: 6 weeks of {TITLE}"


class Endpoint:
    """The newsletter app in a real threaded HTTP server on 127.0.0.1 (its URL known before the
    app is made: the settings name it)."""

    def __init__(self):
        self.holder = {}
        self.server = make_server("127.0.0.1", 0, lambda env, start: self.holder["app"](env, start),
                                  threaded=True, request_handler=QuietHandler)  # fmt: skip
        self.url = f"http://127.0.0.1:{self.server.server_port}"

    def start(self, settings):
        self.app = self.holder["app"] = create_app(settings)
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.1,), daemon=True)
        self.thread.start()

    def stop(self):
        self.server.shutdown()
        self.server.server_close()
        self.app.extensions["newsletter"].close()


@pytest.fixture
def world(tmp_path, backend):
    """The SMTP server, the static site (built with the form posting to the endpoint) and the
    endpoint, all on 127.0.0.1."""
    forget_cache()
    output = tmp_path / "output"
    output.mkdir()
    with SmtpSink() as sink:
        site = serve_folder(output)
        endpoint = Endpoint()
        settings = newsletter_settings(
            tmp_path, backend=backend, transport="smtp", smtp_host="127.0.0.1", smtp_port=sink.port,
            smtp_security="none", smtp_timeout=5, site_url=site.url, base_url=endpoint.url,
            retry_delay=0.2,
        )  # fmt: skip
        build_site(output, site.url, ISSO_URL="", NEWSLETTER_URL=f"{endpoint.url}/subscribe",
                   EXERCISE_FOLLOW_BY_EMAIL=True)  # fmt: skip
        endpoint.start(settings)
        try:
            yield settings, site, endpoint, sink
        finally:
            endpoint.stop()
            site.stop()
            forget_cache()


def environment(settings) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("NEWSLETTER_")}
    env.update(
        NEWSLETTER_DATABASE=str(settings.core.database),
        NEWSLETTER_OUTBOX=str(settings.mail.outbox),
        NEWSLETTER_SECRET_KEY=settings.core.secret_key,
        NEWSLETTER_TRANSPORT="smtp",
        NEWSLETTER_SMTP_HOST="127.0.0.1",
        NEWSLETTER_SMTP_PORT=str(settings.smtp.port),
        NEWSLETTER_SMTP_SECURITY="none",
        NEWSLETTER_FROM=settings.mail.sender,
        NEWSLETTER_SITE_URL=settings.core.site_url,
        NEWSLETTER_BASE_URL=settings.core.base_url,
        NEWSLETTER_POSTAL_ADDRESS=settings.mail.postal_address,
    )
    return env


def reminders_as_of(settings, moment: str) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "invoke", "reminders", "--as-of", moment], cwd=ROOT,
        env=environment(settings), capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def mail_to(sink, address: str) -> list:
    return [m for m in sink.wait_for(0, timeout=0) if str(m["To"]) == address]


def link_in(message, path: str) -> str:
    text = message.get_body(("plain",)).get_content()
    return re.search(rf"https?://\S+/{path}/\S+", text).group(0)


def calendar_sessions(new_context, site) -> int:
    """The sessions of the calendar feed the card's `webcal://` link subscribes to."""
    context = new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    page.goto(f"{site.url}/{ARTICLE_PATH}", wait_until="load")
    webcal = page.locator(f"#{CARD}").get_by_role("link", name="Subscribe in my calendar")
    href = webcal.get_attribute("href")
    context.close()
    assert href.startswith("webcal://")
    with urlopen("http" + href.removeprefix("webcal")) as answer:
        calendar = icalendar.Calendar.from_ical(answer.read())
    return len(recurring_ical_events.of(calendar).between(date(2020, 1, 1), date(2040, 1, 1)))


def follow_with_the_form(new_context, site, sink, address: str):
    """The card's form in Chromium without JavaScript, then the confirmation email's link: its
    page, then its button."""
    context = new_context(viewport={"width": 360, "height": 900}, java_script_enabled=False)
    page = context.new_page()
    page.goto(f"{site.url}/{ARTICLE_PATH}", wait_until="load")
    form = page.locator(f"#{CARD}-follow")
    form.get_by_label("Your email address").fill(address)
    form.get_by_label("Day", exact=True).select_option(label="Monday")
    form.get_by_label("Hour (UK time)", exact=True).select_option(label="08:00")
    form.get_by_role("button", name="Follow this plan").click()
    page.wait_for_load_state("load")
    assert "Check your inbox" in page.content()
    deadline = 100
    while not mail_to(sink, address) and deadline:
        page.wait_for_timeout(100)
        deadline -= 1
    (confirmation,) = mail_to(sink, address)
    page.goto(link_in(confirmation, "plans/confirm"), wait_until="load")
    page.get_by_role("button", name="Yes, send me the plan").click()
    page.wait_for_load_state("load")
    assert "You’re following it" in page.content()
    context.close()


def test_a_reader_follows_the_seeds_plan_for_seven_weeks(new_context, world):
    settings, site, endpoint, sink = world
    assert calendar_sessions(new_context, site) == 30  # the plan's feed: 5 a week for 6 weeks
    for address in ("ann@example.com", "zoe@example.com"):
        follow_with_the_form(new_context, site, sink, address)
    database = Database(settings.core.database)
    try:
        follows = PlanFollows(database, settings).following()
    finally:
        database.close()
    assert sorted(f.email for f in follows) == ["ann@example.com", "zoe@example.com"]
    start = follows[0].starts.astimezone(ZoneInfo(settings.core.timezone))
    assert (start.weekday(), start.hour, start.minute) == (0, 8, 0)  # a Monday, 08:00 UK time

    arrived: dict[str, list[tuple[int, str]]] = {"ann@example.com": [], "zoe@example.com": []}
    seen = len(sink.wait_for(0, timeout=0))
    for day in range(-1, 45):  # from the Sunday before to the end of the seventh week
        moment = start + timedelta(days=day, minutes=30)
        reminders_as_of(settings, f"{moment:%Y-%m-%dT%H:%M}")  # UK time, no offset
        messages = sink.wait_for(seen, timeout=0)
        for message in messages[seen:]:
            arrived[str(message["To"])].append((day, str(message["Subject"])))
        seen = len(messages)
        if day == 7:  # zoe has had week 2: she stops with its link (a page, then its button)
            (week2,) = [m for m in mail_to(sink, "zoe@example.com") if "Week 2" in m["Subject"]]
            context = new_context(viewport={"width": 360, "height": 900})
            page = context.new_page()
            page.goto(link_in(week2, "plans/stop"), wait_until="load")
            page.get_by_role("button", name="Stop this plan").click()
            page.wait_for_load_state("load")
            assert "stopped" in page.content().lower()
            context.close()

    assert arrived["ann@example.com"] == [(0, WEEKLY[0]), (7, WEEKLY[1]), (14, WEEKLY[2]),
                                          (21, WEEKLY[3]), (28, WEEKLY[4]), (35, WEEKLY[5]),
                                          (42, CLOSING)]  # fmt: skip
    assert arrived["zoe@example.com"] == [(0, WEEKLY[0]), (7, WEEKLY[1])]  # then nothing
    ann = mail_to(sink, "ann@example.com")
    assert len({m["Message-ID"] for m in ann}) == len(ann) == 8  # the confirmation and seven
    assert all(m["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click" for m in ann[1:])

    ended = start + timedelta(days=42, minutes=30)
    kept = reminders_as_of(settings, f"{ended + timedelta(days=29):%Y-%m-%dT%H:%M}")
    assert "0 follow record(s) erased" in kept
    gone = reminders_as_of(settings, f"{ended + timedelta(days=30, hours=1):%Y-%m-%dT%H:%M}")
    assert "1 follow record(s) erased" in gone
    database = Database(settings.core.database)
    try:
        assert database.db.execute("SELECT count(*) FROM plan_follows").fetchone()[0] == 0
    finally:
        database.close()
    context = new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    page.goto(link_in(ann[-1], "plans/stop"), wait_until="load")
    assert "Nothing to stop" in page.content()  # what the reader sees: nothing kept
    context.close()
