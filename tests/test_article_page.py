"""The author's first article, built by Pelican with our theme: what a reader and a sharer get."""

import json
from urllib.parse import parse_qs, quote, urlsplit

import pytest
from bs4 import BeautifulSoup

from tests.conftest import ARTICLE_PATH, build_site, serve_folder


@pytest.fixture(scope="module")
def page(site):
    return BeautifulSoup(site.page(ARTICLE_PATH), "html.parser")


def meta(page, key):
    tag = page.find("meta", attrs={"property": key}) or page.find("meta", attrs={"name": key})
    assert tag is not None, f"no meta {key}"
    return tag["content"]


def test_title_dek_and_byline(page):
    assert page.h1.get_text() == "The Best Muscle to Train for Knee Pain"
    dek = page.select_one(".post-header .dek").get_text()
    assert dek == "Gluteus Medius, the most important hip muscle you\u2019ve never thought about"
    assert "Mark Williams" in page.select_one(".byline").get_text()


def test_body_keeps_the_authors_words_and_drops_the_debris(page):
    body = page.select_one(".post-body")
    text = body.get_text()
    assert "I had torn my achilles tendon" in text
    for debris in ("Share on facebook", "Like this article?", "Leave a comment", "The Author"):
        assert debris not in text
    questions = [h.get_text() for h in body.find_all("h2")]
    assert questions == ["So what does the gluteus medius do?", "How do I train my glute medius?"]


def test_fact_box_and_exercise_prescription(page):
    fact = page.select_one(".post-body aside.fact-box")
    assert fact.strong.get_text() == "Torn Achilles Tendon:"
    steps = [li.get_text() for li in page.select(".post-body ol > li")]
    assert steps == [
        "Lay on your side.",
        "Straighten your top leg.",
        "Raise and lower your leg slowly, keeping your toe pointing at the ground.",
    ]
    (card,) = page.select(".post-body section.exercise")  # the ```exercise block's card
    assert card.select_one("h3.exercise-name").get_text() == "Side lying leg raise"
    assert card.select_one(".exercise-targets").get_text() == "Targets: gluteus medius, hip"
    assert card.select("ol > li") == page.select(".post-body ol > li")
    pairs = [(d.dt.get_text(), d.dd.get_text()) for d in card.select("dl > div")]
    assert pairs == [
        ("Sets", "3"),
        ("Reps", "15\u201320"),
        ("How often", "5 times a week"),
        ("For how long", "6 weeks"),
    ]


def test_author_box(page, site):
    box = page.select_one("aside.author-box")
    assert box.select_one(".author-name").get_text() == "Mark Williams"
    assert box.select_one(".author-role").get_text() == "Registered acupuncturist"
    assert box.select_one(".monogram").get_text() == "MW"
    assert "three decades" in box.select_one(".author-bio").get_text()
    assert box.select_one(".author-name a")["href"] == f"{site.url}/author/mark-williams/"


def test_four_share_links_with_exact_encoded_urls(page, site):
    url = f"{site.url}/{ARTICLE_PATH}"
    enc = quote(url, safe="")
    title = quote("The Best Muscle to Train for Knee Pain", safe="")
    image = quote(f"{site.url}/images/gluteus-medius.png", safe="")
    links = {a["aria-label"]: a for a in page.select(".share a.share-link")}
    assert (
        links["Share on Facebook"]["href"] == f"https://www.facebook.com/sharer/sharer.php?u={enc}"
    )
    assert links["Share on X (Twitter)"]["href"] == (
        f"https://twitter.com/intent/tweet?url={enc}&text={title}"
    )
    assert links["Share on LinkedIn"]["href"] == (
        f"https://www.linkedin.com/sharing/share-offsite/?url={enc}"
    )
    pin = links["Share on Pinterest"]["href"]
    assert pin.startswith(f"https://www.pinterest.com/pin/create/button/?url={enc}&media={image}&")
    assert parse_qs(urlsplit(pin).query)["description"] == [
        "The Best Muscle to Train for Knee Pain: Gluteus Medius, the most important hip muscle"
        " you\u2019ve never thought about"
    ]
    assert links["Share by email"]["href"].startswith(f"mailto:?subject={title}&body=")
    for label in ("Facebook", "X (Twitter)", "LinkedIn", "Pinterest"):
        link = links[f"Share on {label}"]
        assert "noopener" in link["rel"]
        assert link.find("svg") is not None
    assert page.select_one(".share-copy")["data-url"] == url


def test_open_graph_twitter_canonical(page, site):
    url = f"{site.url}/{ARTICLE_PATH}"
    assert page.find("link", rel="canonical")["href"] == url
    assert meta(page, "og:type") == "article"
    assert meta(page, "og:title") == "The Best Muscle to Train for Knee Pain"
    assert meta(page, "og:url") == url
    assert meta(page, "og:image") == f"{site.url}/images/gluteus-medius.png"
    assert meta(page, "og:description").startswith("After a torn Achilles tendon")
    assert meta(page, "article:published_time") == "2026-11-23T18:00:00+00:00"
    assert meta(page, "twitter:card") == "summary_large_image"
    assert meta(page, "twitter:image") == f"{site.url}/images/gluteus-medius.png"
    assert meta(page, "description") == meta(page, "og:description")


def test_json_ld_blog_posting(page, site):
    data = json.loads(page.find("script", type="application/ld+json").string)
    assert data["@type"] == "BlogPosting"
    assert data["headline"] == "The Best Muscle to Train for Knee Pain"
    assert data["author"] == {
        "@type": "Person",
        "name": "Mark Williams",
        "jobTitle": "Registered acupuncturist",
        "url": f"{site.url}/author/mark-williams/",
    }
    assert data["image"] == f"{site.url}/images/gluteus-medius.png"
    assert data["datePublished"] == "2026-11-23T18:00:00+00:00"
    assert data["mainEntityOfPage"] == f"{site.url}/{ARTICLE_PATH}"


def test_stay_tuned_form_works_without_javascript(page, site):
    form = page.select_one("#stay-tuned-article form")
    assert form["method"] == "post"
    assert form["action"] == f"{site.url}/subscribe"
    field = form.find("input", attrs={"name": "email"})
    assert field["type"] == "email" and field.has_attr("required")
    assert form.find("label", attrs={"for": field["id"]}).get_text() == "Your email address"
    assert form.select_one("button[type=submit]").get_text() == "Subscribe"
    assert "Unsubscribe with one click" in form.select_one(".consent").get_text()
    assert form.find("input", attrs={"name": "website"}) is not None  # the honeypot
    source = form.find("input", attrs={"name": "source"})["value"]
    assert source == f"{site.url}/{ARTICLE_PATH}"  # the consent record names the canonical page
    rss = page.select_one("#stay-tuned-article .rss-link a")
    assert rss["href"] == f"{site.url}/feeds/all.rss.xml"
    assert rss.get_text(strip=True) == "Subscribe via RSS"
    # One "Stay tuned" box per article page (two regions with one name confuse screen readers):
    # the footer's is left out here, the menu's Subscribe link points at the article's.
    assert len(page.select("section.stay-tuned")) == 1
    assert page.select_one("#stay-tuned-footer") is None
    assert page.select_one("nav a[href='#stay-tuned-article']").get_text() == "Subscribe"


def test_comments_without_a_server_say_so(page):
    section = page.select_one("section#comments")
    assert section.h2.get_text() == "Leave a comment"
    assert section.select_one("#isso-thread") is None
    assert "not open" in section.get_text()
    assert not page.find("script", src=lambda s: s and "embed" in s)


def test_comments_with_isso_url_render_a_lazy_thread(tmp_path):
    server = serve_folder(tmp_path)
    try:
        built = build_site(tmp_path, server.url, ISSO_URL="http://127.0.0.1:8999")
        page = BeautifulSoup(built.page(ARTICLE_PATH), "html.parser")
    finally:
        server.stop()
    thread = page.select_one("#comments #isso-thread")
    assert thread["data-isso-id"] == "6f1d7c52-3b8e-4f0a-9a57-2c4e8d1b9e30"
    assert page.select_one("#comments button[data-isso]")["data-isso"] == "http://127.0.0.1:8999"
    # The embed is not in the page: it loads only when the reader reaches the comments.
    assert not page.find("script", src=lambda s: s and "8999" in s)


def test_every_page_links_its_feeds(site):
    for path in ("", ARTICLE_PATH, "about/", "archives/", "category/rehab/", "tags/"):
        page = BeautifulSoup(site.page(path), "html.parser")
        feeds = {link["type"]: link["href"] for link in page.find_all("link", rel="alternate")}
        assert feeds["application/rss+xml"].startswith(f"{site.url}/feeds/"), path
        assert feeds["application/atom+xml"].startswith(f"{site.url}/feeds/"), path


def test_site_has_every_template_page(site):
    for path in (
        "index.html",
        "404.html",
        "archives/index.html",
        "2026/index.html",
        "categories/index.html",
        "category/rehab/index.html",
        "tags/index.html",
        "tag/knee-pain/index.html",
        "authors/index.html",
        "author/mark-williams/index.html",
        "about/index.html",
    ):
        assert (site.output / path).is_file(), path
    about = BeautifulSoup(site.page("about/"), "html.parser")
    assert about.select_one("aside.author-box .author-role").get_text() == (
        "Registered acupuncturist"
    )


def test_sitemap_and_robots(site):
    sitemap = (site.output / "sitemap.xml").read_text()
    assert f"<loc>{site.url}/{ARTICLE_PATH}</loc>" in sitemap
    assert f"<loc>{site.url}/about/</loc>" in sitemap
    robots = (site.output / "robots.txt").read_text()
    assert f"Sitemap: {site.url}/sitemap.xml" in robots
