"""The preferences page and the change of address in real headless Chromium: accessible (axe) at
360 and 1280 px in light and dark, seen at 320, 360 and 1280 px, working without JavaScript,
and opened from the link in the footer of the announcement and welcome emails."""

from __future__ import annotations

import email
import email.policy
import json

import pytest
import requests
from axe_playwright_python.sync_playwright import Axe

from newsletter.announcements.emails import Composer
from newsletter.announcements.feed import FeedItem
from newsletter.announcements.ledger import Announcement, Delivery
from newsletter.subscriptions import addresses, topics
from newsletter.subscriptions.choices import Choice, Choices
from newsletter.subscriptions.emails import preferences_url
from newsletter.subscriptions.subscribers import Status
from tests.conftest import SITE_URL, serve_folder
from tests.newsletter_helpers import start_endpoint, wait_for_emails

WCAG = {"runOnly": {"type": "tag", "values": ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa"]}}
TOPICS = [
    {"slug": "knees", "name": "Knee pain"},
    {"slug": "hips", "name": "Hips"},
    {"slug": "back", "name": "Lower back"},
    {"slug": "videos", "name": "New videos"},
]


@pytest.fixture
def endpoint(tmp_path):
    folder = tmp_path / "site"
    (folder / "feeds").mkdir(parents=True)
    document = {"version": 1, "site": SITE_URL, "topics": TOPICS}
    (folder / "feeds" / "topics.json").write_text(json.dumps(document), encoding="utf-8")
    blog = serve_folder(folder)
    topics.forget_cache()
    live = start_endpoint(tmp_path, feed_url=blog.url + "/feeds/all.rss.xml")
    yield live
    live.stop()
    blog.stop()
    topics.forget_cache()


def reader(live, address="reader@example.com"):
    return live.nl.subscribers.add(*addresses.normalize(address), status=Status.CONFIRMED)


def open_page(new_context, url, *, width, scheme="light", javascript=True):
    context = new_context(
        viewport={"width": width, "height": 800},
        color_scheme=scheme,
        java_script_enabled=javascript,
    )
    page = context.new_page()
    page.goto(url, wait_until="networkidle")
    return page


def address_link(live, to):
    live.nl.sender.drain(10)
    (message,) = [m for m in wait_for_emails(live.nl.settings.outbox, 1) if m["To"] == to]
    text = message.get_body(("plain",)).get_content()
    (url,) = [word for word in text.split() if "/address/" in word]
    return url


def pages(live):
    """The new pages: the preferences page (also with an error), the change of address asked,
    and the page the link in the email to the new address opens."""
    subscriber = reader(live)
    page_url = preferences_url(live.nl.settings, live.nl.tokens, subscriber.public_id)
    asked = requests.post(page_url + "/address", data={"email": "new.reader@example.com"})
    assert asked.status_code == 200
    wrong = requests.post(page_url, data={"topics": [""], "frequency": "each"})
    assert wrong.status_code == 400
    return {
        "preferences": page_url,
        "address": address_link(live, "new.reader@example.com"),
    }, {"asked": asked.text, "error": wrong.text}


@pytest.mark.parametrize("scheme", ["light", "dark"])
@pytest.mark.parametrize("width", [360, 1280])
def test_the_pages_have_no_axe_violations(new_context, endpoint, artifacts, width, scheme):
    urls, answers = pages(endpoint)
    for name, url in urls.items():
        page = open_page(new_context, url, width=width, scheme=scheme)
        page.screenshot(path=artifacts / f"preferences-{name}-{width}-{scheme}.png", full_page=True)
        results = Axe().run(page, options=WCAG)
        assert results.violations_count == 0, (name, results.generate_report())
        assert page.evaluate("document.documentElement.scrollWidth <= innerWidth"), name
    for name, html in answers.items():  # the answers to a POST, as the browser shows them
        page = new_context(viewport={"width": width, "height": 800}, color_scheme=scheme).new_page()
        page.goto(urls["preferences"], wait_until="networkidle")  # the same origin: its CSS
        page.set_content(html, wait_until="networkidle")
        page.screenshot(path=artifacts / f"preferences-{name}-{width}-{scheme}.png", full_page=True)
        results = Axe().run(page, options=WCAG)
        assert results.violations_count == 0, (name, results.generate_report())


@pytest.mark.parametrize("width", [320, 360, 1280])
def test_screenshots_and_one_line_choices(new_context, endpoint, artifacts, width):
    urls, _ = pages(endpoint)
    page = open_page(new_context, urls["preferences"], width=width)
    page.screenshot(path=artifacts / f"preferences-page-{width}.png", full_page=True)
    assert page.evaluate("document.documentElement.scrollWidth <= innerWidth")
    for box in page.locator(".choice-list label").all():  # each choice on one line
        assert box.bounding_box()["height"] < 60, box.text_content()
    page = open_page(new_context, urls["address"], width=width)
    page.screenshot(path=artifacts / f"preferences-address-page-{width}.png", full_page=True)


def test_without_javascript_choose_and_change_the_address(new_context, endpoint):
    subscriber = reader(endpoint)
    url = preferences_url(endpoint.nl.settings, endpoint.nl.tokens, subscriber.public_id)
    page = open_page(new_context, url, width=360, javascript=False)
    page.get_by_label("Hips").uncheck()
    page.get_by_label("Lower back").uncheck()
    page.get_by_label("New videos").uncheck()
    page.get_by_label("Weekly digest").check()
    page.get_by_role("button", name="Save my choices").click()
    assert "Saved" in page.locator("main").inner_text()
    chosen = Choices(endpoint.nl.database).get(subscriber.id)
    assert chosen == Choice(frozenset({"knees"}), "weekly")
    assert (
        page.get_by_label("Knee pain").is_checked() and not page.get_by_label("Hips").is_checked()
    )

    page.get_by_label("New address").fill("moved@example.com")
    page.get_by_role("button", name="Change address").click()
    assert page.locator("h1").inner_text() == "Check the new inbox"
    assert endpoint.nl.subscribers.get(subscriber.public_id).email == "reader@example.com"
    page.goto(address_link(endpoint, "moved@example.com"))
    assert endpoint.nl.subscribers.list()[0].email == "reader@example.com"  # the GET: nothing
    page.get_by_role("button", name="Yes, use this address").click()
    assert page.locator("h1").inner_text() == "Your address is changed"
    (moved,) = endpoint.nl.subscribers.list()
    assert moved.email == "moved@example.com"
    page.get_by_role("link", name="Your preferences").click()
    assert "moved@example.com" in page.locator("main").inner_text()

    page.get_by_role("button", name="Unsubscribe").click()
    assert page.locator("h1").inner_text() == "You’re unsubscribed"
    assert endpoint.nl.subscribers.list()[0].status == Status.UNSUBSCRIBED


def _html(message) -> str:
    return message.get_body(("html",)).get_content()


def test_the_footer_link_of_the_announcement_and_welcome_emails(new_context, endpoint, artifacts):
    first, second = reader(endpoint, "first@example.com"), reader(endpoint, "second@example.com")
    endpoint.nl.subscribers.set_status(second.public_id, Status.UNCONFIRMED)
    endpoint.nl.subscribers.set_status(second.public_id, Status.CONFIRMED, welcome=True)
    endpoint.nl.sender.drain(10)
    (welcome,) = [m for m in wait_for_emails(endpoint.nl.settings.outbox, 1)
                  if m["Subject"].startswith("Welcome")]  # fmt: skip
    item = FeedItem(guid="g1", title="The best muscle for knee pain", link=SITE_URL + "/a/",
                    summary="<p>Why the quads matter.</p>", topic="knees")  # fmt: skip
    announcement = Announcement(1, "article", "g1", item.title, [item], "", None)
    composer = Composer(endpoint.nl.settings, endpoint.nl.tokens, announcement)
    wire = composer.outgoing(Delivery(1, 1, 0, first.id, first.public_id, first.email)).data
    announced = email.message_from_bytes(wire, policy=email.policy.default)
    for name, message, person in (("announcement", announced, first),
                                  ("welcome", welcome, second)):  # fmt: skip
        assert message["To"] == person.email
        page = new_context(viewport={"width": 360, "height": 800}).new_page()
        page.set_content(_html(message))
        page.locator("td.footer").screenshot(path=artifacts / f"footer-{name}-360.png")
        link = page.get_by_role("link", name="Your preferences")
        assert link.get_attribute("href") == preferences_url(
            endpoint.nl.settings, endpoint.nl.tokens, person.public_id
        )
        link.click()
        page.wait_for_load_state("networkidle")
        assert page.locator("h1").inner_text() == "Your preferences"
        assert person.email in page.locator("main").inner_text()
        assert "List-Unsubscribe=One-Click" == message["List-Unsubscribe-Post"]


@pytest.mark.parametrize("width", [320, 360, 1280])
def test_the_email_to_a_new_address_both_ways(new_context, endpoint, artifacts, width):
    """The confirmation of a new address, and the note to an address already on the list."""
    first, second = reader(endpoint, "first@example.com"), reader(endpoint, "second@example.com")
    for person, new in ((first, "fresh@example.com"), (second, "first@example.com")):
        url = preferences_url(endpoint.nl.settings, endpoint.nl.tokens, person.public_id)
        assert requests.post(url + "/address", data={"email": new}).status_code == 200
    endpoint.nl.sender.drain(10)
    sent = {m["To"]: m for m in wait_for_emails(endpoint.nl.settings.outbox, 2)}
    for name, to in (("confirm", "fresh@example.com"), ("taken", "first@example.com")):
        page = new_context(viewport={"width": width, "height": 800}).new_page()
        page.set_content(_html(sent[to]))
        page.screenshot(path=artifacts / f"email-address-{name}-{width}.png", full_page=True)
        assert page.evaluate("document.documentElement.scrollWidth <= innerWidth"), name
        assert page.get_by_role("link", name="Unsubscribe").count() == 0
    page = new_context(viewport={"width": width, "height": 800}).new_page()
    page.set_content(_html(sent["fresh@example.com"]))
    page.get_by_role("link", name="Yes, use this address").click()
    page.wait_for_load_state("networkidle")
    assert page.locator("h1").inner_text() == "Confirm your new address"
    assert endpoint.nl.subscribers.get(first.public_id).email == "first@example.com"
