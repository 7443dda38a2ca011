"""The exercise card's "Follow this plan by email" form and calendar link in real headless
Chromium: accessible (axe, WCAG 2 A/AA and the landmark rules) at 360 and 1280 px, light and
dark; fits 320 px; works without JavaScript, posting exactly the fields the endpoint's route
reads to `{NEWSLETTER_URL base}/plans/follow`; with JavaScript, "Subscribe in my calendar" sits
beside "Add to my calendar", whose form opens under them (next by Tab); the linked feed expands
to the plan. Screenshots in tests/artifacts/exercise-follow-*.png."""

from __future__ import annotations

import functools
import http.server
import json
import threading
from datetime import date
from urllib.parse import parse_qs, urlsplit
from urllib.request import urlopen

import icalendar
import pytest
import recurring_ical_events
from axe_playwright_python.sync_playwright import Axe

from tests.conftest import QuietHandler, build_site, write_article
from tests.test_exercise_plans import NOTED_BLOCK, PLAN_ID

WCAG = {"runOnly": {"type": "tag", "values": ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa"]}}
LANDMARKS = {"runOnly": {"type": "rule", "values": ["landmark-unique", "region"]}}
CARD = "exercise-side-lying-leg-raise"
PLAN = f"{PLAN_ID}-side-lying-leg-raise"
PATH = "2026/follow/"


class Capture(QuietHandler):
    """The built site for GET; a POST to /plans/follow is recorded (path, type, fields)."""

    posts: list  # set per server

    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length", 0))).decode("utf-8")
        self.posts.append(
            (self.path, self.headers.get("Content-Type"), parse_qs(body, keep_blank_values=True))
        )
        self.send_response(200)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.end_headers()
        self.wfile.write(b"<!doctype html><title>Thanks</title><p>Thanks")


@pytest.fixture(scope="module")
def follow_site(tmp_path_factory):
    """An article with the seed's block and two week notes, built and served by a server that
    records the form's POSTs (the newsletter's endpoint stands at the same origin)."""
    root = tmp_path_factory.mktemp("follow-site")
    content = tmp_path_factory.mktemp("follow-content")
    for sub in ("articles", "pages", "images"):
        (content / sub).mkdir()
    handler = type("Handler", (Capture,), {"posts": []})
    httpd = http.server.ThreadingHTTPServer(
        ("127.0.0.1", 0), functools.partial(handler, directory=str(root))
    )
    threading.Thread(target=httpd.serve_forever, args=(0.05,), daemon=True).start()
    url = f"http://127.0.0.1:{httpd.server_address[1]}"
    body = "## Train\n\nMy go-to exercise is the **side lying leg raise**.\n\n" + NOTED_BLOCK
    write_article(content, "follow", "Follow the plan", "2026-11-23 18:00", id=PLAN_ID,
                  slug="follow", summary="A plan.", body=body)  # fmt: skip
    site = build_site(
        root,
        url,
        PATH=content,
        NEWSLETTER_URL=f"{url}/subscribe",
        ISSO_URL="",
        EXERCISE_FOLLOW_BY_EMAIL=True,
    )
    site.posts = handler.posts
    yield site
    httpd.shutdown()
    httpd.server_close()


def open_article(new_context, site, *, width=1280, scheme="light", javascript=True):
    context = new_context(
        viewport={"width": width, "height": 900}, color_scheme=scheme,
        java_script_enabled=javascript,
    )  # fmt: skip
    page = context.new_page()
    requests = []
    page.on("request", lambda request: requests.append(request.url))
    page.goto(f"{site.url}/{PATH}", wait_until="networkidle")
    return page, requests


def overflow(page) -> int:
    return page.evaluate(
        "document.documentElement.scrollWidth - document.documentElement.clientWidth"
    )


@pytest.mark.parametrize("scheme", ["light", "dark"])
@pytest.mark.parametrize("width", [360, 1280])
def test_the_follow_form_is_accessible(new_context, follow_site, artifacts, width, scheme):
    page, requests = open_article(new_context, follow_site, width=width, scheme=scheme)
    form = page.locator(f"#{CARD}-follow")
    assert form.get_by_role("heading", name="Follow this plan by email").is_visible()
    for label in ("Your email address", "Day", "Hour (UK time)", "Also send me new articles"):
        assert form.get_by_label(label, exact=True).is_visible(), label
    assert form.get_by_label("Leave this field empty").is_hidden()  # the honeypot
    form.scroll_into_view_if_needed()
    page.locator(f"#{CARD}").screenshot(path=artifacts / f"exercise-follow-{width}-{scheme}.png")
    assert overflow(page) <= 0, f"horizontal scroll at {width}px"
    assert {urlsplit(url).hostname for url in requests} == {"127.0.0.1"}
    results = Axe().run(page, options=WCAG)
    assert results.violations_count == 0, results.generate_report()
    results = Axe().run(page, options=LANDMARKS)
    assert results.violations_count == 0, results.generate_report()


@pytest.mark.parametrize("width", [320, 360, 1280])
def test_the_card_fits_from_320_px(new_context, follow_site, artifacts, width):
    page, _ = open_article(new_context, follow_site, width=width)
    card = page.locator(f"#{CARD}")
    assert overflow(page) <= 0, f"horizontal scroll at {width}px"
    box = card.bounding_box()
    targets = "input[type=email], select, button, .exercise-actions a, label.exercise-tick"
    for control in card.locator(targets).all():
        inner = control.bounding_box()
        assert box["x"] <= inner["x"] and inner["x"] + inner["width"] <= box["x"] + box["width"]
        assert inner["height"] >= 24, "a target a finger can hit"
    card.screenshot(path=artifacts / f"exercise-follow-card-{width}.png")
    assert page.locator(".exercise-weeks").get_by_text("add a 1 kg ankle weight").is_visible()


def test_without_javascript_the_form_posts_the_fields_the_endpoint_reads(new_context, follow_site):
    page, _ = open_article(new_context, follow_site, width=360, javascript=False)
    form = page.locator(f"#{CARD}-follow")
    follow_site.posts.clear()
    form.get_by_label("Your email address").fill("reader@example.org")
    form.get_by_label("Day", exact=True).select_option(label="Thursday")
    form.get_by_label("Hour (UK time)", exact=True).select_option(label="18:00")
    form.get_by_label("Also send me new articles").check()
    form.get_by_role("button", name="Follow this plan").click()
    page.wait_for_url(f"{follow_site.url}/plans/follow")
    assert page.locator("p").text_content() == "Thanks"
    (post,) = follow_site.posts
    path, kind, fields = post
    assert (path, kind) == ("/plans/follow", "application/x-www-form-urlencoded")
    assert fields == {
        "email": ["reader@example.org"],
        "weekday": ["3"],
        "hour": ["18"],
        "newsletter": ["1"],
        "plan": [PLAN],
        "source": [f"{follow_site.url}/{PATH}"],
        "website": [""],
    }
    plans = json.loads((follow_site.output / "exercises" / "plans.json").read_text())
    assert fields["plan"][0] in [plan["id"] for plan in plans["plans"]]

    page.go_back(wait_until="networkidle")
    form.get_by_label("Your email address").fill("other@example.org")
    if form.get_by_label("Also send me new articles").is_checked():  # the browser restored it
        form.get_by_label("Also send me new articles").uncheck()
    form.get_by_role("button", name="Follow this plan").click()
    page.wait_for_url(f"{follow_site.url}/plans/follow")
    fields = follow_site.posts[-1][2]
    assert "newsletter" not in fields, "unticked: not sent"
    assert (fields["weekday"], fields["hour"]) in ((["0"], ["8"]), (["3"], ["18"]))


def test_the_form_refuses_a_missing_address_before_sending(new_context, follow_site):
    page, _ = open_article(new_context, follow_site, javascript=False)
    follow_site.posts.clear()
    page.locator(f"#{CARD}-follow").get_by_role("button", name="Follow this plan").click()
    assert page.url == f"{follow_site.url}/{PATH}"
    assert page.evaluate(f"document.getElementById('{CARD}-follow-email').validity.valueMissing")
    assert follow_site.posts == []


def test_the_calendar_link_sits_beside_the_download_and_its_feed_expands(new_context, follow_site):
    page, _ = open_article(new_context, follow_site)
    card = page.locator(f"#{CARD}")
    row = card.locator(".exercise-actions")
    assert row.count() == 1
    names = row.evaluate("row => [...row.children].map(el => el.textContent.trim())")
    assert names == ["Print this exercise", "Subscribe in my calendar", "Add to my calendar"]
    link = row.get_by_role("link", name="Subscribe in my calendar")
    href = link.get_attribute("href")
    assert href == f"webcal://{urlsplit(follow_site.url).netloc}/exercises/{PLAN}.ics"
    row.get_by_role("button", name="Add to my calendar").focus()
    page.keyboard.press("Enter")
    calendar_form = page.locator(f"#{CARD}-calendar")
    calendar_form.wait_for()
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.type") == "date", "its form comes next"
    order = card.evaluate(
        "card => [...card.children].map(el => el.className || el.tagName.toLowerCase())"
    )
    at = order.index("exercise-actions")
    assert order[at + 1 : at + 3] == ["exercise-calendar", "exercise-follow"]
    with urlopen("http" + href.removeprefix("webcal")) as answer:  # served as a static file
        raw = answer.read()
    calendar = icalendar.Calendar.from_ical(raw)
    found = recurring_ical_events.of(calendar).between(date(2020, 1, 1), date(2040, 1, 1))
    assert len(found) == 30
    assert "Week 3: add a 1 kg ankle weight" in str(found[0]["DESCRIPTION"])
