"""Private video embeds: a YouTube URL alone on its line becomes a facade served from our site;
thumbnails come from a local HTTP server (VIDEO_THUMBNAIL_URL), never from the network."""

from urllib.parse import urlsplit

import pytest
from axe_playwright_python.sync_playwright import Axe
from bs4 import BeautifulSoup

from tests.conftest import build_site, serve_folder, write_article
from tests.test_pages_in_browser import WCAG, open_page

VIDEO = "dQw4w9WgXcQ"
JPEG = b"\xff\xd8\xff\xe0" + b"\x00" * 64 + b"\xff\xd9"
BODY = f"Intro.\n\n[Knee & hip \\<drill\\>](https://www.youtube.com/watch?v={VIDEO})\n\nhttps://youtu.be/{VIDEO}\n\nEnd."


@pytest.fixture(scope="module")
def thumbnails(tmp_path_factory):
    root = tmp_path_factory.mktemp("ytimg")
    (root / "vi" / VIDEO).mkdir(parents=True)
    (root / "vi" / VIDEO / "hqdefault.jpg").write_bytes(JPEG)
    server = serve_folder(root)
    yield server
    server.stop()


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
    thumb = thumbnails.url + "/vi/{id}/hqdefault.jpg"
    yield build_site(output, server.url, PATH=content, ISSO_URL="", VIDEO_THUMBNAIL_URL=thumb)
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
    assert figures[1].select_one("button")["aria-label"] == "Play Video on YouTube"
    assert (video_site.output / "images" / "videos" / f"{VIDEO}.jpg").read_bytes() == JPEG
    assert "youtube-nocookie" not in str(page.select_one(".post-body").find_all(["iframe"]))


def test_thumbnail_reused_offline_and_placeholder_when_unfetchable(tmp_path, caplog):
    content = make_content(tmp_path / "content")
    (content / "images" / "videos").mkdir()
    (content / "images" / "videos" / f"{VIDEO}.jpg").write_bytes(JPEG)
    dead = "http://127.0.0.1:9/{id}.jpg"  # nothing listens on port 9
    site = build_site(
        tmp_path / "a", "https://blog.example", PATH=content, VIDEO_THUMBNAIL_URL=dead
    )
    assert f"https://blog.example/images/videos/{VIDEO}.jpg" in site.page("2026/with-a-video/")
    assert "no thumbnail" not in caplog.text
    (content / "images" / "videos" / f"{VIDEO}.jpg").unlink()
    site = build_site(
        tmp_path / "b", "https://blog.example", PATH=content, VIDEO_THUMBNAIL_URL=dead
    )
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
