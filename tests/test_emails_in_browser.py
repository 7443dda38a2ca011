"""The emails (confirmation, announcement, digest) in headless Chromium, as a mail program on a
phone or a desktop shows their HTML: every width from 320 px up without horizontal scroll.
Screenshots in tests/artifacts/ (email-KIND-WIDTH.png)."""

from __future__ import annotations

import email
import email.policy
from pathlib import Path

import pytest

from newsletter.mail.message import message_id
from newsletter.subscriptions import emails
from newsletter.subscriptions.addresses import normalize
from newsletter.subscriptions.subscribers import Subscribers
from newsletter.subscriptions.tokens import Tokens
from tests.test_announcement_emails import ITEM, composer_for, received
from tests.test_exercise_emails import plan_item

WIDTHS = (320, 360, 600, 1280)
IMAGE = (Path(__file__).resolve().parent.parent / "content/images/gluteus-medius.png").read_bytes()


def confirmation_html(settings) -> str:
    store = Subscribers.open(settings.database)
    try:
        store.request_subscription(*normalize("reader@example.com"), source=settings.site_url)
        subscriber = store.list()[0]
    finally:
        store.close()
    message = emails.confirmation_email(
        settings,
        subscriber,
        **emails.links(settings, Tokens(settings.secret_key), subscriber),
        message_id=message_id(settings, "confirmation", 1),
    )
    parsed = email.message_from_bytes(message.as_bytes(), policy=email.policy.default)
    return parsed.get_body(("html",)).get_content()


def announcement_html(settings, items) -> str:
    return received(composer_for(settings, items)).get_body(("html",)).get_content()


@pytest.mark.parametrize("kind", ["confirmation", "announcement", "digest"])
def test_every_email_fits_the_screen_from_320_px(make_settings, new_context, artifacts, kind):
    """Issue 22: every email was 24 px wider than the screen at every width (`div.outer` had
    `width: 100%` plus its padding), so it scrolled sideways on a phone."""
    settings = make_settings()
    plan = plan_item(guid="urn:uuid:plan", link="https://walkagain.example/2026/knees/",
                     title="The best muscle to train for knee pain", subtitle="Gluteus medius",
                     image=ITEM.image)  # fmt: skip
    html = {
        "confirmation": lambda: confirmation_html(settings),
        "announcement": lambda: announcement_html(settings, [plan]),
        "digest": lambda: announcement_html(settings.replace(announce_mode="digest"), [plan, ITEM]),
    }[kind]()
    context = new_context(viewport={"width": WIDTHS[0], "height": 800})

    def offline(route):  # an email loads nothing but its images, here the blog's own
        if route.request.url == ITEM.image:
            return route.fulfill(body=IMAGE, content_type="image/png")
        return route.abort()

    context.route("**/*", offline)
    page = context.new_page()
    page.set_content(html, wait_until="load")
    for width in WIDTHS:
        page.set_viewport_size({"width": width, "height": 800})
        wide = page.evaluate("document.documentElement.scrollWidth")
        assert wide <= width, f"{kind} at {width} px: {wide - width} px of horizontal scroll"
        card = page.locator("table.card").bounding_box()
        assert card["x"] >= 0 and card["x"] + card["width"] <= width
        page.screenshot(path=artifacts / f"email-{kind}-{width}.png", full_page=True)
