"""Search: a real build writes /search/ and Pagefind's index of the published articles and pages;
in real Chromium a reader finds the seed article by one of its words, never a draft or a hidden
page, with no request leaving 127.0.0.1; without JavaScript the page points to the archives."""

from __future__ import annotations

import shutil
from urllib.parse import urlsplit

import pytest
from axe_playwright_python.sync_playwright import Axe

from blog.build import ROOT
from tests.conftest import ARTICLE_PATH, Site, build_site, serve_folder, write_article

WCAG = {"runOnly": {"type": "tag", "values": ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa"]}}
SEED_WORD = "sparring"  # in the seed article's text only
DRAFT_WORD = "Quokkafeather"  # only in a draft
HIDDEN_WORD = "Wombatlantern"  # only in a hidden page
SHARE_WORD = "Pinterest"  # only in the share links, under the article (not indexed)


@pytest.fixture(scope="module")
def searchable(tmp_path_factory):
    """The real content plus a draft article and a hidden page, built and served."""
    content = tmp_path_factory.mktemp("search") / "content"
    shutil.copytree(ROOT / "content", content)
    write_article(
        content,
        "draft",
        "A Draft About Stairs",
        "2026-11-20 10:00",
        body=f"The {DRAFT_WORD} exercise is not ready yet.",
        status="draft",
    )
    (content / "pages" / "hidden.md").write_text(
        f"Title: Hidden Page\nStatus: hidden\n\nThe {HIDDEN_WORD} page is not for the menu.\n",
        encoding="utf-8",
    )
    output = content.parent / "output"
    server = serve_folder(output)
    site = build_site(
        output, server.url, PATH=content, ISSO_URL="", NEWSLETTER_URL=server.url + "/subscribe"
    )
    yield site
    server.stop()


def test_the_build_writes_the_search_page_and_its_index(searchable):
    output = searchable.output
    assert (output / "drafts").is_dir() and (output / "hidden-page" / "index.html").is_file()
    html = searchable.page("search/")
    assert f'<script src="{searchable.url}/pagefind/pagefind-ui.js" defer>' in html
    for name in ("pagefind-entry.json", "pagefind.js", "pagefind-ui.js", "pagefind-ui.css"):
        assert (output / "pagefind" / name).is_file(), name
    assert not list(output.glob(".pagefind*")), "no temporary folder is left in the output"
    # Every page's menu links to it.
    for path in ("", ARTICLE_PATH, "archives/"):
        assert f'<a href="{searchable.url}/search/">Search</a>' in searchable.page(path), path


def test_a_second_build_replaces_the_index(searchable, tmp_path):
    """Pagefind's fragments are named by content: an article gone from the site is gone from the
    index, not left behind by an earlier build."""
    content = tmp_path / "content"
    shutil.copytree(ROOT / "content", content)
    extra = write_article(content, "extra", "Extra", "2026-11-01 10:00", body="Brief.")
    output = tmp_path / "output"
    build_site(output, "http://127.0.0.1:9", PATH=content)
    before = {p.name for p in (output / "pagefind" / "fragment").iterdir()}
    extra.unlink()
    build_site(output, "http://127.0.0.1:9", PATH=content)
    after = {p.name for p in (output / "pagefind" / "fragment").iterdir()}
    assert len(after) == len(before) - 1 and after < before


def open_search(new_context, site, *, width=1280, scheme="light", javascript=True):
    context = new_context(
        viewport={"width": width, "height": 800},
        color_scheme=scheme,
        java_script_enabled=javascript,
    )
    page = context.new_page()
    requests = []
    page.on("request", lambda request: requests.append(request.url))
    page.goto(f"{site.url}/search/", wait_until="networkidle")
    return page, requests


def search(page, words):
    page.locator(".pagefind-ui__search-input").fill(words)
    # Done when the message says how many pages match and that many results show their link
    # (each result is a placeholder until its fragment has loaded).
    page.wait_for_function(
        """() => {
          const m = document.querySelector('.pagefind-ui__message');
          const found = m && /^(No|\\d+) results? for/.exec(m.textContent.trim());
          if (!found) return false;
          const items = [...document.querySelectorAll('li.pagefind-ui__result')];
          const loaded = items.every(li => li.querySelector('a.pagefind-ui__result-link'));
          return loaded && items.length === (found[1] === 'No' ? 0 : Number(found[1]));
        }""",
        timeout=10_000,
    )
    hrefs = page.locator("li.pagefind-ui__result").evaluate_all(
        "items => items.map(li => li.querySelector('a').href)"
    )
    return [urlsplit(href).path for href in hrefs]


def test_a_word_of_the_seed_article_finds_it_and_nothing_leaves_the_site(new_context, searchable):
    page, requests = open_search(new_context, searchable)
    assert search(page, SEED_WORD) == [f"/{ARTICLE_PATH}"]
    page.locator(".pagefind-ui__result-link").first.click()
    page.wait_for_url(f"{searchable.url}/{ARTICLE_PATH}")
    hosts = {urlsplit(url).hostname for url in requests if urlsplit(url).scheme != "data"}
    assert hosts == {"127.0.0.1"}, f"requests left 127.0.0.1: {requests}"


@pytest.mark.parametrize("word", [DRAFT_WORD, HIDDEN_WORD, SHARE_WORD])
def test_drafts_hidden_pages_and_the_page_chrome_are_not_found(new_context, searchable, word):
    page, _ = open_search(new_context, searchable)
    assert search(page, word) == []
    assert "No results" in page.locator(".pagefind-ui__message").inner_text()


def test_the_article_page_does_not_load_pagefind(new_context, searchable):
    context = new_context(viewport={"width": 1280, "height": 800})
    page = context.new_page()
    requests = []
    page.on("request", lambda request: requests.append(request.url))
    page.goto(f"{searchable.url}/{ARTICLE_PATH}", wait_until="networkidle")
    assert not [url for url in requests if "pagefind" in url or "search" in url], requests


def test_without_javascript_the_page_points_to_the_archives(new_context, searchable, artifacts):
    page, requests = open_search(new_context, searchable, width=360, javascript=False)
    page.screenshot(path=artifacts / "search-360-nojs.png", full_page=True)
    assert page.get_by_text("Search needs JavaScript").is_visible()
    archives = page.get_by_role("link", name="the archives")
    assert archives.get_attribute("href") == f"{searchable.url}/archives/"
    archives.click()
    page.wait_for_url(f"{searchable.url}/archives/")
    assert page.get_by_role("link", name="The Best Muscle to Train for Knee Pain").is_visible()


@pytest.mark.parametrize("scheme", ["light", "dark"])
@pytest.mark.parametrize("width", [360, 1280])
def test_the_search_page_is_accessible_and_fits(new_context, searchable, artifacts, width, scheme):
    page, requests = open_search(new_context, searchable, width=width, scheme=scheme)
    assert search(page, "knee") != []
    page.screenshot(path=artifacts / f"search-{width}-{scheme}.png", full_page=True)
    hosts = {urlsplit(url).hostname for url in requests if urlsplit(url).scheme != "data"}
    assert hosts == {"127.0.0.1"}, f"requests left 127.0.0.1: {requests}"
    overflow = page.evaluate(
        "document.documentElement.scrollWidth - document.documentElement.clientWidth"
    )
    assert overflow <= 0, f"horizontal scroll of {overflow}px at {width}px"
    results = Axe().run(page, options=WCAG)
    assert results.violations_count == 0, results.generate_report()


def test_while_serving_a_new_article_becomes_findable(new_context, tmp_path):
    """`invoke serve` indexes after its first build, then each rebuild (with the content cache)
    indexes in the background: the rebuild does not wait for Pagefind, and the new article is
    found once it is done."""
    from blog.build import build
    from blog.search import index_while_serving, wait

    content, output = tmp_path / "content", tmp_path / "output"
    shutil.copytree(ROOT / "content", content)
    output.mkdir()
    server = serve_folder(output)
    try:

        def rebuild():  # what tasks.serve runs after each save
            build("pelicanconf.py", cache=tmp_path / "cache", PATH=content, OUTPUT_PATH=output,
                  SITEURL=server.url, ISSO_URL="")  # fmt: skip
            index_while_serving(output)

        rebuild()
        assert (output / "pagefind" / "pagefind-ui.js").is_file(), "indexed before serving"
        write_article(content, "new", "Stairs Again", "2026-11-24 10:00", body="Capybaratrot.")
        rebuild()
        assert wait(30)
        page, _ = open_search(new_context, Site(output, server.url))
        assert search(page, "Capybaratrot") == ["/2026/stairs-again/"]
    finally:
        server.stop()
