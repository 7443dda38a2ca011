"""The article page in real headless Chromium: accessible, private, phone-friendly, and seen."""

from urllib.parse import urlsplit

import pytest
from axe_playwright_python.sync_playwright import Axe

from tests.conftest import ARTICLE_PATH

WCAG = {"runOnly": {"type": "tag", "values": ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa"]}}
# Best-practice rules the pages keep too: landmarks with one name each (one "Stay tuned" box).
LANDMARKS = {"runOnly": {"type": "rule", "values": ["landmark-unique", "region"]}}


def open_page(new_context, url, *, width, scheme="light", javascript=True, permissions=()):
    """A page in a fresh context (closed after the test), and the URLs it requested."""
    context = new_context(
        viewport={"width": width, "height": 800},
        color_scheme=scheme,
        java_script_enabled=javascript,
        permissions=list(permissions),
    )
    page = context.new_page()
    requests = []
    page.on("request", lambda request: requests.append(request.url))
    page.goto(url, wait_until="networkidle")
    return page, requests


@pytest.mark.parametrize("scheme", ["light", "dark"])
@pytest.mark.parametrize("width", [360, 1280])
def test_article_page_accessible_private_and_fits(new_context, site, artifacts, width, scheme):
    page, requests = open_page(
        new_context, f"{site.url}/{ARTICLE_PATH}", width=width, scheme=scheme
    )
    page.screenshot(path=artifacts / f"article-{width}-{scheme}.png", full_page=True)
    hosts = {urlsplit(url).hostname for url in requests if not url.startswith("data:")}
    assert hosts == {"127.0.0.1"}, f"requests left 127.0.0.1: {requests}"
    overflow = page.evaluate(
        "document.documentElement.scrollWidth - document.documentElement.clientWidth"
    )
    assert overflow <= 0, f"horizontal scroll of {overflow}px at {width}px"
    results = Axe().run(page, options=WCAG)
    assert results.violations_count == 0, results.generate_report()
    results = Axe().run(page, options=LANDMARKS)
    assert results.violations_count == 0, results.generate_report()
    if scheme == "dark":
        background = page.evaluate("getComputedStyle(document.body).backgroundColor")
        assert background == "rgb(18, 23, 21)"


@pytest.mark.parametrize(
    "path", ["", "about/", "archives/", "exercises/", "category/rehab/", "404.html"]
)
def test_other_pages_have_no_axe_violations_on_a_phone(new_context, site, path):
    page, requests = open_page(new_context, f"{site.url}/{path}", width=360)
    assert {urlsplit(url).hostname for url in requests} == {"127.0.0.1"}
    results = Axe().run(page, options=WCAG)
    assert results.violations_count == 0, results.generate_report()
    assert page.evaluate("document.documentElement.scrollWidth <= innerWidth")


def test_skip_link_is_first_and_visible_on_focus(new_context, site):
    page, _ = open_page(new_context, f"{site.url}/{ARTICLE_PATH}", width=1280)
    page.keyboard.press("Tab")
    focused = page.evaluate("document.activeElement.textContent")
    assert focused == "Skip to content"
    box = page.locator(".skip-link").bounding_box()
    assert box["y"] >= 0, "the focused skip link is on screen"
    outline = page.evaluate("getComputedStyle(document.activeElement).outlineStyle")
    assert outline == "solid"
    page.keyboard.press("Enter")
    assert page.evaluate("location.hash") == "#main"


def test_copy_link_copies_the_canonical_url(new_context, site):
    page, _ = open_page(
        new_context,
        f"{site.url}/{ARTICLE_PATH}",
        width=1280,
        permissions=["clipboard-read", "clipboard-write"],
    )
    page.get_by_role("button", name="Copy link").click()
    page.get_by_text("Link copied.").wait_for(timeout=5000)
    copied = page.evaluate("navigator.clipboard.readText()")
    assert copied == f"{site.url}/{ARTICLE_PATH}"


def test_without_javascript_share_links_and_form_still_work(new_context, site):
    page, _ = open_page(new_context, f"{site.url}/{ARTICLE_PATH}", width=360, javascript=False)
    names = [
        page.get_by_role("link", name=f"Share on {network}").count()
        for network in ("Facebook", "X (Twitter)", "LinkedIn", "Pinterest")
    ]
    assert names == [1, 1, 1, 1]
    assert page.get_by_role("button", name="Copy link").count() == 0  # stays hidden
    form = page.locator("#stay-tuned-article form")
    assert form.get_attribute("method") == "post"
    assert page.get_by_label("Your email address").first.is_visible()


def test_print_stylesheet_hides_the_chrome(new_context, site):
    page, _ = open_page(new_context, f"{site.url}/{ARTICLE_PATH}", width=1280)
    page.emulate_media(media="print")
    for selector in (".share", ".stay-tuned", ".comments", ".site-footer"):
        assert not page.locator(selector).first.is_visible(), selector
    assert page.locator(".post-body").is_visible()


@pytest.mark.parametrize("width", [320, 360])
def test_on_a_phone_the_menu_folds_into_columns_with_subscribe_beside_the_name(
    new_context, site, artifacts, width
):
    """Issue 22: at 360 px the menu wrapped like text, leaving "Subscribe" alone on a line. On a
    phone it folds as a designed menu: "Subscribe" a button on the name's line, the other links
    in three even columns below; nothing wider than the screen."""
    page, _ = open_page(new_context, f"{site.url}/{ARTICLE_PATH}", width=width)
    page.locator("header.site-header").screenshot(path=artifacts / f"menu-{width}.png")
    links = page.locator("nav .nav-list a")
    boxes = {links.nth(i).inner_text(): links.nth(i).bounding_box() for i in range(links.count())}
    name, subscribe = page.locator(".site-name").bounding_box(), boxes.pop("Subscribe")

    def middle(box):
        return box["y"] + box["height"] / 2

    assert middle(subscribe) == pytest.approx(middle(name), abs=2)
    assert name["x"] + name["width"] < subscribe["x"] < subscribe["x"] + subscribe["width"] <= width
    assert all(middle(box) > name["y"] + name["height"] for box in boxes.values())  # below it
    columns = sorted({round(box["x"]) for box in boxes.values()})
    top = min(box["y"] for box in boxes.values())
    first_row = [box for box in boxes.values() if abs(box["y"] - top) < 2]
    assert len(columns) == len(first_row) == min(3, len(boxes)), columns
    assert all(box["x"] + box["width"] <= width for box in boxes.values())
    assert page.evaluate("document.documentElement.scrollWidth <= innerWidth")
