"""A followed plan's emails (week 3 with the author's note, and the closing one) in headless
Chromium, as a mail program shows their HTML: from 320 px up without horizontal scroll, every
part readable, and accessible (axe, WCAG 2 A/AA). Screenshots in tests/artifacts/
(email-plan-week-WIDTH.png, email-plan-closing-WIDTH.png)."""

from __future__ import annotations

import json

import pytest
from axe_playwright_python.sync_playwright import Axe

from newsletter.announcements import reminder_emails
from newsletter.mail.proof import message_id

WIDTHS = (320, 360, 1280)
WCAG = {"runOnly": {"type": "tag", "values": ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa"]}}
LINKS = {
    "stop": "https://walkagain.example/newsletter/plans/stop/eyJzdG9wIjoiYWJjIn0.sig",
    "stop_all": "https://walkagain.example/newsletter/plans/stop-all/eyJzdG9wIjoiYWJjIn0.sig",
}


def seed_plan(site) -> dict:
    plan = json.loads((site.output / "exercises" / "plans.json").read_text("utf-8"))["plans"][0]
    return {**plan, "week_notes": [{"week": 3, "note": "add a 1 kg ankle weight"}]}


def html_of(message) -> str:
    return message.get_body(("html",)).get_content()


@pytest.mark.parametrize("kind", ["week", "closing"])
def test_the_plan_emails_fit_from_320_px_and_pass_axe(make_settings, site, new_context,
                                                       artifacts, kind):  # fmt: skip
    settings = make_settings()
    plan = seed_plan(site)
    common = dict(links=LINKS, message_id=message_id(settings, f"plan_{kind}", 1, "abcdefgh12"))
    if kind == "week":
        schedule = reminder_emails.schedule_words(settings, 0, 8)
        message = reminder_emails.week_email(settings, "ann@example.com", plan, week=3,
                                             weeks=6, schedule=schedule, **common)  # fmt: skip
        shows = ["Week 3 of 6", "New this week", "add a 1 kg ankle weight", "Lay on your side.",
                 "15–20", "Open the exercise card", "Stop this plan", "Stop all plans"]  # fmt: skip
    else:
        message = reminder_emails.closing_email(settings, "ann@example.com", plan, weeks=6,
                                                keep_days=30, **common)  # fmt: skip
        shows = ["6 weeks done", "What next?", "nothing more will come", "Erase it now",
                 "Stop all plans"]  # fmt: skip
    context = new_context(viewport={"width": WIDTHS[0], "height": 800})
    context.route("**/*", lambda route: route.abort())  # an email loads nothing
    page = context.new_page()
    page.set_content(html_of(message), wait_until="load")
    body = " ".join(page.locator("body").text_content().split())  # before CSS casing
    for words in shows:
        assert words in body, words
    for width in WIDTHS:
        page.set_viewport_size({"width": width, "height": 800})
        wide = page.evaluate("document.documentElement.scrollWidth")
        assert wide <= width, f"{kind} at {width} px: {wide - width} px of horizontal scroll"
        card = page.locator("table.card").bounding_box()
        assert card["x"] >= 0 and card["x"] + card["width"] <= width
        page.screenshot(path=artifacts / f"email-plan-{kind}-{width}.png", full_page=True)
    results = Axe().run(page, options=WCAG)
    assert results.violations_count == 0, results.generate_report()
