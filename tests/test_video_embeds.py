"""Private video embeds: a YouTube URL alone on its line becomes a facade served from our site;
thumbnails, oEmbed answers and the channel feed come from a local HTTP server
(VIDEO_THUMBNAIL_URL, VIDEO_OEMBED_URL, VIDEO_CHANNEL_FEED_URL), never from the network. Also the
VideoObject JSON-LD, the feeds' plain form (and the announcement email made from it), the
/videos/ page and its menu entry, with and without the serve cache."""

import json
import os
from datetime import datetime
from pathlib import Path
from urllib.parse import urlsplit

import feedparser
import pytest
from axe_playwright_python.sync_playwright import Axe
from bs4 import BeautifulSoup

from blog.build import build
from newsletter.announcements.feed import read_feed
from tests.conftest import build_site, serve_folder, write_article
from tests.test_announcement_emails import composer_for, received
from tests.test_pages_in_browser import WCAG, open_page
from tests.test_videos import CHANNEL, video_entry

VIDEO = "dQw4w9WgXcQ"
OTHER, THIRD, FOURTH = "aaaaaaaaaaa", "bbbbbbbbbbb", "ccccccccccc"
LONELY = "ddddddddddd"
# A real image served as the thumbnail (browsers sniff images), so the screenshots show one.
JPEG = (
    Path(__file__).resolve().parent.parent / "content" / "images" / "gluteus-medius.png"
).read_bytes()
BODY = f"Intro.\n\n[Knee & hip \\<drill\\>](https://www.youtube.com/watch?v={VIDEO})\n\nhttps://youtu.be/{VIDEO}\n\nEnd."
OEMBED_TITLE = 'Bare <b>"title"</b> & co'
DEAD = "http://127.0.0.1:9/{id}"  # nothing listens on port 9


@pytest.fixture(scope="module")
def thumbnails(tmp_path_factory):
    """Our stand-in for i.ytimg.com, YouTube's oEmbed and the channel feed."""
    root = tmp_path_factory.mktemp("ytimg")
    for video in (VIDEO, OTHER, THIRD, FOURTH):
        (root / "vi" / video).mkdir(parents=True)
        (root / "vi" / video / "hqdefault.jpg").write_bytes(JPEG)
        (root / "oembed").mkdir(exist_ok=True)
        (root / "oembed" / video).write_text(json.dumps({"title": OEMBED_TITLE, "type": "video"}))
    entry = video_entry(OTHER, "From the channel", description="Line one.\nLine two.")
    (root / "channel.xml").write_text(CHANNEL.replace("<!--ENTRIES-->", entry))
    server = serve_folder(root)
    server.settings = {
        "VIDEO_THUMBNAIL_URL": server.url + "/vi/{id}/hqdefault.jpg",
        "VIDEO_OEMBED_URL": server.url + "/oembed/{id}",
        "VIDEO_CHANNEL_FEED_URL": server.url + "/channel.xml",
    }
    yield server
    server.stop()


OFFLINE = {"VIDEO_THUMBNAIL_URL": DEAD, "VIDEO_OEMBED_URL": DEAD, "VIDEO_CHANNEL_FEED_URL": ""}


def make_content(root):
    for sub in ("articles", "pages", "images"):
        (root / sub).mkdir(parents=True)
    write_article(root, "video", "With a video", "2026-03-01 10:00", body=BODY)
    return root


@pytest.fixture(scope="module")
def video_site(tmp_path_factory, thumbnails):
    content = make_content(tmp_path_factory.mktemp("vc") / "content")
    output = tmp_path_factory.mktemp("vout")
    server = serve_folder(output)
    yield build_site(output, server.url, PATH=content, ISSO_URL="", **thumbnails.settings)
    server.stop()


def test_facade_html_and_thumbnail_from_our_site(video_site):
    page = BeautifulSoup(video_site.page("2026/with-a-video/"), "html.parser")
    figures = page.select(".post-body figure.video")
    assert len(figures) == 2
    first = figures[0]
    assert first["data-video"] == VIDEO
    assert first.select_one("a.video-link")["href"] == f"https://www.youtube.com/watch?v={VIDEO}"
    assert first.img["src"] == f"{video_site.url}/images/videos/{VIDEO}.jpg"
    button = first.select_one("button.video-play")
    assert button["type"] == "button" and button.has_attr("hidden")
    assert button["aria-label"] == "Play Knee & hip <drill>"
    # a bare URL: the title YouTube's oEmbed gave, as text
    assert figures[1].select_one("button")["aria-label"] == f"Play {OEMBED_TITLE}"
    assert [f["id"] for f in figures] == [f"video-{VIDEO}", f"video-{VIDEO}-2"]  # stable, unique
    assert not first.select(".video-length")  # no length given, none shown
    # the meta description is the summary (the first paragraph), not a facade's title or caption
    assert page.select_one('meta[name="description"]')["content"] == "Intro."
    assert (video_site.output / "images" / "videos" / f"{VIDEO}.jpg").read_bytes() == JPEG
    assert "youtube-nocookie" not in str(page.select_one(".post-body").find_all(["iframe"]))


def test_thumbnail_reused_offline_and_placeholder_when_unfetchable(tmp_path, caplog):
    content = make_content(tmp_path / "content")
    (content / "images" / "videos").mkdir()
    (content / "images" / "videos" / f"{VIDEO}.jpg").write_bytes(JPEG)
    site = build_site(tmp_path / "a", "https://blog.example", PATH=content, **OFFLINE)
    assert f"https://blog.example/images/videos/{VIDEO}.jpg" in site.page("2026/with-a-video/")
    assert "no thumbnail" not in caplog.text
    (content / "images" / "videos" / f"{VIDEO}.jpg").unlink()
    site = build_site(tmp_path / "b", "https://blog.example", PATH=content, **OFFLINE)
    html = site.page("2026/with-a-video/")
    assert "https://blog.example/theme/images/video-placeholder.svg" in html
    assert (site.output / "theme" / "images" / "video-placeholder.svg").is_file()
    assert "no thumbnail" in caplog.text


def test_in_chromium_nothing_leaves_before_the_click(new_context, video_site):
    page, requests = open_page(new_context, f"{video_site.url}/2026/with-a-video/", width=360)
    hosts = {urlsplit(url).hostname for url in requests if not url.startswith("data:")}
    assert hosts == {"127.0.0.1"}, requests
    results = Axe().run(page, options=WCAG)
    assert results.violations_count == 0, results.generate_report()
    blocked = []
    page.context.route(
        "https://www.youtube-nocookie.com/**",
        lambda route: (blocked.append(route.request.url), route.abort()),
    )
    button = page.get_by_role("button", name="Play Knee & hip <drill>")
    button.focus()
    page.keyboard.press("Enter")  # the keyboard works
    frame = page.locator("figure.video iframe").first
    frame.wait_for(state="attached", timeout=5000)
    src = f"https://www.youtube-nocookie.com/embed/{VIDEO}?autoplay=1"
    assert frame.get_attribute("src") == src
    page.wait_for_timeout(300)
    assert blocked == [src]
    assert {urlsplit(u).hostname for u in requests} == {"127.0.0.1", "www.youtube-nocookie.com"}


PLAIN_COLOURS = """async url => {
  const image = new Image(); image.src = url; await image.decode();
  const canvas = Object.assign(document.createElement("canvas"), {width: 480, height: 360});
  const draw = canvas.getContext("2d"); draw.drawImage(image, 0, 0);
  const pixels = draw.getImageData(0, 0, 480, 360).data, colours = new Set();
  for (let i = 0; i < pixels.length; i += 4) colours.add(pixels.slice(i, i + 3).join());
  return colours.size;
}"""


@pytest.mark.parametrize("width", [320, 360, 1280])
def test_in_chromium_one_play_button_on_the_thumbnail_and_the_title_once(
    new_context, video_site, artifacts, width
):
    """Issue 22: the button sat off the thumbnail's centre (half the caption lower), over the
    placeholder's own play circle, and the title showed twice: on the thumbnail and below."""
    page, _ = open_page(new_context, f"{video_site.url}/2026/with-a-video/", width=width)
    figure = page.locator("figure.video").first
    figure.scroll_into_view_if_needed()
    figure.screenshot(path=artifacts / f"video-facade-{width}.png")
    assert figure.inner_text().count("Knee & hip <drill>") == 1
    assert figure.locator("figcaption .video-title").inner_text() == "Knee & hip <drill>"
    image = figure.locator("img").bounding_box()
    button = figure.get_by_role("button", name="Play Knee & hip <drill>").bounding_box()
    for axis, size in (("x", "width"), ("y", "height")):
        middle = image[axis] + image[size] / 2
        assert button[axis] + button[size] / 2 == pytest.approx(middle, abs=1), axis
    placeholder = f"{video_site.url}/theme/images/video-placeholder.svg"
    assert page.evaluate(PLAIN_COLOURS, placeholder) == 1  # no play sign of its own


# Length, metadata and the VideoObject --------------------------------------------------------
def jsonld(html: str) -> dict:
    page = BeautifulSoup(html, "html.parser")
    return json.loads(page.select_one('script[type="application/ld+json"]').string)


def test_length_metadata_and_video_object(tmp_path, thumbnails, caplog):
    content = make_content(tmp_path / "content")
    write_article(content, "lengths", "Lengths", "2026-04-02 09:30", subtitle="The dek & more",
                  body=f"[Drill one](https://youtu.be/{OTHER}) 4:12\n\n"
                  f"https://www.youtube.com/watch?v={THIRD} (1:02:03)\n\nText.")  # fmt: skip
    site = build_site(tmp_path / "out", "https://blog.example", PATH=content, **thumbnails.settings)
    page = BeautifulSoup(site.page("2026/lengths/"), "html.parser")
    one, two = page.select("figure.video")
    assert one.select_one(".video-length time")["datetime"] == "PT4M12S"
    assert one.select_one(".video-length").get_text() == "4:12"
    assert one.select_one(".video-title").get_text() == "Drill one"  # the author's title wins
    assert two.select_one(".video-length").get_text() == "1:02:03"
    assert "(1:02:03)" in two.figcaption.get_text()

    data = jsonld(site.page("2026/lengths/"))
    assert data["@type"] == "BlogPosting"
    first, second = data["video"]
    assert first == {
        "@type": "VideoObject",
        "name": "Drill one",
        "description": "Line one. Line two.",  # from the channel feed
        "thumbnailUrl": f"https://blog.example/images/videos/{OTHER}.jpg",
        "uploadDate": first["uploadDate"],
        "embedUrl": f"https://www.youtube-nocookie.com/embed/{OTHER}",
        "contentUrl": f"https://www.youtube.com/watch?v={OTHER}",
        "duration": "PT4M12S",
    }
    assert datetime.fromisoformat(first["uploadDate"]).year >= 2026  # the feed's <published>
    # THIRD is not in the channel feed: the article's date and dek stand in
    assert second["name"] == OEMBED_TITLE
    assert second["uploadDate"] == "2026-04-02T09:30:00+01:00"
    assert second["description"] == "The dek & more"
    assert second["duration"] == "PT1H2M3S"
    # one VideoObject per video, even when it is embedded twice; no duration when unknown
    data = jsonld(site.page("2026/with-a-video/"))
    assert data["video"]["contentUrl"].endswith(VIDEO) and "duration" not in data["video"]
    assert data["video"]["description"] == "Intro."  # the summary: the first paragraph
    # the metadata is cached next to the thumbnail, and the author may edit it
    cached = json.loads((content / "images" / "videos" / f"{OTHER}.json").read_text())
    assert cached["title"] == "From the channel" and cached["description"] == "Line one.\nLine two."
    (content / "images" / "videos" / f"{THIRD}.json").write_text(
        json.dumps({"uploadDate": "2025-12-01", "description": "Mine.", "duration": "PT61S"})
    )
    caplog.clear()
    again = build_site(tmp_path / "again", "https://blog.example", PATH=content, **OFFLINE)
    assert "video" not in caplog.text.lower(), "offline, everything comes from the cache"
    second = jsonld(again.page("2026/lengths/"))["video"][1]
    assert (second["uploadDate"], second["description"]) == ("2025-12-01", "Mine.")
    assert second["duration"] == "PT1H2M3S", "the length on the author's line wins"
    assert second["name"] == "Video on YouTube"  # the edited file has no title


def test_metadata_unreachable_or_broken_never_fails_the_build(tmp_path, caplog):
    # a video of its own: Pelican logs each distinct warning once per process
    content = make_content(tmp_path / "content")
    article = content / "articles" / "video.md"
    article.write_text(article.read_text().replace(VIDEO, LONELY))
    site = build_site(tmp_path / "a", "https://blog.example", PATH=content, **OFFLINE)
    assert "no metadata yet" in caplog.text
    assert not (content / "images" / "videos" / f"{LONELY}.json").exists(), "tried again later"
    data = jsonld(site.page("2026/with-a-video/"))["video"]
    assert data["name"] == "Knee & hip <drill>"
    assert data["thumbnailUrl"] == "https://blog.example/theme/images/video-placeholder.svg"
    assert data["uploadDate"] == "2026-03-01T10:00:00+00:00"
    (content / "images" / "videos").mkdir(parents=True, exist_ok=True)
    (content / "images" / "videos" / f"{LONELY}.json").write_text("{not json")
    build_site(tmp_path / "b", "https://blog.example", PATH=content, **OFFLINE)
    assert "is unreadable" in caplog.text


# Feeds and the announcement email ------------------------------------------------------------
def test_feeds_carry_a_plain_linked_thumbnail_and_the_email_shows_it(video_site, make_settings):
    thumb = f"{video_site.url}/images/videos/{VIDEO}.jpg"
    watch = f"https://www.youtube.com/watch?v={VIDEO}"
    for name in ("all.rss.xml", "all.atom.xml"):
        xml = (video_site.output / "feeds" / name).read_text()
        (entry,) = feedparser.parse(xml).entries
        html = entry.content[0].value
        part = BeautifulSoup(html, "html.parser")
        assert not part.find_all(["script", "button", "figure", "figcaption", "svg", "span"])
        assert "youtube-nocookie" not in html and "hidden" not in html
        links = part.select(f'a[href="{watch}"]')
        assert len(links) == 4  # each video: its thumbnail and its title
        img = links[0].img
        assert (img["src"], img["alt"], img["width"], img["height"]) == (
            thumb, "Knee & hip <drill>", "480", "360")  # fmt: skip
        assert links[1].get_text() == "Knee & hip <drill>"
        assert links[3].get_text() == OEMBED_TITLE
    (item,) = read_feed(video_site.output / "feeds" / "all.rss.xml").items
    assert item.videos == (VIDEO,)
    # a video after the first paragraph is not in the summary, so not in the email
    message = received(composer_for(make_settings(), [item]))
    html = message.get_body(("html",)).get_content()
    assert "Intro." in html and not BeautifulSoup(html, "html.parser").find("img", src=thumb)


def test_a_video_before_the_first_paragraph_stays_in_the_summary(tmp_path, make_settings):
    content = make_content(tmp_path / "content")
    (content / "images" / "videos").mkdir()
    (content / "images" / "videos" / f"{VIDEO}.jpg").write_bytes(JPEG)
    body = f"[Knee drill](https://youtu.be/{VIDEO}) 4:12\n\nThe first paragraph.\n\nThe second."
    write_article(content, "top", "Video on top", "2026-04-01 10:00", body=body)
    site = build_site(tmp_path / "out", "https://blog.example", PATH=content, **OFFLINE)
    index = BeautifulSoup(site.page("index.html"), "html.parser")
    card = next(c for c in index.select(".card") if "Video on top" in c.get_text())
    summary = card.select_one(".card-summary")
    figure, paragraph = summary.find_all(recursive=False)
    assert (figure.name, figure["id"]) == ("figure", f"video-{VIDEO}")  # the body's facade
    assert figure.select_one(".video-length").get_text() == "4:12"
    assert paragraph.get_text() == "The first paragraph." and "second" not in summary.get_text()
    feed = BeautifulSoup(site.page("feeds/all.rss.xml"), "xml")
    item = next(i for i in feed.find_all("item") if i.title.get_text() == "Video on top")
    description = BeautifulSoup(item.description.get_text(), "html.parser")
    watch = f"https://www.youtube.com/watch?v={VIDEO}"
    assert [a["href"] for a in description.find_all("a")] == [watch, watch]  # the plain form
    assert description.find_all("p")[-1].get_text() == "The first paragraph."
    assert not description.find_all(["figure", "button"])
    items = json.loads(site.page("feeds/all.json"))["items"]
    (entry,) = [i for i in items if i["title"] == "Video on top"]
    assert entry["summary"].endswith("The first paragraph.") and "second" not in entry["summary"]
    # the email shows it too, as the feeds do: a linked thumbnail
    items = read_feed(site.output / "feeds" / "all.rss.xml").items
    (announced,) = [i for i in items if i.title == "Video on top"]
    html = received(composer_for(make_settings(), [announced])).get_body(("html",)).get_content()
    img = BeautifulSoup(html, "html.parser").find(
        "img", src=f"https://blog.example/images/videos/{VIDEO}.jpg"
    )
    assert img["alt"] == "Knee drill" and img.find_parent("a")["href"] == watch
    assert "<button" not in html and "<script" not in html and "The second." not in html


# The videos page -------------------------------------------------------------------------------
def menu(html: str) -> list[str]:
    return [a.get_text() for a in BeautifulSoup(html, "html.parser").select("nav .nav-list a")]


def videos_content(root: Path) -> Path:
    content = make_content(root)  # with-a-video, 2026-03-01: VIDEO twice
    line = "[{}](https://youtu.be/{}) {}"
    newer = line.format("Newest", OTHER, "2:05") + "\n\n" + line.format("Again", VIDEO, "")
    write_article(content, "newer", "Newer", "2026-05-01 10:00", body=newer)
    write_article(content, "draft", "Draft", "2026-06-01", status="draft",
                  body=line.format("In a draft", THIRD, ""))  # fmt: skip
    write_article(content, "hidden", "Hidden", "2026-06-01", status="hidden",
                  body=line.format("Hidden", THIRD, ""))  # fmt: skip
    write_article(content, "future", "Future", "2999-01-01", body=line.format("Later", FOURTH, ""))
    return content


def test_videos_page_lists_published_videos_newest_first(tmp_path, thumbnails, site):
    content = videos_content(tmp_path / "content")
    built = build_site(
        tmp_path / "out", "https://blog.example", PATH=content, **thumbnails.settings
    )
    page = BeautifulSoup(built.page("videos/"), "html.parser")
    items = page.select(".video-list li")
    titles = [li.h2.get_text() for li in items]
    assert titles == ["Newest", "Knee & hip <drill>"], "once each, newest article first"
    hrefs = [li.h2.a["href"] for li in items]
    assert hrefs == [
        f"https://blog.example/2026/newer/#video-{OTHER}",
        f"https://blog.example/2026/with-a-video/#video-{VIDEO}",
    ]
    for href in hrefs:  # each link lands on its facade
        path, anchor = urlsplit(href).path.strip("/"), urlsplit(href).fragment
        assert BeautifulSoup(built.page(path + "/"), "html.parser").find(id=anchor).name == "figure"
    assert items[0].img["src"] == f"https://blog.example/images/videos/{OTHER}.jpg"
    assert items[0].img["alt"] == "" and items[0].time.get_text() == "2:05"
    assert items[1].select("time")[0].get_text() == "1 March 2026"  # length unknown: the date
    assert page.select_one("link[rel=canonical]")["href"] == "https://blog.example/videos/"
    assert page.select_one('nav a[aria-current="page"]').get_text() == "Videos"
    for path in ("index.html", "2026/draft/index.html", "about/index.html", "videos/"):
        if (built.output / path).exists() or path.endswith("/"):
            names = menu(built.page(path))
            assert names.index("Videos") == names.index("Archives") + 1, path
    sitemap = (built.output / "sitemap.xml").read_text()
    assert "<loc>https://blog.example/videos/</loc>" in sitemap
    # the real site has no video today: no page, no menu entry
    assert not (site.output / "videos").exists()
    assert "Videos" not in menu(site.page("index.html"))


def test_videos_page_follows_changes_while_serving(tmp_path, thumbnails):
    """`invoke serve` (the content cache and plugins/incremental): the first video brings the
    page and the menu entry to every page; the last one takes them away."""
    content = make_content(tmp_path / "content")
    article = content / "articles" / "video.md"
    text = article.read_text()
    link = f"[Knee & hip \\<drill\\>](https://www.youtube.com/watch?v={VIDEO})"
    without = text.replace(f"https://youtu.be/{VIDEO}", "").replace(link, "No video.")
    article.write_text(without)
    write_article(content, "plain", "Plain", "2026-01-01", body="Nothing to watch.")
    output = tmp_path / "out"

    def rebuild():
        build("pelicanconf.py", cache=tmp_path / "cache", SITEURL="https://blog.example",
              PATH=content, OUTPUT_PATH=output, **thumbnails.settings)  # fmt: skip

    def later(path, body):
        stat = path.stat()
        path.write_text(body)
        os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))

    rebuild()
    assert not (output / "videos").exists()
    assert "Videos" not in menu((output / "2026/plain/index.html").read_text())
    later(article, text)
    rebuild()
    assert "Knee &amp; hip &lt;drill&gt;" in (output / "videos/index.html").read_text()
    for page in ("2026/plain/index.html", "index.html", "about/index.html"):
        if (output / page).exists():
            assert "Videos" in menu((output / page).read_text()), page
    later(article, text.replace("Knee & hip", "Ankle"))
    rebuild()
    assert "Ankle &lt;drill&gt;" in (output / "videos/index.html").read_text()
    later(article, without)
    rebuild()
    assert not (output / "videos/index.html").exists()
    assert "Videos" not in menu((output / "2026/plain/index.html").read_text())
    assert "videos/" not in (output / "sitemap.xml").read_text()


@pytest.mark.parametrize("scheme", ["light", "dark"])
def test_in_chromium_the_videos_page_is_accessible_and_private(
    new_context, video_site, artifacts, scheme
):
    page, requests = open_page(new_context, f"{video_site.url}/videos/", width=360, scheme=scheme)
    page.screenshot(path=artifacts / f"videos-360-{scheme}.png", full_page=True)
    assert {urlsplit(url).hostname for url in requests} == {"127.0.0.1"}, requests
    results = Axe().run(page, options=WCAG)
    assert results.violations_count == 0, results.generate_report()
    page.get_by_role("link", name="Knee & hip <drill>").click()
    page.wait_for_load_state()
    assert page.evaluate("location.hash") == f"#video-{VIDEO}"
    assert page.locator(f"#video-{VIDEO}").evaluate("e => e.matches(':target')")
