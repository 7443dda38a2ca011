"""The exercise card in real headless Chromium: accessible with its calendar form open (light and
dark, phone and desktop), "Print this exercise" prints the card alone, "Add to my calendar"
downloads an RFC 5545 file that icalendar parses and recurring-ical-events expands to the plan,
a hostile exercise name stays text and is escaped and folded right, and the calendar code costs
no request before the reader asks for it."""

from __future__ import annotations

import re
from datetime import date, datetime, time, timedelta

import icalendar
import pytest
import recurring_ical_events
from axe_playwright_python.sync_playwright import Axe

from tests.conftest import ARTICLE_PATH, build_site, serve_folder, write_article

WCAG = {"runOnly": {"type": "tag", "values": ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa"]}}
CARD = "exercise-side-lying-leg-raise"
STEPS = [
    "Lay on your side.",
    "Straighten your top leg.",
    "Raise and lower your leg slowly, keeping your toe pointing at the ground.",
]
HOSTILE = '<script>alert(1)</script> "quotes", commas; semicolons\\ and emoji 😀'
WEEKDAYS = ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"]
# Records any alert() and any script that a card's text would run.
TRAP = "window.alert = () => { window.pwned = true; };"


def open_article(new_context, url, *, width=1280, scheme="light", javascript=True):
    """The page in a fresh context, and every request it made (url, resource type)."""
    context = new_context(
        viewport={"width": width, "height": 900},
        color_scheme=scheme,
        java_script_enabled=javascript,
        accept_downloads=True,
    )
    page = context.new_page()
    page.add_init_script(TRAP)
    requests = []
    page.on("request", lambda request: requests.append((request.url, request.resource_type)))
    page.goto(url, wait_until="networkidle")
    return page, requests


def open_form(page, card=CARD):
    toggle = page.locator(f"#{card}").get_by_role("button", name="Add to my calendar")
    toggle.click()
    form = page.locator(f"#{card}-calendar")
    form.wait_for()
    assert toggle.get_attribute("aria-expanded") == "true"
    assert toggle.get_attribute("aria-controls") == f"{card}-calendar"
    return form


def choose(form, days):
    """Tick exactly `days` (full weekday names) in the form."""
    for name in WEEKDAYS:
        form.get_by_role("checkbox", name=name).set_checked(name in days)


def download(page, form):
    with page.expect_download() as info:
        form.get_by_role("button", name="Download .ics").click()
    saved = info.value
    return saved.suggested_filename, open(saved.path(), "rb").read()


def unfold(raw: bytes) -> list[str]:
    """The logical lines of an iCalendar file (RFC 5545 3.1: CRLF + one space continues)."""
    return raw.decode("utf-8").replace("\r\n ", "").split("\r\n")


def check_physical_lines(raw: bytes) -> None:
    assert raw.endswith(b"\r\n")
    assert b"\n" not in raw.replace(b"\r\n", b"") and b"\r" not in raw.replace(b"\r\n", b"")
    for line in raw.split(b"\r\n"):
        assert len(line) <= 75, line
        line.decode("utf-8")  # strict: no folding inside a multi-byte character


def one_event(raw: bytes):
    calendar = icalendar.Calendar.from_ical(raw)
    events = list(calendar.walk("VEVENT"))
    assert len(events) == 1
    return calendar, events[0]


@pytest.mark.parametrize("scheme", ["light", "dark"])
@pytest.mark.parametrize("width", [360, 1280])
def test_card_with_its_calendar_form_is_accessible(new_context, site, artifacts, width, scheme):
    page, _ = open_article(new_context, f"{site.url}/{ARTICLE_PATH}", width=width, scheme=scheme)
    card = page.locator(f"#{CARD}")
    assert card.get_by_role("heading", name="Side lying leg raise").is_visible()
    assert card.locator(".exercise-steps li").all_text_contents() == STEPS
    tiles = card.locator(".exercise-prescription > div")
    assert tiles.count() == 4
    if width == 360:  # the four tiles reflow to two a row on a phone
        tops = {round(tiles.nth(i).bounding_box()["y"]) for i in range(4)}
        assert len(tops) == 2
    open_form(page)
    card.screenshot(path=artifacts / f"exercise-card-{width}-{scheme}.png")
    overflow = page.evaluate(
        "document.documentElement.scrollWidth - document.documentElement.clientWidth"
    )
    assert overflow <= 0, f"horizontal scroll of {overflow}px at {width}px"
    results = Axe().run(page, options=WCAG)
    assert results.violations_count == 0, results.generate_report()


def test_the_calendar_form_by_keyboard_with_its_defaults(new_context, site):
    page, _ = open_article(new_context, f"{site.url}/{ARTICLE_PATH}")
    toggle = page.get_by_role("button", name="Add to my calendar")
    toggle.focus()
    assert page.evaluate("getComputedStyle(document.activeElement).outlineStyle") == "solid"
    page.keyboard.press("Enter")
    form = page.locator(f"#{CARD}-calendar")
    form.wait_for()
    assert toggle.get_attribute("aria-expanded") == "true"
    today = page.evaluate("(d => [d.getFullYear(), d.getMonth() + 1, d.getDate()])(new Date())")
    assert form.get_by_label("Start on").input_value() == "{:04d}-{:02d}-{:02d}".format(*today)
    assert form.get_by_label("Time", exact=True).input_value() == "08:00"
    assert form.get_by_role("group", name="On these days").is_visible()
    ticked = [name for name in WEEKDAYS if form.get_by_role("checkbox", name=name).is_checked()]
    assert ticked == WEEKDAYS[:5]  # 5 a week: Monday to Friday
    page.keyboard.press("Tab")  # into the form, in order: the date comes next
    assert page.evaluate("document.activeElement.type") == "date"
    toggle.focus()
    page.keyboard.press("Space")
    assert form.is_hidden() and toggle.get_attribute("aria-expanded") == "false"
    page.keyboard.press("Enter")
    assert form.is_visible() and toggle.get_attribute("aria-expanded") == "true"
    choose(form, [])
    form.get_by_role("button", name="Download .ics").press("Enter")
    assert form.get_by_role("status").text_content() == "Pick at least one day."
    assert page.evaluate("document.activeElement.getAttribute('aria-label')") == "Monday"


def test_calendar_code_costs_no_request_before_it_is_used(new_context, site):
    page, requests = open_article(new_context, f"{site.url}/{ARTICLE_PATH}")
    before_images = [(url, kind) for url, kind in requests if kind != "image"]
    assert [kind for _, kind in before_images] == ["document", "stylesheet", "script"]
    assert before_images[2][0].endswith("/js/site.js")
    page.evaluate("window.scrollTo(0, document.body.scrollHeight)")
    page.wait_for_load_state("networkidle")
    assert not [url for url, _ in requests if "exercise-calendar" in url]
    count = len(requests)
    open_form(page)
    assert [url for url, _ in requests[count:]] == [f"{site.url}/theme/js/exercise-calendar.js"]
    page.get_by_role("button", name="Add to my calendar").click()  # closes: no second load
    page.get_by_role("button", name="Add to my calendar").click()
    assert len(requests) == count + 1


def test_print_this_exercise_prints_the_card_alone_on_one_page(new_context, site, artifacts):
    page, _ = open_article(new_context, f"{site.url}/{ARTICLE_PATH}", width=800)
    page.evaluate("() => { window.print = () => { window.printed = (window.printed || 0) + 1; }; }")
    open_form(page)  # an open form does not print either
    page.get_by_role("button", name="Print this exercise").click()
    assert page.evaluate("window.printed") == 1
    page.emulate_media(media="print")
    card = page.locator(f"#{CARD}")
    assert card.is_visible()
    for selector in (
        ".site-header",
        ".site-footer",
        ".post-header",
        ".hero",
        ".post-footer",
        ".fact-box",
        f"#{CARD}-calendar",
        ".exercise-actions",
        ".exercise-follow",
    ):
        assert not page.locator(selector).first.is_visible(), selector
    others = page.evaluate(
        """card => [...document.querySelectorAll('.post-body > *')]
            .filter(el => el !== card && getComputedStyle(el).display !== 'none')
            .map(el => el.outerHTML.slice(0, 60))""",
        card.element_handle(),
    )
    assert others == []
    assert card.evaluate("el => getComputedStyle(el).breakInside") == "avoid"
    box = card.bounding_box()
    assert box["y"] < 40 and box["height"] < 900, box  # at the top; an A4 page is ~1,050 px
    page.screenshot(path=artifacts / "exercise-print-card.png", full_page=True)
    height = page.evaluate("document.body.getBoundingClientRect().height")
    assert height <= box["y"] + box["height"] + 80, "nothing else is laid out after the card"
    page.evaluate("window.dispatchEvent(new Event('afterprint'))")
    assert page.locator(".post-header").is_visible() and page.locator(".fact-box").is_visible()
    assert not page.locator(".site-header").is_visible()


def test_without_javascript_the_card_prints_with_the_article_and_has_no_controls(
    new_context, site, artifacts
):
    """Without JavaScript: no print or calendar button, only the follow form's (a plain form:
    tests/test_exercise_follow_browser.py); the plan's calendar link is there; neither prints."""
    page, requests = open_article(
        new_context, f"{site.url}/{ARTICLE_PATH}", width=800, javascript=False
    )
    card = page.locator(f"#{CARD}")
    assert card.get_by_role("button").all_text_contents() == ["Follow this plan"]
    assert card.locator(".exercise-follow").get_by_role("button").count() == 1
    assert card.locator(".exercise-actions").get_by_role("link").all_text_contents() == [
        "Subscribe in my calendar"
    ]
    page.emulate_media(media="print")
    assert card.is_visible() and page.locator(".post-header").is_visible()
    for selector in (".site-header", ".share", ".stay-tuned", ".comments", ".site-footer",
                     ".exercise-actions", ".exercise-follow"):  # fmt: skip
        assert not page.locator(selector).first.is_visible(), selector
    assert card.evaluate("el => getComputedStyle(el).breakInside") == "avoid"
    card.screenshot(path=artifacts / "exercise-print-article-card.png")


def test_add_to_my_calendar_downloads_the_plan(new_context, site):
    page, _ = open_article(new_context, f"{site.url}/{ARTICLE_PATH}")
    form = open_form(page)
    form.get_by_label("Start on").fill("2026-12-02")  # a Wednesday
    form.get_by_label("Time", exact=True).fill("18:30")
    choose(form, ["Tuesday", "Thursday", "Saturday"])
    name, raw = download(page, form)
    assert name == "side-lying-leg-raise.ics"
    check_physical_lines(raw)
    lines = unfold(raw)
    assert lines[:2] == ["BEGIN:VCALENDAR", "VERSION:2.0"]
    assert "DTSTART:20261203T183000" in lines  # floating, the first Thursday on/after the date
    assert "RRULE:FREQ=WEEKLY;BYDAY=TU,TH,SA;COUNT=30" in lines
    stamp = next(line for line in lines if line.startswith("DTSTAMP:"))
    assert re.fullmatch(r"DTSTAMP:\d{8}T\d{6}Z", stamp)

    calendar, event = one_event(raw)
    assert calendar["PRODID"]
    assert str(event["UID"]).endswith("@127.0.0.1")
    assert str(event["SUMMARY"]) == "Side lying leg raise"
    url = f"{site.url}/{ARTICLE_PATH}#{CARD}"
    assert str(event["URL"]) == url
    description = str(event["DESCRIPTION"])
    assert "Targets: gluteus medius, hip" in description
    numbered = "\n".join(f"{n}. {step}" for n, step in enumerate(STEPS, 1))
    assert numbered in description
    for fact in ("Sets: 3", "Reps: 15–20", "How often: 5 times a week", "For how long: 6 weeks"):
        assert fact in description
    assert description.endswith(url)
    [alarm] = event.walk("VALARM")
    assert str(alarm["ACTION"]) == "DISPLAY" and alarm["TRIGGER"].dt.total_seconds() < 0

    sessions = recurring_ical_events.of(calendar).between(date(2020, 1, 1), date(2035, 1, 1))
    starts = sorted(session["DTSTART"].dt for session in sessions)
    assert len(starts) == 30
    assert starts[0] == datetime(2026, 12, 3, 18, 30)
    assert all(start.tzinfo is None for start in starts), "floating local times"
    assert {start.isoweekday() for start in starts} == {2, 4, 6}
    assert {start.time() for start in starts} == {time(18, 30)}
    assert starts[-1] == datetime(2027, 2, 9, 18, 30)  # Thu, Sat, then 9 weeks of 3, then Tue
    assert all(session["DTEND"].dt - session["DTSTART"].dt for session in sessions)


@pytest.fixture
def hostile_site(tmp_path, content_dir):
    """A tiny site whose one article has an exercise with a hostile name, built by the plugin."""
    steps = ["Breathe " + "😀" * 40, 'Say "a, b; c\\d" out loud.']
    block = "\n".join(
        [
            "```exercise",
            f"name: {HOSTILE}",
            "targets: hip, knee",
            "steps:",
            *(f"  - {step}" for step in steps),
            "sets: 2",
            "reps: 10",
            "per week: 3",
            "weeks: 4",
            "```",
        ]
    )
    write_article(content_dir, "hostile", "Hostile", "2026-11-01 10:00", body=block, slug="hostile")
    server = serve_folder(tmp_path / "site")
    build_site(server.root, server.url, PATH=content_dir, ISSO_URL="")
    yield server, steps
    server.stop()


def test_a_hostile_exercise_name_stays_text_and_is_escaped_in_the_ics(new_context, hostile_site):
    server, steps = hostile_site
    page, _ = open_article(new_context, f"{server.url}/2026/hostile/")
    card = page.locator("section.exercise")
    assert card.locator(".exercise-name").text_content() == HOSTILE
    assert card.locator("script").count() == 0
    assert page.evaluate("window.pwned") is None
    card_id = card.get_attribute("id")
    form = open_form(page, card_id)
    ticked = [name for name in WEEKDAYS if form.get_by_role("checkbox", name=name).is_checked()]
    assert ticked == ["Monday", "Wednesday", "Friday"]  # 3 a week
    filename, raw = download(page, form)
    assert re.fullmatch(r"[\w-]+\.ics", filename)
    assert page.evaluate("window.pwned") is None

    check_physical_lines(raw)
    escaped = '<script>alert(1)</script> "quotes"\\, commas\\; semicolons\\\\ and emoji 😀'
    assert f"SUMMARY:{escaped}" in unfold(raw)
    assert "RRULE:FREQ=WEEKLY;BYDAY=MO,WE,FR;COUNT=12" in unfold(raw)
    summary = [line for line in raw.split(b"\r\n") if line.startswith(b"SUMMARY:")]
    assert len(summary) == 1 and len(summary[0]) == 75, "long enough to be folded"
    description = next(line for line in unfold(raw) if line.startswith("DESCRIPTION:"))
    assert '\\n2. Say "a\\, b\\; c\\\\d" out loud.\\n' in description
    calendar, event = one_event(raw)
    assert str(event["SUMMARY"]) == HOSTILE
    today = date.fromisoformat(page.evaluate("new Date().toLocaleDateString('sv')"))
    first = event["DTSTART"].dt
    assert today <= first.date() < today + timedelta(days=3) and first.weekday() in (0, 2, 4)
    assert first.time() == time(8, 0) and first.tzinfo is None
    description = str(event["DESCRIPTION"])
    assert f"1. {steps[0]}\n2. {steps[1]}\n" in description
    assert len(recurring_ical_events.of(calendar).between(date(2020, 1, 1), date(2035, 1, 1))) == 12
