"""Feeds made by the feedgen plugin, from fixture content built by a real Pelican build."""

import json
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
    assert {t.term for t in unicode_entry.tags if not t.scheme} == {"Übungen", "knie", "膝"}
    # its topic for the newsletter (issue 20): the category's slug, in its own domain
    assert [t.term for t in unicode_entry.tags if t.scheme == "topic"] == ["ubungen"]
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


# JSON Feed 1.1 (https://www.jsonfeed.org/version/1.1/) --------------------------------------
RFC3339 = re.compile(r"^\d{4}-\d{2}-\d{2}[Tt]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})$")
JSON_FEED_STRINGS = (
    "home_page_url", "feed_url", "description", "user_comment", "next_url", "icon", "favicon",
    "language",
)  # fmt: skip
JSON_ITEM_STRINGS = (
    "url", "external_url", "title", "content_html", "content_text", "summary", "image",
    "banner_image", "language",
)  # fmt: skip


def json_feed_problems(feed) -> list[str]:
    """What in a parsed document breaks the JSON Feed 1.1 spec's required fields and types."""
    problems = []

    def check_authors(where, authors):
        if not isinstance(authors, list) or not all(isinstance(a, dict) for a in authors):
            problems.append(f"{where}authors must be an array of objects")
            return
        for author in authors:
            if not any(isinstance(author.get(k), str) for k in ("name", "url", "avatar")):
                problems.append(f"{where}author {author} has no name, url or avatar")

    if feed.get("version") != "https://jsonfeed.org/version/1.1":
        problems.append(f"version is {feed.get('version')!r}")
    if not isinstance(feed.get("title"), str) or not feed["title"]:
        problems.append("title must be a non-empty string")
    problems += [
        f"{k} must be a string" for k in JSON_FEED_STRINGS if not isinstance(feed.get(k, ""), str)
    ]
    if "authors" in feed:
        check_authors("", feed["authors"])
    for hub in feed.get("hubs", []):
        if not (isinstance(hub.get("type"), str) and isinstance(hub.get("url"), str)):
            problems.append(f"hub {hub} needs a string type and url")
    if not isinstance(feed.get("items"), list):
        return [*problems, "items must be an array"]
    for n, item in enumerate(feed["items"]):
        where = f"items[{n}]."
        if not isinstance(item.get("id"), str) or not item["id"]:
            problems.append(f"{where}id must be a non-empty string")
        if not any(isinstance(item.get(k), str) for k in ("content_html", "content_text")):
            problems.append(f"{where} needs content_html or content_text")
        problems += [
            f"{where}{k} must be a string"
            for k in JSON_ITEM_STRINGS
            if not isinstance(item.get(k, ""), str)
        ]
        for key in ("date_published", "date_modified"):
            if key in item and not (isinstance(item[key], str) and RFC3339.match(item[key])):
                problems.append(f"{where}{key} {item[key]!r} is not an RFC 3339 date")
        if "authors" in item:
            check_authors(where, item["authors"])
        tags = item.get("tags", [])
        if not isinstance(tags, list) or not all(isinstance(t, str) for t in tags):
            problems.append(f"{where}tags must be an array of strings")
    return problems


def read_json_feed(output, name="all.json"):
    raw = (output / "feeds" / name).read_bytes()
    feed = json.loads(raw.decode("utf-8"))
    assert json_feed_problems(feed) == []
    return feed


def test_json_feed_is_valid_and_holds_the_rss_items(tmp_path, fixture_content):
    content, ids = fixture_content
    output = build(tmp_path, content)
    feed = read_json_feed(output)
    rss, _ = parse(output, "all.rss.xml")
    assert [item["id"] for item in feed["items"]] == [entry.id for entry in rss.entries]
    assert [item["id"] for item in feed["items"]] == [
        f"urn:uuid:{ids[name]}" for name in ("tricky", "unicode", "plain")
    ]
    assert feed["title"] == "Walk Again"
    assert feed["home_page_url"] == f"{SITEURL}/"
    assert feed["feed_url"] == f"{SITEURL}/feeds/all.json"
    assert "hubs" not in feed  # WEBSUB_HUB is off by default
    assert [item["title"] for item in feed["items"]] == [entry.title for entry in rss.entries]
    assert [item["url"] for item in feed["items"]] == [entry.link for entry in rss.entries]
    # the full content, as in the RSS (raw XML: feedparser's sanitizer drops srcset)
    encoded = "{http://purl.org/rss/1.0/modules/content/}encoded"
    rss_html = [e.text for e in ElementTree.parse(output / "feeds" / "all.rss.xml").iter(encoded)]
    assert [item["content_html"] for item in feed["items"]] == rss_html
    unicode_item = feed["items"][1]
    assert "<li>Two</li>" in unicode_item["content_html"]
    assert unicode_item["tags"] == ["Übungen", "knie", "膝"]
    assert unicode_item["date_published"] == "2026-02-01T10:00:00+00:00"
    plain = feed["items"][2]
    assert plain["summary"] == "The first one."  # plain text, as the spec asks
    assert plain["image"] == f"{SITEURL}/images/dot.png"
    assert plain["authors"] == [{"name": "Mark Williams"}]
    assert "image" not in feed["items"][0]
    tricky = feed["items"][0]
    assert tricky["title"] == 'Knees & Hips <Part 1> "quoted"'
    assert "Ampersand & angle" in tricky["summary"]  # text: no tag, no entity
    assert "<" not in tricky["summary"] and "&amp;" not in tricky["summary"]
    # one per category too, beside that category's RSS and Atom
    ubungen = read_json_feed(output, "ubungen.json")
    assert [item["title"] for item in ubungen["items"]] == ["Über Knie — 膝の痛み ✓"]
    assert ubungen["home_page_url"] == f"{SITEURL}/category/ubungen/"
    assert ubungen["feed_url"] == f"{SITEURL}/feeds/ubungen.json"


def test_every_page_links_the_json_feed_in_its_head(tmp_path, fixture_content):
    content, _ = fixture_content
    output = build(tmp_path, content)
    link = (
        '<link rel="alternate" type="application/feed+json" title="Walk Again (JSON Feed)" '
        f'href="{SITEURL}/feeds/all.json">'
    )
    pages = [p for p in sorted(output.rglob("*.html")) if "pagefind" not in p.parts]
    assert len(pages) > 10
    for page in pages:
        head = page.read_text(encoding="utf-8").split("</head>")[0]
        assert head.count(link) == 1, page.relative_to(output)
