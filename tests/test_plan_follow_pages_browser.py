"""Following a plan, the endpoint's pages and the confirmation email in real headless Chromium:
the thank-you page, a refused form, the confirm page and its answer, the stop and stop-all
pages and their answer: accessible (axe, WCAG 2 A/AA) at 360 and 1280 px, light and dark, no
horizontal scroll from 320 px; the buttons work without JavaScript; the confirmation email fits
from 320 px. Screenshots in tests/artifacts/plan-follow-*.png and email-plan-confirm-*.png."""

from __future__ import annotations

import pytest
import requests
from axe_playwright_python.sync_playwright import Axe

from newsletter.subscriptions import plans as plans_module
from tests.newsletter_helpers import link, start_endpoint, wait_for_emails

WCAG = {"runOnly": {"type": "tag", "values": ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa"]}}
PLAN = "6f1d7c52-3b8e-4f0a-9a57-2c4e8d1b9e30-side-lying-leg-raise"
ARTICLE = "2026/the-best-muscle-to-train-for-knee-pain/"


@pytest.fixture
def endpoint(tmp_path, site):
    plans_module.forget_cache()
    live = start_endpoint(tmp_path, site_url=site.url)
    yield live
    live.stop()
    plans_module.forget_cache()


def follow(live, site, email="reader@example.com", **changes):
    fields = {"email": email, "plan": PLAN, "weekday": "0", "hour": "8",
              "source": f"{site.url}/{ARTICLE}", "website": ""}  # fmt: skip
    fields.update(changes)
    return requests.post(live.url + "/plans/follow", data=fields, timeout=10)


def confirmation(live, to="reader@example.com"):
    live.nl.sender.drain(10)
    found = wait_for_emails(live.nl.settings.outbox, 1)
    (message,) = [m for m in found if m["To"] == to and "follow" in m["Subject"]]
    return message


def pages(live, site):
    """Every page of following a plan: {name: (url to GET, or the HTML a POST answered)}."""
    thanks = follow(live, site, newsletter="1")
    refused = follow(live, site, "other@example.com", weekday="9")
    assert (thanks.status_code, refused.status_code) == (200, 400)
    message = confirmation(live)
    confirm = link(message, "plans/confirm")
    stop = link(message, "plans/stop")
    (row,) = live.nl.database.db.execute("SELECT public_id FROM plan_follows").fetchall()
    follows = live.app.extensions["plan_follows"]
    stop_all = follows.links(follows.get(row["public_id"]))["stop_all"]
    following = requests.post(confirm, timeout=10)
    stopped = requests.post(stop, timeout=10)
    assert (following.status_code, stopped.status_code) == (200, 200)
    follow(live, site)  # again (stopped: a new follow), for the pages of a pending one
    (row,) = live.nl.database.db.execute("SELECT public_id FROM plan_follows").fetchall()
    pending = follows.get(row["public_id"])
    confirm = follows.confirm_url(pending)
    return {
        "thanks": ("html", thanks.text),
        "refused": ("html", refused.text),
        "confirm": ("url", confirm),
        "following": ("html", following.text),
        "stop": ("url", follows.links(pending)["stop"]),
        "stop-all": ("url", follows.links(pending)["stop_all"]),
        "stopped": ("html", stopped.text),
        "nothing-to-stop": ("url", stop_all),
    }


def show(new_context, live, what, *, width, scheme="light", javascript=True):
    context = new_context(viewport={"width": width, "height": 800}, color_scheme=scheme,
                          java_script_enabled=javascript)  # fmt: skip
    page = context.new_page()
    kind, value = what
    if kind == "url":
        page.goto(value, wait_until="networkidle")
    else:  # the answer to a POST, shown at the endpoint's address (its stylesheet loads)
        page.goto(live.url + "/healthz")
        page.set_content(value, wait_until="networkidle")
    return page


@pytest.mark.parametrize("scheme", ["light", "dark"])
@pytest.mark.parametrize("width", [360, 1280])
def test_the_pages_have_no_axe_violations(new_context, endpoint, site, artifacts, width, scheme):
    for name, what in pages(endpoint, site).items():
        page = show(new_context, endpoint, what, width=width, scheme=scheme)
        page.screenshot(path=artifacts / f"plan-follow-{name}-{width}-{scheme}.png",
                        full_page=True)  # fmt: skip
        assert page.locator("link[rel=stylesheet]").count() >= 1
        assert page.evaluate("getComputedStyle(document.body).fontFamily") != "Times New Roman"
        results = Axe().run(page, options=WCAG)
        assert results.violations_count == 0, (name, results.generate_report())


def test_the_pages_fit_from_320_px(new_context, endpoint, site):
    for name, what in pages(endpoint, site).items():
        page = show(new_context, endpoint, what, width=320)
        wide = page.evaluate("document.documentElement.scrollWidth")
        assert wide <= 320, f"{name}: {wide - 320} px of horizontal scroll at 320 px"


def test_confirm_and_stop_with_the_buttons_without_javascript(new_context, endpoint, site,
                                                              artifacts):  # fmt: skip
    follow(endpoint, site)
    message = confirmation(endpoint)
    context = new_context(viewport={"width": 360, "height": 800}, java_script_enabled=False)
    page = context.new_page()
    page.goto(link(message, "plans/confirm"), wait_until="networkidle")
    assert "Monday at 08:00" in page.locator("main").inner_text()
    follows = endpoint.app.extensions["plan_follows"]
    assert follows.following() == []  # opening the link confirmed nothing
    page.get_by_role("button", name="Yes, send me the plan").click()
    page.wait_for_load_state("networkidle")
    assert page.get_by_role("heading", level=1).inner_text() == "Following: Side lying leg raise"
    assert len(follows.following()) == 1
    page.screenshot(path=artifacts / "plan-follow-confirmed-360.png", full_page=True)
    page.goto(link(message, "plans/stop"), wait_until="networkidle")
    assert len(follows.following()) == 1  # opening the stop link stopped nothing
    page.get_by_role("button", name="Stop this plan").click()
    page.wait_for_load_state("networkidle")
    assert page.get_by_role("heading", level=1).inner_text() == "Plan stopped"
    assert follows.following() == [] and follows.counts_by_plan() == {}


def test_the_confirmation_email_fits_from_320_px(new_context, endpoint, site, artifacts):
    follow(endpoint, site, weekday="2", hour="19")
    html = confirmation(endpoint).get_body(("html",)).get_content()
    context = new_context(viewport={"width": 320, "height": 800})
    context.route("**/*", lambda route: route.abort())  # an email loads nothing here
    page = context.new_page()
    page.set_content(html, wait_until="load")
    for width in (320, 360, 1280):
        page.set_viewport_size({"width": width, "height": 800})
        wide = page.evaluate("document.documentElement.scrollWidth")
        assert wide <= width, f"{wide - width} px of horizontal scroll at {width} px"
        page.screenshot(path=artifacts / f"email-plan-confirm-{width}.png", full_page=True)
    body = page.locator("body").inner_text()
    assert "Wednesday at 19:00" in body and "Yes, send me the plan" in body
    assert "Stop this plan" in body
