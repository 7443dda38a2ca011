"""End to end in headless Chromium: subscribe on the article page, confirm from the email, publish
a new article, announce it, open the email's HTML in the browser and follow its link to the
article. Real Pelican builds, the real endpoint and a static server on 127.0.0.1."""

from __future__ import annotations

from urllib.parse import urlsplit

from newsletter.announcements import run as announce
from newsletter.subscriptions.subscribers import Status
from newsletter.subscriptions.views import THANKS
from tests.announce_helpers import outbox_messages, recent
from tests.browser import expect
from tests.conftest import build_site, serve_folder, write_article
from tests.newsletter_helpers import email_to, link, start_endpoint

TIMEOUT_MS = 15_000


def test_subscribe_confirm_publish_announce_and_read(tmp_path, content_dir, new_context, artifacts):
    static = serve_folder(tmp_path / "site")
    (tmp_path / "site").mkdir()
    endpoint = start_endpoint(tmp_path, site_url=static.url)
    settings = endpoint.nl.settings

    def publish():
        build_site(static.root, static.url, PATH=content_dir, ISSO_URL="",
                   NEWSLETTER_URL=endpoint.url + "/subscribe")  # fmt: skip
        return static.root / "feeds" / "all.rss.xml"

    try:
        write_article(content_dir, "first", "The first article", recent(48))
        assert announce.run(settings, feed_url=publish()).tally.sent == 0  # first run
        context = new_context(viewport={"width": 1024, "height": 900})
        context.set_default_timeout(TIMEOUT_MS)
        context.route(lambda url: urlsplit(url).hostname != "127.0.0.1",
                      lambda route: route.abort())  # fmt: skip
        page = context.new_page()

        page.goto(f"{static.url}/{recent(48)[:4]}/the-first-article/", wait_until="load")
        form = page.locator("#stay-tuned-article form.subscribe-form")
        form.get_by_label("Your email address").fill("reader@example.com")
        form.get_by_role("button", name="Subscribe").click()
        expect(form.locator(".form-status")).to_have_text(THANKS)
        confirmation = email_to(settings.outbox, "reader@example.com")
        page.goto(link(confirmation, "confirm"))
        page.get_by_role("button", name="Yes, subscribe me").click()
        expect(page.locator("h1")).to_have_text("You’re subscribed")
        assert endpoint.nl.subscribers.find("reader@example.com").status == Status.CONFIRMED

        write_article(content_dir, "second", "Knees & Hips <Part 1>", recent(1),
                      subtitle="The hip muscle you never thought about",
                      summary="Why the gluteus medius matters.")  # fmt: skip
        summary = announce.run(settings, feed_url=publish())
        assert summary.ok and summary.tally.sent == 1
        (announcement,) = [
            m
            for m in outbox_messages(settings.outbox)
            if m["Subject"] not in (confirmation["Subject"], "Welcome to Walk Again")
        ]
        assert announcement["To"] == "reader@example.com"
        assert announcement["Subject"] == "Knees & Hips <Part 1>"

        page.goto("about:blank")  # leave the endpoint's page and its CSP behind
        page.set_content(announcement.get_body(("html",)).get_content())
        assert (
            page.locator(".button").evaluate("a => getComputedStyle(a).backgroundColor")
            == "rgb(31, 107, 92)"
        )  # inlined CSS applies: the blog's green button
        expect(page.locator("h1")).to_have_text("Knees & Hips <Part 1>")
        expect(page.locator("p.dek")).to_have_text("The hip muscle you never thought about")
        page.screenshot(path=artifacts / "announcement-email.png", full_page=True)
        unsubscribe = page.get_by_role("link", name="Unsubscribe")
        assert unsubscribe.get_attribute("href") == link(announcement, "unsubscribe")
        button = page.get_by_role("link", name="Read the article")
        assert button.get_attribute("href") == summary.announced[0].items[0].link
        button.click()
        page.wait_for_url(summary.announced[0].items[0].link)
        expect(page.locator("h1").first).to_have_text("Knees & Hips <Part 1>")
    finally:
        endpoint.stop()
        static.stop()
