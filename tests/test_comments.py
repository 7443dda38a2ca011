"""A comment posted in Chromium through a local Isso shows on the article, and stays there."""

from __future__ import annotations

import uuid
from urllib.parse import urlsplit

import pytest

from blog.comments import start_isso
from tests.browser import expect
from tests.conftest import ARTICLE_PATH, build_site, serve_folder

TIMEOUT_MS = 15_000
LOCAL_SCHEMES = {"data", "blob", "about"}


@pytest.fixture
def static_server(tmp_path):
    root = tmp_path / "site"
    root.mkdir()
    server = serve_folder(root)
    yield server
    server.stop()


@pytest.fixture
def isso(tmp_path, static_server):
    folder = tmp_path / "isso"
    folder.mkdir()
    server = start_isso(folder, [static_server.url])
    yield server
    server.stop()


@pytest.fixture
def patient_expect():
    expect.set_options(timeout=TIMEOUT_MS)
    yield
    expect.set_options(timeout=5_000)  # Playwright's default


def isso_requests(requests, isso_url):
    return [url for url in requests if url.startswith(isso_url + "/")]


def test_comment_posted_in_chromium_shows_and_persists(
    static_server, isso, new_context, patient_expect, artifacts
):
    site = build_site(static_server.root, static_server.url, ISSO_URL=isso.url)
    article_url = f"{site.url}/{ARTICLE_PATH}"
    comment = f"Side-lying leg raises helped my knee. ({uuid.uuid4().hex[:8]})"

    context = new_context(viewport={"width": 1280, "height": 800})
    context.set_default_timeout(TIMEOUT_MS)
    requests: list[str] = []
    context.on("request", lambda request: requests.append(request.url))
    # Nothing may leave the machine: record it (asserted below) and never wait on it.
    context.route(
        lambda url: urlsplit(url).hostname != "127.0.0.1",
        lambda route: route.abort(),
    )
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    thread = page.locator("#isso-thread")
    button = page.get_by_role("button", name="Show comments")

    try:
        # 1. On load, above the comments, nothing talks to Isso.
        page.goto(article_url, wait_until="load")
        page.wait_for_load_state("networkidle")
        assert page.evaluate("window.scrollY") == 0
        below_fold = "document.getElementById('comments').getBoundingClientRect().top"
        assert page.evaluate(below_fold) > 800 + 200, "the comments start in view (rootMargin)"
        assert isso_requests(requests, isso.url) == []
        assert page.locator('script[src$="/js/embed.min.js"]').count() == 0
        expect(button).to_be_visible()

        # 2. Reaching the section loads Isso's embed, which renders the form.
        page.locator("#comments").scroll_into_view_if_needed()
        textarea = thread.locator(".isso-postbox textarea.isso-textarea")
        expect(textarea).to_be_visible()
        expect(button).to_be_hidden()
        assert isso_requests(requests, isso.url), "the form rendered without asking Isso"
        expect(thread.locator(".isso-thread-heading")).to_have_text("No Comments Yet")

        # 3. Post a comment; it shows in the thread.
        textarea.fill(comment)
        thread.locator(".isso-postbox input[name=author]").fill("Test Reader")
        thread.locator(".isso-postbox input[type=submit]").click()
        posted = thread.locator("#isso-root .isso-comment")
        expect(posted).to_have_count(1)
        expect(posted.locator(".isso-text")).to_have_text(comment)
        expect(posted.locator(".isso-author")).to_have_text("Test Reader")
        expect(textarea).to_have_value("")
        posted.scroll_into_view_if_needed()
        page.locator("#comments").screenshot(path=str(artifacts / "comments.png"))

        # 4. Reload at the top: still no Isso until asked, then the comment is back from SQLite.
        page.evaluate("window.scrollTo({top: 0, behavior: 'instant'})")
        before_reload = len(requests)
        page.reload(wait_until="load")
        page.wait_for_load_state("networkidle")
        assert page.evaluate("window.scrollY") == 0
        assert isso_requests(requests[before_reload:], isso.url) == []
        assert page.locator('script[src$="/js/embed.min.js"]').count() == 0
        # Press the button from the keyboard without scrolling, so only the click can load Isso.
        button.evaluate("b => b.focus({preventScroll: true})")
        page.keyboard.press("Enter")
        expect(posted).to_have_count(1)
        expect(posted.locator(".isso-text")).to_have_text(comment)
        expect(posted.locator(".isso-author")).to_have_text("Test Reader")
        expect(thread.locator(".isso-thread-heading")).to_have_text("One Comment")
        assert page.evaluate("window.scrollY") == 0, "the comments loaded by scrolling, not click"
    finally:
        context.close()

    outside = [
        url
        for url in requests
        if urlsplit(url).scheme not in LOCAL_SCHEMES and urlsplit(url).hostname != "127.0.0.1"
    ]
    assert outside == []
    assert errors == []
