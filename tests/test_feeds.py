"""Feeds made by the feedgen plugin, from fixture content built by a real Pelican build."""

import re
import uuid
from datetime import UTC, datetime, timedelta
from xml.etree import ElementTree

import feedparser
import pytest

from blog.build import build_feeds
from tests.conftest import build_site, write_article

SITEURL = "https://blog.example"
RELATIVE_BODY = """Intro with an ![illustration](/images/dot.png) and [the about page](/about/).

<img src="images/dot.png" srcset="images/dot.png 1x, /images/dot.png 2x" alt="dot">

See [a section](#steps) and [another article]({filename}/articles/plain.md).

## Steps {#steps}

1. One
2. Two
"""


@pytest.fixture
def fixture_content(content_dir):
    (content_dir / "images" / "dot.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 40)
    (content_dir / "pages" / "about.md").write_text("Title: About\n\nAbout me.\n")
    future = (datetime.now(UTC) + timedelta(days=30)).strftime("%Y-%m-%d %H:%M")
    ids = {
        "plain": str(uuid.uuid4()),
        "unicode": str(uuid.uuid4()),
        "tricky": str(uuid.uuid4()),
    }
    write_article(
        content_dir,
        "plain",
        "Plain article",
        "2026-01-01 10:00",
        id=ids["plain"],
        subtitle="A dek with <angle> & ampersand",
        summary="The first one.",
        image="images/dot.png",
    )
    write_article(
        content_dir,
        "unicode",
        "Über Knie — 膝の痛み ✓",
        "2026-02-01 10:00",
        id=ids["unicode"],
        category="Übungen",
        tags="knie, 膝",
        body=RELATIVE_BODY,
    )
    write_article(
        content_dir,
        "tricky",
        'Knees & Hips <Part 1> "quoted"',
        "2026-03-01 10:00",
        id=ids["tricky"],
        summary="Ampersand & angle <brackets>.",
    )
    write_article(content_dir, "draft", "A draft", "2026-01-15 10:00", status="draft")
    write_article(content_dir, "hidden", "A hidden one", "2026-01-16 10:00", status="hidden")
    write_article(content_dir, "future", "From the future", future)
    return content_dir, ids


def build(tmp_path, content, name="out"):
    output = tmp_path / name
    build_site(output, SITEURL, PATH=content)
    return output


def parse(output, name):
    data = (output / "feeds" / name).read_bytes()
    feed = feedparser.parse(data)
    assert not feed.bozo, feed.get("bozo_exception")
    return feed, data


@pytest.mark.parametrize("name", ["all.rss.xml", "all.atom.xml"])
def test_feeds_hold_exactly_the_published_articles_newest_first(tmp_path, fixture_content, name):
    content, ids = fixture_content
    feed, _ = parse(build(tmp_path, content), name)
    titles = [entry.title for entry in feed.entries]
    assert titles == ['Knees & Hips <Part 1> "quoted"', "Über Knie — 膝の痛み ✓", "Plain article"]
    assert [entry.id for entry in feed.entries] == [
        f"urn:uuid:{ids['tricky']}",
        f"urn:uuid:{ids['unicode']}",
        f"urn:uuid:{ids['plain']}",
    ]
    assert feed.feed.title == "Walk Again"
    self_links = [link.href for link in feed.feed.links if link.rel == "self"]
    assert self_links == [f"{SITEURL}/feeds/{name}"]


def test_rss_items_have_full_content_summary_author_categories_and_image(tmp_path, fixture_content):
    content, _ = fixture_content
    output = build(tmp_path, content)
    feed, data = parse(output, "all.rss.xml")
    unicode_entry = feed.entries[1]
    assert unicode_entry.link == f"{SITEURL}/2026/uber-knie-xi-notong-mi/"
    assert "<li>Two</li>" in unicode_entry.content[0].value  # the full article, not an excerpt
    assert unicode_entry.author == "Mark Williams"
    assert {t.term for t in unicode_entry.tags} == {"Übungen", "knie", "膝"}
    plain = feed.entries[2]
    assert plain.summary == "<p>The first one.</p>"
    assert plain.enclosures[0].href == f"{SITEURL}/images/dot.png"
    assert plain.enclosures[0].type == "image/png"
    assert plain.enclosures[0].length == "48"
    assert plain.media_content[0]["url"] == f"{SITEURL}/images/dot.png"
    assert b'<guid isPermaLink="false">urn:uuid:' in data
    assert b"<lastBuildDate>Sun, 01 Mar 2026 10:00:00 +0000</lastBuildDate>" in data


def test_every_url_in_content_is_absolute(tmp_path, fixture_content):
    content, _ = fixture_content
    output = build(tmp_path, content)
    # Read the raw XML: feedparser's sanitizer would drop srcset before we could check it.
    contents = {
        "all.rss.xml": ".//item/{http://purl.org/rss/1.0/modules/content/}encoded",
        "all.atom.xml": ".//{http://www.w3.org/2005/Atom}entry/{http://www.w3.org/2005/Atom}content",
    }
    for name, path in contents.items():
        parse(output, name)
        html = ElementTree.parse(output / "feeds" / name).findall(path)[1].text
        urls = re.findall(r'(?:href|src)="([^"]*)"', html)
        urls += [u.split()[0] for s in re.findall(r'srcset="([^"]*)"', html) for u in s.split(",")]
        assert len(urls) >= 6
        assert all(url.startswith(f"{SITEURL}/") for url in urls), urls
        assert f'href="{SITEURL}/2026/uber-knie-xi-notong-mi/#steps"' in html
        assert f'href="{SITEURL}/2026/plain-article/"' in html


def test_titles_and_text_are_escaped_not_broken(tmp_path, fixture_content):
    content, _ = fixture_content
    output = build(tmp_path, content)
    _, rss = parse(output, "all.rss.xml")
    assert b'<title>Knees &amp; Hips &lt;Part 1&gt; "quoted"</title>' in rss
    feed, _ = parse(output, "all.atom.xml")
    assert feed.entries[0].title == 'Knees & Hips <Part 1> "quoted"'
    assert feed.entries[0].summary == "<p>Ampersand &amp; angle <brackets>.</p>" or (
        "Ampersand &amp; angle" in feed.entries[0].summary
    )


def test_one_feed_per_category(tmp_path, fixture_content):
    content, _ = fixture_content
    output = build(tmp_path, content)
    rehab, _ = parse(output, "rehab.rss.xml")
    assert [e.title for e in rehab.entries] == ['Knees & Hips <Part 1> "quoted"', "Plain article"]
    ubungen, _ = parse(output, "ubungen.atom.xml")
    assert [e.title for e in ubungen.entries] == ["Über Knie — 膝の痛み ✓"]
    assert ubungen.feed.link == f"{SITEURL}/category/ubungen/"


def test_rebuild_writes_byte_identical_feeds(tmp_path, fixture_content):
    content, _ = fixture_content
    first = build(tmp_path, content, "one")
    second = build(tmp_path, content, "two")
    for path in sorted((first / "feeds").iterdir()):
        assert path.read_bytes() == (second / "feeds" / path.name).read_bytes(), path.name


def test_guid_survives_a_slug_change(tmp_path, fixture_content):
    content, ids = fixture_content
    before, _ = parse(build(tmp_path, content, "before"), "all.rss.xml")
    source = content / "articles" / "plain.md"
    source.write_text(source.read_text().replace("Title: Plain", "Slug: renamed\nTitle: Plain"))
    after, _ = parse(build(tmp_path, content, "after"), "all.rss.xml")
    old = next(e for e in before.entries if e.title == "Plain article")
    new = next(e for e in after.entries if e.title == "Plain article")
    assert old.link != new.link and new.link == f"{SITEURL}/2026/renamed/"
    assert old.id == new.id == f"urn:uuid:{ids['plain']}"


def test_max_items_setting(tmp_path, fixture_content):
    content, _ = fixture_content
    output = tmp_path / "out"
    build_site(output, SITEURL, PATH=content, FEEDS={"max_items": 2})
    feed, _ = parse(output, "all.rss.xml")
    assert len(feed.entries) == 2


def test_feed_task_rebuilds_only_the_feeds(tmp_path, fixture_content):
    content, _ = fixture_content
    output = tmp_path / "out"
    written = build_feeds("pelicanconf.py", PATH=content, OUTPUT_PATH=output, SITEURL=SITEURL)
    assert "feeds/all.rss.xml" in written and "feeds/ubungen.atom.xml" in written
    assert not (output / "index.html").exists()
    feed, _ = parse(output, "all.atom.xml")
    assert len(feed.entries) == 3


def test_announce_opt_out_is_carried_into_the_feed(tmp_path, content_dir):
    write_article(content_dir, "quiet", "Quiet one", "2026-01-01 10:00", announce="no")
    output = build(tmp_path, content_dir)
    feed, _ = parse(output, "all.rss.xml")
    assert {"term": "no", "scheme": "announce", "label": None} in [
        dict(t) for t in feed.entries[0].tags
    ]


def test_the_dek_travels_in_its_own_element(tmp_path, fixture_content):
    content, _ = fixture_content
    output = build(tmp_path, content)
    for name in ("all.rss.xml", "all.atom.xml"):
        feed, _ = parse(output, name)
        plain = next(e for e in feed.entries if e.title == "Plain article")
        assert plain.st_subtitle == "A dek with <angle> & ampersand"
        assert "st_subtitle" not in feed.entries[0]
