"""The "Stay tuned" form's choices in headless Chromium (issue 20): the built site's checkboxes
(all ticked) and how-often radios post what the endpoint reads, without JavaScript too; every
choice stays on one line at 320 px; axe finds nothing at 360 and 1280 px, light and dark, on
the blog's form and on the endpoint's own subscribe page. Screenshots in tests/artifacts/."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from urllib.parse import urlsplit

import pytest
from axe_playwright_python.sync_playwright import Axe

from newsletter.ratelimit import Rate
from newsletter.subscriptions import topics
from tests.browser import expect
from tests.conftest import build_site, serve_folder
from tests.newsletter_helpers import start_endpoint

WCAG = {"runOnly": {"type": "tag", "values": ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa"]}}
NAMES = {"knees": "Knee pain", "hips": "Hip pain", "videos": "New videos"}


@pytest.fixture(scope="module")
def servers(tmp_path_factory):
    root = tmp_path_factory.mktemp("choices")
    content = root / "content"
    for sub in ("articles", "pages", "images"):
        (content / sub).mkdir(parents=True)
    when = (datetime.now(UTC) - timedelta(days=2)).strftime("%Y-%m-%d %H:%M")
    for slug, category in (("knees-basics", "Knees"), ("hips-basics", "Hips")):
        (content / "articles" / f"{slug}.md").write_text(
            f"Title: {category} basics\nDate: {when}\nCategory: {category}\nId: {uuid.uuid4()}\n"
            "Summary: What helps.\n\nWhat helps, and why.\n",
            encoding="utf-8",
        )
    (root / "site").mkdir()
    static = serve_folder(root / "site")
    endpoint = start_endpoint(root, site_url=static.url, rate_limit=Rate(100, 60),
                              feed_url=f"{static.url}/feeds/all.rss.xml",
                              video_feed_url=f"{static.url}/videos.xml")  # fmt: skip
    topics.forget_cache()
    try:
        site = build_site(static.root, static.url, PATH=content, ISSO_URL="",
                          NEWSLETTER_TOPICS=NAMES, VIDEO_CHANNEL_FEED_URL=f"{static.url}/v.xml",
                          NEWSLETTER_URL=endpoint.url + "/subscribe")  # fmt: skip
        yield site, endpoint, f"{static.url}/{when[:4]}/knees-basics/"
    finally:
        endpoint.stop()
        static.stop()
        topics.forget_cache()


def open_page(new_context, url, *, width=1280, dark=False, javascript=True):
    context = new_context(viewport={"width": width, "height": 900}, java_script_enabled=javascript,
                          color_scheme="dark" if dark else "light")  # fmt: skip
    context.set_default_timeout(15_000)
    context.route(lambda u: urlsplit(u).hostname != "127.0.0.1", lambda route: route.abort())
    page = context.new_page()
    page.goto(url, wait_until="load")
    return page


def test_the_built_form_offers_the_topics_and_posts_what_the_endpoint_reads(
    servers, new_context, artifacts
):
    site, endpoint, article = servers
    written = (site.output / "feeds" / "topics.json").read_text()
    assert '"slug": "knees"' in written and '"name": "Knee pain"' in written
    page = open_page(new_context, article, javascript=False)
    form = page.locator("#stay-tuned-article form.subscribe-form")
    boxes = form.locator("input[name=topics][type=checkbox]")
    assert [boxes.nth(i).get_attribute("value") for i in range(boxes.count())] == list(NAMES)
    for name in NAMES.values():
        expect(form.get_by_label(name, exact=True)).to_be_checked()
    expect(form.get_by_label("Each new article")).to_be_checked()
    form.get_by_label("Hip pain", exact=True).uncheck()
    form.get_by_label("Weekly digest").check()
    form.get_by_label("Your email address").fill("plain@example.com")
    form.get_by_role("button", name="Subscribe").click()  # no JavaScript: a plain POST
    expect(page.locator("h1")).to_have_text("Check your inbox")
    nl = endpoint.nl
    for _ in range(200):
        row = nl.database.db.execute(
            "SELECT topics, frequency FROM subscribers WHERE email = 'plain@example.com'"
        ).fetchone()
        if row:
            break
        page.wait_for_timeout(25)
    assert (row["topics"], row["frequency"]) == ('["knees","videos"]', "weekly")


def test_none_ticked_is_refused_with_the_form_shown_again(servers, new_context, artifacts):
    _site, endpoint, article = servers
    page = open_page(new_context, article)  # axe needs JavaScript: the form is sent plainly
    form = page.locator("#stay-tuned-article form.subscribe-form")
    for name in NAMES.values():
        form.get_by_label(name, exact=True).uncheck()
    form.get_by_label("Your email address").fill("none@example.com")
    form.evaluate("form => form.submit()")  # a plain submit: no fetch
    alert = page.get_by_role("alert")
    expect(alert).to_contain_text("Choose at least one topic")
    expect(page.locator("#email")).to_have_value("none@example.com")
    assert Axe().run(page, options=WCAG).violations_count == 0
    page.screenshot(path=artifacts / "reader-choices-refused.png", full_page=True)


@pytest.mark.parametrize("dark", [False, True], ids=["light", "dark"])
@pytest.mark.parametrize("width", [360, 1280])
def test_axe_finds_nothing_on_the_forms(servers, new_context, artifacts, width, dark):
    _site, endpoint, article = servers
    for name, url in (("article", article), ("endpoint", endpoint.url + "/subscribe")):
        page = open_page(new_context, url, width=width, dark=dark)
        results = Axe().run(page, options=WCAG)
        assert results.violations_count == 0, results.generate_report()
        section = page.locator(".stay-tuned").first
        shot = f"reader-choices-form-{name}-{width}-{'dark' if dark else 'light'}.png"
        section.screenshot(path=artifacts / shot)


@pytest.mark.parametrize("width", [320, 360])
def test_each_choice_is_one_line_on_a_phone(servers, new_context, artifacts, width):
    _site, _endpoint, article = servers
    page = open_page(new_context, article, width=width)
    form = page.locator("#stay-tuned-article form.subscribe-form")
    labels = form.locator("label.choice")
    assert labels.count() == 5
    for i in range(labels.count()):
        box = labels.nth(i).bounding_box()
        assert box["height"] < 50, labels.nth(i).inner_text()  # one line (a 44 px target)
        assert box["x"] + box["width"] <= width
    overflow = page.evaluate(
        "document.documentElement.scrollWidth - document.documentElement.clientWidth"
    )
    assert overflow <= 0
    form.screenshot(path=artifacts / f"reader-choices-form-{width}.png")
