"""End to end in headless Chromium: the built article's "Stay tuned" form, the confirmation
email, the confirmed subscriber, and the unsubscribe button. Real servers on 127.0.0.1."""

from urllib.parse import urlsplit

import pytest
from axe_playwright_python.sync_playwright import Axe

from newsletter.ratelimit import Rate
from newsletter.subscriptions.subscribers import Status
from newsletter.subscriptions.views import THANKS
from tests.browser import expect
from tests.conftest import ARTICLE_PATH, build_site, serve_folder
from tests.newsletter_helpers import email_to, link, start_endpoint

TIMEOUT_MS = 15_000
WCAG = {"runOnly": {"type": "tag", "values": ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa"]}}


@pytest.fixture(scope="module")
def servers(tmp_path_factory):
    root = tmp_path_factory.mktemp("e2e")
    (root / "site").mkdir()
    static = serve_folder(root / "site")
    endpoint = start_endpoint(root, site_url=static.url, rate_limit=Rate(100, 60))
    try:
        site = build_site(
            static.root, static.url, ISSO_URL="", NEWSLETTER_URL=endpoint.url + "/subscribe"
        )
        yield site, endpoint
    finally:
        endpoint.stop()
        static.stop()


def new_page(new_context, *, javascript=True):
    """A page in a fresh context (closed after the test) where nothing may leave 127.0.0.1."""
    context = new_context(viewport={"width": 1280, "height": 900}, java_script_enabled=javascript)
    context.set_default_timeout(TIMEOUT_MS)
    # Nothing may leave the machine: anything not for 127.0.0.1 is refused (and asserted).
    context.route(lambda url: urlsplit(url).hostname != "127.0.0.1", lambda route: route.abort())
    page = context.new_page()
    page.problems = []
    page.on("pageerror", lambda error: page.problems.append(str(error)))
    page.on(
        "console",
        lambda msg: page.problems.append(msg.text) if msg.type in ("error", "warning") else None,
    )
    return context, page


def subscriber(endpoint, address):
    return endpoint.nl.subscribers.find(address.casefold())


def test_subscribe_with_javascript_confirm_then_unsubscribe(servers, new_context, artifacts):
    site, endpoint = servers
    _, page = new_page(new_context)
    article = f"{site.url}/{ARTICLE_PATH}"
    page.goto(article, wait_until="load")
    form = page.locator("#stay-tuned-article form.subscribe-form")
    assert form.get_attribute("action") == endpoint.url + "/subscribe"
    form.get_by_label("Your email address").fill("Reader.JS@Example.com")
    form.get_by_role("button", name="Subscribe").click()
    # The answer shows in place: a cross-origin fetch the endpoint allows (CORS).
    expect(form.locator(".form-status")).to_have_text(THANKS)
    expect(form.locator(".form-status")).to_have_attribute("data-state", "ok")
    assert page.url == article
    assert form.get_by_label("Your email address").input_value() == ""

    message = email_to(endpoint.nl.settings.outbox, "Reader.JS@example.com")
    stored = subscriber(endpoint, "reader.js@example.com")
    assert stored.status == Status.UNCONFIRMED
    assert stored.consent_source.startswith(article)  # the page the form was on

    # Opening the link (what a link scanner does, JavaScript included) confirms nothing ...
    page.goto(link(message, "confirm"), wait_until="load")
    expect(page.locator("h1")).to_have_text("Confirm your subscription")
    expect(page.locator("main")).to_contain_text("R•••@example.com")
    page.wait_for_timeout(300)  # no auto-submit, even with JavaScript
    assert subscriber(endpoint, "reader.js@example.com").status == Status.UNCONFIRMED
    assert Axe().run(page, options=WCAG).violations_count == 0
    page.screenshot(path=artifacts / "newsletter-confirm-page.png", full_page=True)
    # ... the button does.
    page.get_by_role("button", name="Yes, subscribe me").click()
    expect(page.locator("h1")).to_have_text("You’re subscribed")
    assert subscriber(endpoint, "reader.js@example.com").status == Status.CONFIRMED
    expect(page.get_by_role("link", name="your preferences")).to_be_visible()
    assert Axe().run(page, options=WCAG).violations_count == 0
    page.screenshot(path=artifacts / "newsletter-subscribed.png", full_page=True)
    size = page.viewport_size
    page.set_viewport_size({"width": 320, "height": 640})
    page.screenshot(path=artifacts / "newsletter-subscribed-320.png", full_page=True)
    page.set_viewport_size(size)

    page.goto(link(message, "unsubscribe"))
    expect(page.locator("main")).to_contain_text("R•••@example.com")
    assert Axe().run(page, options=WCAG).violations_count == 0
    page.get_by_role("button", name="Unsubscribe").click()
    expect(page.locator("h1")).to_have_text("You’re unsubscribed")
    assert subscriber(endpoint, "reader.js@example.com").status == Status.UNSUBSCRIBED
    page.screenshot(path=artifacts / "newsletter-unsubscribed.png", full_page=True)

    # The page a reader without JavaScript lands on, checked for accessibility (axe needs
    # JavaScript, so the form is submitted the plain way from this page).
    page.goto(article, wait_until="load")
    footer = page.locator("#stay-tuned-article form.subscribe-form")
    footer.get_by_label("Your email address").fill("axe@example.com")
    footer.evaluate("form => form.submit()")  # a plain submit: no fetch
    expect(page.locator("h1")).to_have_text("Check your inbox")
    assert Axe().run(page, options=WCAG).violations_count == 0
    assert page.problems == []


def test_subscribe_without_javascript_lands_on_a_themed_page(servers, new_context, artifacts):
    site, endpoint = servers
    context, page = new_page(new_context, javascript=False)
    page.goto(f"{site.url}/{ARTICLE_PATH}", wait_until="load")
    form = page.locator("#stay-tuned-article form.subscribe-form")
    form.get_by_label("Your email address").fill("no-js@example.com")
    form.get_by_role("button", name="Subscribe").click()
    page.wait_for_url(endpoint.url + "/subscribe")
    expect(page.locator("h1")).to_have_text("Check your inbox")
    expect(page.locator(".dek")).to_have_text(THANKS)
    # The blog's stylesheet is applied: the header looks like the blog's.
    assert page.evaluate("document.styleSheets[0].cssRules.length") > 50
    header = "getComputedStyle(document.querySelector('.site-header')).borderBottomStyle"
    assert page.evaluate(header) == "solid"
    back = page.get_by_role("link", name="Back to the article")
    assert back.get_attribute("href").startswith(f"{site.url}/{ARTICLE_PATH}")
    page.screenshot(path=artifacts / "newsletter-check-your-inbox.png", full_page=True)
    page.set_viewport_size({"width": 360, "height": 740})
    page.screenshot(path=artifacts / "newsletter-check-your-inbox-phone.png", full_page=True)
    overflow = page.evaluate(
        "document.documentElement.scrollWidth - document.documentElement.clientWidth"
    )
    assert overflow <= 0

    message = email_to(endpoint.nl.settings.outbox, "no-js@example.com")
    html = message.get_body(("html",)).get_content()
    mail = context.new_page()  # a blank page, as a mail program would show it
    mail.set_viewport_size({"width": 700, "height": 900})
    mail.set_content(html)
    mail.screenshot(path=artifacts / "newsletter-confirmation-email.png", full_page=True)
    mail.set_viewport_size({"width": 360, "height": 740})
    mail.screenshot(path=artifacts / "newsletter-confirmation-email-phone.png", full_page=True)
    button = mail.get_by_role("link", name="Yes, subscribe me")
    assert button.evaluate("a => getComputedStyle(a).backgroundColor") == "rgb(31, 107, 92)"

    page.goto(link(message, "confirm"))  # without JavaScript too: a plain form
    assert subscriber(endpoint, "no-js@example.com").status == Status.UNCONFIRMED
    page.get_by_role("button", name="Yes, subscribe me").click()
    expect(page.locator("h1")).to_have_text("You’re subscribed")
    assert subscriber(endpoint, "no-js@example.com").status == Status.CONFIRMED
    assert page.problems == []
