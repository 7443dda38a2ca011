"""The author's YouTube channel as a second announcement source: a local HTTP server serves a
channel feed in YouTube's documented format (entries with yt:videoId, yt:channelId, media:group
with title, thumbnail and description)."""

from __future__ import annotations

import email
import email.policy
import functools
import http.server
import threading
from datetime import UTC, datetime, timedelta
from html import escape
from pathlib import Path

import pytest
from bs4 import BeautifulSoup

from newsletter.announcements import run as announce
from newsletter.announcements.feed import parse_feed, video_ids
from newsletter.subscriptions.subscribers import Status
from tests.announce_helpers import add_subscribers

pytestmark = pytest.mark.slow  # a channel feed over HTTP, a server per test

CHANNEL = (Path(__file__).parent / "fixtures" / "youtube-channel.xml").read_text()
READERS = ["ann@example.com", "bob@example.com", "cat@example.com"]


def when(hours_ago: float) -> datetime:
    return datetime.now(UTC) - timedelta(hours=hours_ago)


def video_entry(vid, title, hours_ago=1.0, description="What to do.\nHow often.\nWhy.\nMore.",
                short=False):  # fmt: skip
    link = f"https://www.youtube.com/{'shorts/' if short else 'watch?v='}{vid}"
    return (
        f"<entry><id>yt:video:{vid}</id><yt:videoId>{vid}</yt:videoId>"
        "<yt:channelId>UCwalkagain0000000000000</yt:channelId>"
        f'<title>{escape(title)}</title><link rel="alternate" href="{link}"/>'
        "<author><name>Walk Again</name></author>"
        f"<published>{when(hours_ago).isoformat()}</published>"
        f"<updated>{when(hours_ago).isoformat()}</updated>"
        f"<media:group><media:title>{escape(title)}</media:title>"
        f'<media:content url="https://www.youtube.com/v/{vid}?version=3" '
        'type="application/x-shockwave-flash" width="640" height="390"/>'
        f'<media:thumbnail url="https://i1.ytimg.com/vi/{vid}/hqdefault.jpg" width="480" '
        'height="360"/>'
        f"<media:description>{escape(description)}</media:description>"
        '<media:community><media:starRating count="1" average="5.00" min="1" max="5"/>'
        '<media:statistics views="10"/></media:community></media:group></entry>'
    )


def article_item(n, title, body="<p>About knees.</p>", hours_ago=1.0) -> str:
    date = when(hours_ago).strftime("%a, %d %b %Y %H:%M:%S +0000")
    return (
        f"<item><title>{escape(title)}</title><link>https://walkagain.example/2026/{n}/</link>"
        f'<guid isPermaLink="false">urn:uuid:{n}</guid><description>{escape(body)}'
        f"</description><pubDate>{date}</pubDate></item>"
    )


class Server:
    """Serves the channel feed (and the blog's) on 127.0.0.1; `channel` is what it answers."""

    def __init__(self, folder: Path):
        self.folder = folder
        handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(folder))
        handler.log_message = lambda *args: None
        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        threading.Thread(target=self.httpd.serve_forever, args=(0.05,), daemon=True).start()
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"

    def channel(self, *entries: str, raw: str | None = None) -> None:
        text = raw if raw is not None else CHANNEL.replace("<!--ENTRIES-->", "".join(entries))
        (self.folder / "videos.xml").write_text(text, encoding="utf-8")

    def blog(self, *items: str) -> None:
        (self.folder / "all.rss.xml").write_text(
            '<?xml version="1.0" encoding="UTF-8"?><rss version="2.0"><channel><title>Walk '
            "Again</title><link>https://walkagain.example/</link><description>d</description>"
            + "".join(items) + "</channel></rss>",
            encoding="utf-8",
        )  # fmt: skip

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def world(make_settings, tmp_path):
    server = Server(tmp_path / "www")
    (tmp_path / "www").mkdir()
    settings = make_settings(video_feed_url=server.url + "/videos.xml?channel_id=UCwalkagain")
    add_subscribers(settings, {address: Status.CONFIRMED for address in READERS})
    yield settings, server
    server.stop()


def run(settings, server):
    return announce.run(settings, feed_url=server.url + "/all.rss.xml")


def messages(settings) -> list[email.message.EmailMessage]:
    return [
        email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
        for path in sorted(settings.outbox.glob("*.eml"))
    ]


def test_first_run_records_then_a_new_video_goes_once_to_everyone(world):
    settings, server = world
    server.blog(article_item(1, "Old article", hours_ago=100))
    server.channel(video_entry("OldVideo001", "An old video", hours_ago=50))
    first = run(settings, server)
    assert first.ok and first.tally.sent == 0
    assert {d.item.guid for d in first.recorded} == {"urn:uuid:1", "yt:video:OldVideo001"}
    server.channel(video_entry("NewVideo001", "Side lying leg raise"),
                   video_entry("OldVideo001", "An old video", hours_ago=50))  # fmt: skip
    second = run(settings, server)
    assert second.ok and second.tally.sent == 3
    sent = messages(settings)
    assert sorted(str(m["To"]) for m in sent) == READERS
    message = sent[0]
    assert message["Subject"] == "New video: Side lying leg raise"
    html = BeautifulSoup(message.get_body(("html",)).get_content(), "html.parser")
    assert html.find("img", src="https://i1.ytimg.com/vi/NewVideo001/hqdefault.jpg") is not None
    watch = html.find("a", string="Watch the video")
    assert watch["href"] == "https://www.youtube.com/watch?v=NewVideo001"
    assert [p.get_text() for p in html.select(".summary p")] == [
        "What to do.", "How often.", "Why.",
    ]  # the description's first lines  # fmt: skip
    assert html.find("a", string="Unsubscribe") is not None
    text = message.get_body(("plain",)).get_content()
    assert "Watch the video: https://www.youtube.com/watch?v=NewVideo001" in text
    assert "Unsubscribe with one click:" in text and message["List-Unsubscribe"]
    again = run(settings, server)  # a re-run sends nothing
    assert again.ok and again.tally.sent == 0 and len(messages(settings)) == 3


def test_a_new_article_that_embeds_a_new_video_is_one_email(world):
    settings, server = world
    server.blog(article_item(1, "Old article", hours_ago=100))
    server.channel()
    run(settings, server)
    body = '<p>Watch: <a href="https://www.youtube.com/watch?v=Embedded001">the video</a></p>'
    server.blog(article_item(2, "The exercise, with a video", body),
                article_item(1, "Old article", hours_ago=100))  # fmt: skip
    server.channel(video_entry("Embedded001", "The exercise"))
    summary = run(settings, server)
    assert summary.ok and summary.tally.sent == 3  # one each, not two
    assert {m["Subject"] for m in messages(settings)} == {"The exercise, with a video"}
    (video,) = [d for d in summary.recorded if d.item.kind == "video"]
    assert video.reason == "announced with the article that embeds it"


@pytest.mark.parametrize(
    "channel",
    [None, "<feed><entry>not closed", "<html><body>Not found</body></html>"],
)
def test_a_broken_or_unreachable_video_feed_stops_nothing_else(world, channel):
    settings, server = world
    server.blog(article_item(1, "Old article", hours_ago=100))
    server.channel()
    run(settings, server)
    server.blog(article_item(2, "New article"), article_item(1, "Old article", hours_ago=100))
    if channel is None:
        (server.folder / "videos.xml").unlink()  # 404
    else:
        server.channel(raw=channel)
    summary = run(settings, server)
    assert summary.tally.sent == 3  # the article still goes
    assert not summary.ok and "the video feed was not read" in summary.problems[0]
    assert "PROBLEM: the video feed was not read" in "\n".join(summary.lines())


def test_hostile_titles_and_descriptions_stay_text(world):
    settings, server = world
    server.blog()
    server.channel()
    run(settings, server)
    title = '<script>alert(1)</script> "Knees" & <b>hips</b>'
    description = '<img src=x onerror=alert(1)> "quoted" & more\nL2'
    server.channel(video_entry("Hostile0001", title, description=description))
    summary = run(settings, server)
    assert summary.ok and summary.tally.sent == 3
    message = messages(settings)[0]
    assert "\n" not in message["Subject"] and message["Subject"].startswith("New video: ")
    html = message.get_body(("html",)).get_content()
    soup = BeautifulSoup(html, "html.parser")
    assert soup.find("script") is None and soup.find("img", src="x") is None
    assert not soup.select("[onerror]")
    assert "hips" in soup.find("h1").get_text()


def test_shorts_can_be_left_out(world):
    settings, server = world
    settings = settings.replace(video_skip_shorts=True)
    server.blog()
    server.channel()
    run(settings, server)
    server.channel(video_entry("AShort00001", "Thirty seconds", short=True),
                   video_entry("ALongOne001", "Ten minutes"))  # fmt: skip
    summary = run(settings, server)
    assert summary.tally.sent == 3
    assert {m["Subject"] for m in messages(settings)} == {"New video: Ten minutes"}
    (short,) = [d for d in summary.recorded if d.item.short]
    assert "Short" in short.reason


def test_a_channel_added_to_a_blog_that_announced_for_years_records_its_videos_first(world):
    settings, server = world
    server.blog(article_item(1, "Old article", hours_ago=100))
    announce.run(settings.replace(video_feed_url=""), feed_url=server.url + "/all.rss.xml")
    server.channel(video_entry("Recent00001", "Uploaded an hour ago"))
    summary = run(settings, server)  # the channel's first run: its videos are the back catalogue
    assert summary.ok and summary.tally.sent == 0
    assert [d.reason for d in summary.recorded] == ["in the feed before the first run"]


def test_video_ids_in_article_html():
    html = (
        '<a href="https://www.youtube.com/watch?v=AbCdEfGhIjK">x</a>'
        '<a href="https://youtu.be/ZyXwVuTsRqP?t=3">y</a>'
        '<iframe src="https://www.youtube-nocookie.com/embed/AbCdEfGhIjK?autoplay=1"></iframe>'
        '<a href="https://www.youtube.com/watch?feature=share&amp;v=Mnopqrstuvw">z</a>'
    )
    assert video_ids(html) == ("AbCdEfGhIjK", "ZyXwVuTsRqP", "Mnopqrstuvw")
    feed = parse_feed(CHANNEL.replace("<!--ENTRIES-->", video_entry("AbCdEfGhIjK", "T")).encode())
    (item,) = feed.items
    assert (item.kind, item.guid, item.short) == ("video", "yt:video:AbCdEfGhIjK", False)
