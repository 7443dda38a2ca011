"""The topics a reader can choose (issue 20): the blog's categories in the author's order and
names, "New videos" with a video channel, learnt by the endpoint from `feeds/topics.json`; what
the form posts, checked; what is stored, encoded."""

from __future__ import annotations

import json

import pytest

from blog import feed_contract
from newsletter.announcements.feed import parse_feed
from newsletter.subscriptions import topics
from newsletter.subscriptions.topics import Topic, TopicError
from tests.conftest import serve_folder
from tests.reader_choices_helpers import topic_feed

KNEES, HIPS, VIDEOS = (
    Topic("knees", "Knee pain"),
    Topic("hips", "Hips"),
    Topic("videos", "New videos"),
)


def document(*pairs) -> bytes:
    listed = [{"slug": slug, "name": name} for slug, name in pairs]
    return json.dumps({"version": 1, "site": "https://x.example", "topics": listed}).encode()


def test_the_authors_order_and_names_first_then_the_rest_by_name():
    listed = feed_contract.topic_list(
        [("rehab", "Rehab"), ("hips", "Hips"), ("knees", "Knees"), ("ankles", "Ankles")],
        {"knees": "Knee pain", "gone": "Not published", "rehab": "Rehab and exercises"},
        videos=True,
    )
    assert listed == [
        {"slug": "knees", "name": "Knee pain"},
        {"slug": "rehab", "name": "Rehab and exercises"},
        {"slug": "ankles", "name": "Ankles"},
        {"slug": "hips", "name": "Hips"},
        {"slug": "videos", "name": "New videos"},
    ]
    placed = feed_contract.topic_list([("knees", "Knees")], {"videos": "Watch", "knees": "K"}, True)
    assert [t["slug"] for t in placed] == ["videos", "knees"]  # the author placed videos first
    assert feed_contract.topic_list([("knees", "Knees")], {}, videos=False) == [
        {"slug": "knees", "name": "Knees"}
    ]


def test_parse_reads_the_file_and_refuses_what_is_not_it():
    assert topics.parse(document(("knees", "Knee pain"), ("hips", "Hips"))) == [KNEES, HIPS]
    assert topics.parse(document(("knees", "Knee pain")), videos=True) == [KNEES, VIDEOS]
    for bad, words in (
        (b"not json", "not JSON"),
        (b'{"version": 2, "topics": []}', "not version 1"),
        (document(("Knees!", "K")), "is not a slug"),
        (document(("knees", " ")), "no name"),
    ):
        with pytest.raises(TopicError, match=words):
            topics.parse(bad)


def test_available_reads_the_blogs_file_beside_its_feed(make_settings, tmp_path):
    (tmp_path / "feeds").mkdir()
    (tmp_path / "feeds" / "topics.json").write_bytes(document(("knees", "Knee pain")))
    server = serve_folder(tmp_path)
    topics.forget_cache()
    try:
        settings = make_settings(feed_url=f"{server.url}/feeds/all.rss.xml")
        assert topics.source_of(settings) == f"{server.url}/feeds/topics.json"
        assert topics.available(settings) == [KNEES]
        video = settings.replace(video_feed_url="https://www.youtube.com/feeds/videos.xml?c=1")
        assert topics.available(video) == [KNEES, VIDEOS]
        (tmp_path / "feeds" / "topics.json").unlink()
        topics._cache[topics.source_of(settings)] = (0.0, [KNEES])  # kept, and now stale
        assert topics.available(settings) == [KNEES]  # the last list read, for a while
        topics.forget_cache()
        assert topics.available(settings) == []  # unknown: from_form then checks the shape
        (tmp_path / "feeds" / "topics.json").write_bytes(document(("hips", "Hips")))
        assert topics.available(settings) == []  # a failure is not retried at once ...
        topics._cache[topics.source_of(settings)] = (0.0, [])
        assert topics.available(settings) == [HIPS]  # ... but after REREAD_SECONDS
    finally:
        server.stop()
        topics.forget_cache()


def test_encode_and_decode():
    assert topics.encode(None) is None and topics.decode(None) is None
    assert topics.encode({"knees", "hips"}) == '["hips","knees"]'
    assert topics.decode('["hips","knees"]') == frozenset({"hips", "knees"})
    with pytest.raises(TopicError, match="at least one"):
        topics.encode(set())
    with pytest.raises(TopicError, match="not a topic"):
        topics.encode({'"], "x'})
    for broken in ("not json", '{"a": 1}', "[1, 2]"):
        with pytest.raises(TopicError):
            topics.decode(broken)


AVAILABLE = [KNEES, HIPS, VIDEOS]


@pytest.mark.parametrize(
    ("values", "chosen"),
    [
        ([], None),  # an older form, an API client: everything
        (["", "knees", "hips", "videos"], None),  # all ticked: everything, later topics too
        (["", "knees"], frozenset({"knees"})),
        (["", "knees", "knees", " hips "], frozenset({"knees", "hips"})),
        (["knees"], frozenset({"knees"})),  # without the marker (JSON)
    ],
)
def test_from_form(values, chosen):
    assert topics.from_form(values, AVAILABLE) == chosen


@pytest.mark.parametrize(
    ("values", "words"),
    [
        ([""], "Choose at least one topic"),  # the marker alone: none ticked
        (["", "ankles"], "Unknown topic 'ankles'; choose among: knees, hips, videos."),
        (["", "knees"] * 150, "Too many topics sent"),
        (["", "k" * 65], "too long"),
        (["", "kn\u00e9es"], "Unknown topic 'kn\\xe9es'"),
        (["", "knees\u202e"], "Unknown topic 'knees\\u202e'"),
        (["", "knees\x00"], "Unknown topic"),
    ],
)
def test_from_form_refuses_with_a_clear_message(values, words):
    with pytest.raises(TopicError) as refused:
        topics.from_form(values, AVAILABLE)
    assert words in str(refused.value)


def test_from_form_without_the_list_checks_the_shape_only():
    assert topics.from_form(["", "knees"], []) == frozenset({"knees"})
    with pytest.raises(TopicError, match="Unknown topic"):
        topics.from_form(["", "Knees Pain"], [])


def test_the_feed_says_each_items_topic(tmp_path):
    from datetime import UTC, datetime

    feed = topic_feed(tmp_path / "f.xml", [(1, "One", "knees", datetime.now(UTC))])
    (item,) = parse_feed(feed.read_bytes(), str(feed)).items
    assert item.topic == "knees"
    assert item.to_dict()["topic"] == "knees"
    old = item.to_dict()
    del old["topic"]  # an announcement planned before topics: read back with none
    assert type(item).from_dict(old).topic == ""


def test_the_build_writes_the_topics_and_the_forms_checkboxes(tmp_path, content_dir):
    """A real Pelican build: feeds/topics.json in the author's order and names, the feed's
    topic per item, and the "Stay tuned" form's checkboxes (all ticked) and how-often radios."""
    from bs4 import BeautifulSoup

    from tests.announce_helpers import recent
    from tests.conftest import SITE_URL, build_site, write_article

    write_article(content_dir, "k", "Knees one", recent(3), category="Knees")
    write_article(content_dir, "h", "Hips one", recent(2), category="Hips")
    write_article(content_dir, "d", "A draft", recent(1), category="Ankles", status="draft")
    output = tmp_path / "output"
    names = {"hips": "Hip pain", "videos": "Watch", "knees": "Knee pain"}
    build_site(output, SITE_URL, PATH=content_dir, NEWSLETTER_TOPICS=names,
               VIDEO_CHANNEL_FEED_URL="https://www.youtube.com/feeds/videos.xml?c=1")  # fmt: skip
    written = json.loads((output / "feeds" / "topics.json").read_text())
    assert written == {
        "version": 1,
        "site": SITE_URL,
        "topics": [
            {"slug": "hips", "name": "Hip pain"},
            {"slug": "videos", "name": "Watch"},
            {"slug": "knees", "name": "Knee pain"},
        ],
    }  # fmt: skip  (the draft's category is nobody's topic)
    assert topics.parse((output / "feeds" / "topics.json").read_bytes())[0] == Topic(
        "hips", "Hip pain"
    )
    feed = parse_feed((output / "feeds" / "all.rss.xml").read_bytes(), "all.rss.xml")
    assert {item.title: item.topic for item in feed.items} == {
        "Knees one": "knees",
        "Hips one": "hips",
    }

    page = BeautifulSoup(next(output.glob("*/knees-one/index.html")).read_text(), "html.parser")
    form = page.select_one("#stay-tuned-article form")
    fields = [(i["name"], i.get("value"), i.has_attr("checked")) for i in form.select("input")
              if i["name"] in ("topics", "frequency")]  # fmt: skip
    assert fields == [
        ("topics", "", False), ("topics", "hips", True), ("topics", "videos", True),
        ("topics", "knees", True), ("frequency", "each", True), ("frequency", "weekly", False),
    ]  # fmt: skip
    assert form.select_one("label[for=topic-hips-article]").get_text() == "Hip pain"


def test_one_topic_shows_no_checkboxes(tmp_path, content_dir):
    from tests.announce_helpers import recent
    from tests.conftest import SITE_URL, build_site, write_article

    write_article(content_dir, "k", "Knees one", recent(3), category="Knees")
    output = tmp_path / "output"
    build_site(output, SITE_URL, PATH=content_dir, VIDEO_CHANNEL_FEED_URL="")
    html = next(output.glob("*/knees-one/index.html")).read_text()
    assert 'name="topics"' not in html and 'name="frequency" value="weekly"' in html


def test_reread_fetches_again_at_most_once_per_interval(make_settings, tmp_path, monkeypatch):
    (tmp_path / "feeds").mkdir()
    path = tmp_path / "feeds" / "topics.json"
    path.write_bytes(document(("knees", "Knee pain")))
    server = serve_folder(tmp_path)
    topics.forget_cache()
    try:
        settings = make_settings(feed_url=f"{server.url}/feeds/all.rss.xml")
        assert topics.available(settings) == [KNEES]
        path.write_bytes(document(("knees", "Knee pain"), ("hips", "Hips")))
        assert topics.reread(settings) == [KNEES]  # read a moment ago: not again (no flood)
        monkeypatch.setattr(topics, "REREAD_SECONDS", 0.0)
        assert topics.reread(settings) == [KNEES, HIPS]
    finally:
        server.stop()
        topics.forget_cache()
