"""Bluesky and Mastodon share links: exact percent-encoding for a hostile title on a real build,
and the Mastodon share page (our own, no third-party script) in Chromium, with and without JS."""

from urllib.parse import parse_qs, quote, urlsplit

import pytest
from axe_playwright_python.sync_playwright import Axe
from bs4 import BeautifulSoup

from tests.conftest import build_site, serve_folder, write_article
from tests.test_pages_in_browser import WCAG, open_page

HOSTILE = "Knees & \"Hips\" #1 <script>alert('x')</script> it's 🦵 100% ?a=b"


@pytest.fixture(scope="module")
def hostile_site(tmp_path_factory):
    content = tmp_path_factory.mktemp("content")
    for sub in ("articles", "pages", "images"):
        (content / sub).mkdir()
    write_article(content, "hostile", HOSTILE, "2026-03-01 10:00")
    output = tmp_path_factory.mktemp("out")
    server = serve_folder(output)
    yield build_site(output, server.url, PATH=content, ISSO_URL="")
    server.stop()


def article(site):
    (path,) = [p for p in (site.output / "2026").iterdir() if p.is_dir()]
    url = f"{site.url}/2026/{path.name}/"
    return url, BeautifulSoup((path / "index.html").read_text(encoding="utf-8"), "html.parser")


def test_bluesky_and_mastodon_links_are_exactly_percent_encoded(hostile_site):
    url, page = article(hostile_site)
    assert page.h1.get_text() == HOSTILE  # the title stays text
    links = {a["aria-label"]: a for a in page.select(".share a.share-link")}
    post = quote(f"{HOSTILE} {url}", safe="")
    assert "%3Cscript%3E" in post and "%F0%9F%A6%B5" in post and "%23" in post
    assert links["Share on Bluesky"]["href"] == f"https://bsky.app/intent/compose?text={post}"
    assert links["Share on Mastodon"]["href"] == f"{hostile_site.url}/share/mastodon/?text={post}"
    for label in ("Bluesky", "Mastodon"):
        href = links[f"Share on {label}"]["href"]
        assert urlsplit(href).query.count("=") == 1 and "&" not in href and "#" not in href
        assert "noopener" in links[f"Share on {label}"]["rel"]
        assert links[f"Share on {label}"].find("svg") is not None
    raw = (hostile_site.output / urlsplit(url).path.strip("/") / "index.html").read_text()
    assert "<script>alert" not in raw


def test_networks_follow_the_setting(tmp_path, content_dir):
    write_article(content_dir, "plain", "Plain", "2026-03-01 10:00")
    site = build_site(tmp_path / "out", "https://blog.example", PATH=content_dir,
                      SHARE_NETWORKS=["bluesky"])  # fmt: skip
    page = BeautifulSoup(site.page("2026/plain/"), "html.parser")
    names = [a["aria-label"] for a in page.select(".share a.share-link")]
    assert names == ["Share on Bluesky", "Share by email"]
    assert not (site.output / "share" / "mastodon").exists()


def test_mastodon_page_opens_the_readers_server_share_page(new_context, hostile_site):
    url, page = article(hostile_site)
    href = page.select_one("a.share-mastodon")["href"]
    browser_page, requests = open_page(new_context, href, width=360)
    assert {urlsplit(u).hostname for u in requests} == {"127.0.0.1"}
    scripts = [s.get_attribute("src") for s in browser_page.locator("script[src]").all()]
    assert any(src.endswith("/js/share-mastodon.js") for src in scripts)
    assert browser_page.get_by_label("Your post").input_value() == f"{HOSTILE} {url}"
    server = browser_page.get_by_label("Your Mastodon server")
    assert server.input_value() == "mastodon.social"
    assert not browser_page.locator("#share-mastodon-nojs").is_visible()
    results = Axe().run(browser_page, options=WCAG)
    assert results.violations_count == 0, results.generate_report()
    assert browser_page.evaluate("document.documentElement.scrollWidth <= innerWidth")

    opened = []
    browser_page.context.route(
        "https://**/*", lambda route: (opened.append(route.request.url), route.abort())
    )
    server.fill("not a server")
    browser_page.get_by_role("button", name="Share on Mastodon").click()
    assert "does not look like" in browser_page.locator("#mastodon-status").text_content()
    assert opened == []
    server.fill("https://Fosstodon.org/@someone")
    server.press("Enter")  # the keyboard submits the form
    browser_page.wait_for_timeout(500)
    (target,) = opened
    parts = urlsplit(target)
    assert (parts.scheme, parts.netloc, parts.path) == ("https", "fosstodon.org", "/share")
    assert parse_qs(parts.query) == {"text": [f"{HOSTILE} {url}"]}  # one parameter, all of it
    assert not set(parts.query) & set(' &#<>"')


def test_mastodon_page_without_javascript_explains(new_context, hostile_site):
    page, requests = open_page(
        new_context, f"{hostile_site.url}/share/mastodon/", width=360, javascript=False
    )
    assert not page.locator("#share-mastodon").is_visible()
    assert "paste the article’s address" in page.locator("#share-mastodon-nojs").inner_text()
    assert {urlsplit(url).hostname for url in requests} == {"127.0.0.1"}
