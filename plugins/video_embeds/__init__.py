"""Private YouTube embeds: a facade from our own site, YouTube's player only after a click.

Contract: a paragraph that holds only a YouTube URL (`https://www.youtube.com/watch?v=ID`,
`https://youtu.be/ID`), bare or as a Markdown link `[Title](URL)`, optionally followed by the
video's length (`4:12`, `1:02:03`, or in brackets), becomes a facade: the video's thumbnail
served from our site, its title (the link's text, else the cached metadata's, else "Video on
YouTube"), its length when known, a link to the video (what readers without JavaScript use) and
a hidden <button> that theme/static/js/site.js shows and turns into a youtube-nocookie.com
player. Each facade is a `<figure id="video-ID">` (`video-ID-2` for a second one of the same
video in a page). Works on the rendered HTML (any Markdown engine), on `content_object_init`.

Fetched once at build time with requests and kept in content/images/videos/, reused offline:
- the thumbnail, ID.jpg, from VIDEO_THUMBNAIL_URL; when that fails the build warns and uses the
  theme's placeholder (theme/static/images/video-placeholder.svg);
- the metadata, ID.json (`title`, `description`, `uploadDate`, `duration`; the author may write
  or edit it), from YouTube's oEmbed (VIDEO_OEMBED_URL: the title) and the channel's Atom feed
  (VIDEO_CHANNEL_FEED_URL, optional: upload date, description, title); when neither answers the
  build warns and tries again next time.
Nothing here ever fails the build.

What it gives the rest of the site:
- `article.videos`: the `Video`s of the article, in order;
- `article.structured_data["video"]`: a schema.org VideoObject per video (theme_helpers puts it
  in the BlogPosting's JSON-LD); without metadata, uploadDate is the article's date and the
  description its dek or summary; duration only when known;
- `article.feed_html`: {figure id: HTML}: plugins/feeds replaces each facade with a plain linked
  thumbnail and a linked title (no script, no button);
- the page VIDEOS_SAVE_AS (videos/index.html; template videos.html): every video embedded in a
  published article, once, newest article first, each linking to its facade
  (`article URL#video-ID`), and a "Videos" menu entry (after "Archives") when there is one.
A summary that holds a video (one before the first paragraph: plugins/commonmark_reader) shows
the same facade as the body.
"""

from __future__ import annotations

import json
import logging
import os
import re
from dataclasses import asdict, dataclass
from datetime import datetime
from html import escape, unescape

from pelican import signals
from pelican.contents import Article, Page

from blog import pelican_seam
from blog.listing import published, show_in_menu, write_listing

log = logging.getLogger(__name__)
# The content fields of ours this plugin reads (the dek: a video's description without its
# own); plugins/content_check refuses undeclared ones.
METADATA_FIELDS = ("Subtitle",)

THUMBNAIL_URL = "https://i.ytimg.com/vi/{id}/hqdefault.jpg"
OEMBED_URL = (
    "https://www.youtube.com/oembed?format=json"
    "&url=https%3A%2F%2Fwww.youtube.com%2Fwatch%3Fv%3D{id}"
)
VIDEOS_URL, VIDEOS_SAVE_AS = "videos/", "videos/index.html"
FOLDER = "images/videos"
WIDTH, HEIGHT = 480, 360  # YouTube's hqdefault.jpg, and our placeholder
_URL = (
    r"https?://(?:www\.|m\.)?(?:youtube\.com/watch\?(?:[^\"<\s]*?&amp;)?v=|youtu\.be/)"
    r"(?P<id>[A-Za-z0-9_-]{11})[^\"<\s]*"
)
_BARE = _URL.replace("?P<id>", "?P<id2>")
_LENGTH = r"(?:\s+\(?(?P<length>[0-9]{1,2}(?::[0-5][0-9]){1,2})\)?)?"
_PARAGRAPH = re.compile(
    rf'<p>\s*(?:<a href="(?P<href>{_URL})">(?P<text>[^<]*)</a>|(?P<bare>{_BARE})){_LENGTH}\s*</p>'
)
_ISO_DURATION = re.compile(r"P(?:T(?:(\d+)H)?(?:(\d+)M)?(?:(\d+)S)?)")
_FIGURE = re.compile(r'<figure class="video" id="(?P<anchor>video-[\w-]+)".*?</figure>', re.S)

# One fetch of the channel feed per build: {url: {video id: metadata}}; the thumbnails and
# metadata files no source could fill in this build (not asked again until the next one).
_channel_feeds: dict[str, dict[str, dict]] = {}
_unanswered: set[str] = set()


@dataclass
class Video:
    id: str
    title: str
    anchor: str  # the facade's id: video-ID (video-ID-2, ... for repeats in one page)
    thumbnail: str  # absolute URL: our copy, or the placeholder
    has_thumbnail: bool  # False: the placeholder
    duration: int | None = None  # seconds
    upload_date: str = ""  # ISO 8601, from the metadata; else ""
    description: str = ""  # plain text, from the metadata; else ""

    @property
    def watch_url(self) -> str:
        return f"https://www.youtube.com/watch?v={self.id}"

    @property
    def embed_url(self) -> str:
        return f"https://www.youtube-nocookie.com/embed/{self.id}"

    @property
    def length(self) -> str:
        """The length as people write it (4:12, 1:02:03), or ""."""
        if self.duration is None:
            return ""
        hours, rest = divmod(self.duration, 3600)
        minutes, seconds = divmod(rest, 60)
        return f"{hours}:{minutes:02}:{seconds:02}" if hours else f"{minutes}:{seconds:02}"

    @property
    def iso_duration(self) -> str:
        """The length as ISO 8601 (PT4M12S), or ""."""
        if self.duration is None:
            return ""
        hours, rest = divmod(self.duration, 3600)
        minutes, seconds = divmod(rest, 60)
        parts = (f"{hours}H" if hours else "") + (f"{minutes}M" if minutes else "")
        return f"PT{parts}{seconds}S" if seconds or not parts else f"PT{parts}"

    def time_html(self) -> str:
        return f'<time datetime="{self.iso_duration}">{self.length}</time>' if self.length else ""


def parse_duration(value) -> int | None:
    """Seconds from 4:12, 1:02:03, PT4M12S or a number of seconds; None if it is none of them."""
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return value
    text = str(value or "").strip()
    if re.fullmatch(r"[0-9]{1,2}(?::[0-5][0-9]){1,2}", text):
        seconds = 0
        for part in text.split(":"):
            seconds = seconds * 60 + int(part)
        return seconds
    match = _ISO_DURATION.fullmatch(text)
    if match and any(match.groups()):
        hours, minutes, seconds = (int(g or 0) for g in match.groups())
        return hours * 3600 + minutes * 60 + seconds
    return None


class FetchError(Exception):
    """A thumbnail, oEmbed answer or channel feed could not be fetched."""


def _get(settings: dict, url: str):
    """The response from `url`, or FetchError. requests is imported here, on the first fetch:
    most builds fetch nothing (thumbnails and metadata are cached in content/), and importing it
    costs a build 5 MB of memory."""
    import requests

    try:
        response = requests.get(url, timeout=settings.get("VIDEO_THUMBNAIL_TIMEOUT", 10))
        response.raise_for_status()
    except requests.RequestException as error:
        raise FetchError(str(error)) from error
    if not response.content:
        raise FetchError("empty response")
    return response


def _write_atomically(target: str, data: bytes) -> None:
    os.makedirs(os.path.dirname(target), exist_ok=True)
    with open(target + ".part", "wb") as handle:
        handle.write(data)
    os.replace(target + ".part", target)


def thumbnail(settings: dict, video_id: str) -> str | None:
    """The thumbnail's site path (images/videos/ID.jpg), fetched once; None when unavailable."""
    relative = f"{FOLDER}/{video_id}.jpg"
    target = os.path.join(settings.get("PATH", os.curdir), relative)
    if os.path.isfile(target) and os.path.getsize(target) > 0:
        return relative
    if target in _unanswered:  # failed already in this build
        return None
    url = settings.get("VIDEO_THUMBNAIL_URL", THUMBNAIL_URL).format(id=video_id)
    try:
        _write_atomically(target, _get(settings, url).content)
        return relative
    except (FetchError, OSError, ValueError) as error:
        log.warning(
            "video %s: no thumbnail from %s (%s); using the placeholder", video_id, url, error
        )
        _unanswered.add(target)
        return None


def _channel_feed(settings: dict, url: str) -> dict[str, dict]:
    """The channel feed's videos as {id: metadata}, fetched once per build ({} if it fails)."""
    if url not in _channel_feeds:
        found: dict[str, dict] = {}
        try:
            import feedparser  # on the first channel feed, like requests in _get

            feed = feedparser.parse(_get(settings, url).content)
            if feed.bozo and not feed.entries:
                raise ValueError(f"not a feed ({feed.bozo_exception})")
            for entry in feed.entries:
                video_id = str(entry.get("yt_videoid", ""))
                if re.fullmatch(r"[A-Za-z0-9_-]{11}", video_id):
                    found[video_id] = {
                        "title": " ".join(str(entry.get("title", "")).split()),
                        "description": str(entry.get("summary", "")).strip(),
                        "uploadDate": str(entry.get("published", "")),
                    }
        except (FetchError, ValueError) as error:
            log.warning("videos: could not read the channel feed %s (%s)", url, error)
        _channel_feeds[url] = found
    return _channel_feeds[url]


def metadata(settings: dict, video_id: str) -> dict:
    """The video's metadata from content/images/videos/ID.json (written by the author, or by an
    earlier build); else fetched from oEmbed and the channel feed and saved there. {} if none;
    asked once per build (a video shown twice, a draft and its translation)."""
    target = os.path.join(settings.get("PATH", os.curdir), FOLDER, f"{video_id}.json")
    if target not in _unanswered:
        found = _metadata(settings, video_id, target)
        if found or os.path.isfile(target):
            return found
        _unanswered.add(target)
    return {}


def _metadata(settings: dict, video_id: str, target: str) -> dict:
    if os.path.isfile(target):
        try:
            with open(target, encoding="utf-8") as handle:
                found = json.load(handle)
            if isinstance(found, dict):
                return found
            raise ValueError("not a JSON object")
        except (OSError, ValueError) as error:
            log.warning("video %s: %s is unreadable (%s); ignoring it", video_id, target, error)
            return {}
    found, answered, tried = {}, False, []
    oembed = settings.get("VIDEO_OEMBED_URL", OEMBED_URL)
    if oembed:
        url = oembed.format(id=video_id)
        tried.append(url)
        try:
            data = _get(settings, url).json()
            if isinstance(data, dict) and isinstance(data.get("title"), str):
                found["title"] = " ".join(data["title"].split())
            answered = True
        except (FetchError, ValueError) as error:
            log.warning("video %s: no metadata from %s (%s)", video_id, url, error)
    channel = settings.get("VIDEO_CHANNEL_FEED_URL", "")
    if channel:
        tried.append(channel)
        videos = _channel_feed(settings, channel)
        answered = answered or bool(videos)
        found.update({k: v for k, v in videos.get(video_id, {}).items() if v})
    if answered:
        try:
            text = json.dumps(found, ensure_ascii=False, indent=2, sort_keys=True) + "\n"
            _write_atomically(target, text.encode("utf-8"))
        except OSError as error:
            log.warning("video %s: could not save %s (%s)", video_id, target, error)
    elif tried:
        log.warning("video %s: no metadata yet; the build tries again next time", video_id)
    return found


def _text(value) -> str:
    return " ".join(str(value or "").split())


def make_video(settings: dict, video_id: str, title: str, length: str, anchor: str) -> Video:
    siteurl = settings.get("SITEURL", "").rstrip("/")
    found = thumbnail(settings, video_id)
    if found:
        src = f"{siteurl}/{found}"
    else:
        static = settings.get("THEME_STATIC_DIR", "theme")
        src = f"{siteurl}/{static}/images/video-placeholder.svg"
    meta = metadata(settings, video_id)
    duration = parse_duration(length) if length else parse_duration(meta.get("duration"))
    return Video(
        id=video_id,
        title=title or _text(meta.get("title")) or "Video on YouTube",
        anchor=anchor,
        thumbnail=src,
        has_thumbnail=bool(found),
        duration=duration,
        upload_date=_text(meta.get("uploadDate")),
        description=_text(meta.get("description"))[:1000],
    )


def facade(video: Video) -> str:
    name = escape(video.title)
    length = video.time_html()
    return (
        f'<figure class="video" id="{video.anchor}" data-video="{video.id}">'
        f'<a class="video-link" href="{video.watch_url}">'
        f'<img src="{escape(video.thumbnail)}" alt="{name}" width="{WIDTH}" height="{HEIGHT}" '
        'loading="lazy">'
        + (f'<span class="video-length">{length}</span>' if length else "")
        + "</a>"
        f'<button type="button" class="video-play" aria-label="Play {name}" hidden>'
        '<svg viewBox="0 0 24 24" width="48" height="48" aria-hidden="true" focusable="false">'
        '<path fill="currentColor" d="M8 5v14l11-7z"/></svg></button>'
        f'<figcaption><span class="video-title">{name}</span>'
        + (f" ({length})" if length else "")
        + " "
        '<span class="video-note">(plays from youtube-nocookie.com)</span>'
        "</figcaption></figure>"
    )


def feed_form(video: Video) -> str:
    """The facade as feed readers and emails show it: a linked thumbnail and a linked title."""
    name = escape(video.title)
    length = f" ({video.length})" if video.length else ""
    return (
        f'<p><a href="{video.watch_url}"><img src="{escape(video.thumbnail)}" alt="{name}" '
        f'width="{WIDTH}" height="{HEIGHT}"></a></p>'
        f'<p><a href="{video.watch_url}">{name}</a>{length}</p>'
    )


def video_object(video: Video, content) -> dict:
    """A schema.org VideoObject; what the metadata lacks comes from the article."""
    description = video.description or _text(
        getattr(content, "subtitle", "")
        or unescape(re.sub(r"<[^>]*>", " ", _FIGURE.sub(" ", str(content.summary))))
    )
    data = {
        "@type": "VideoObject",
        "name": video.title,
        "description": description or video.title,
        "thumbnailUrl": video.thumbnail,
        "uploadDate": video.upload_date or content.date.isoformat(timespec="seconds"),
        "embedUrl": video.embed_url,
        "contentUrl": video.watch_url,
    }
    if video.iso_duration:
        data["duration"] = video.iso_duration
    return data


def embed(content) -> None:
    if not isinstance(content, (Article, Page)):
        return
    html = pelican_seam.html(content)
    if not html or ("youtube.com/watch" not in html and "youtu.be/" not in html):
        return
    settings = content.settings
    videos: list[Video] = []
    seen: dict[str, int] = {}

    def replace(match):
        video_id = match["id"] or match["id2"]
        text = unescape(match["text"] or "").strip()
        title = text if text and not text.startswith(("http://", "https://")) else ""
        seen[video_id] = seen.get(video_id, 0) + 1
        anchor = f"video-{video_id}" + (f"-{seen[video_id]}" if seen[video_id] > 1 else "")
        video = make_video(settings, video_id, title, match["length"] or "", anchor)
        videos.append(video)
        return facade(video)

    pelican_seam.set_html(content, _PARAGRAPH.sub(replace, html))
    if not videos:
        return
    content.videos = videos
    content.feed_html = {video.anchor: feed_form(video) for video in videos}
    summary = content.metadata.get("summary")
    if isinstance(summary, str) and _PARAGRAPH.search(summary):
        # a video before the first paragraph (commonmark_reader's summary): the same facade
        made = {video.anchor: video for video in videos}
        seen.clear()

        def same(match):
            video_id = match["id"] or match["id2"]
            seen[video_id] = seen.get(video_id, 0) + 1
            anchor = f"video-{video_id}" + (f"-{seen[video_id]}" if seen[video_id] > 1 else "")
            return facade(made[anchor]) if anchor in made else match[0]

        summary = _PARAGRAPH.sub(same, summary)
        # where Pelican keeps it, and copies it back into the metadata from after reading
        pelican_seam.set_summary(content, summary)


def add_structured_data(generator) -> None:
    """A VideoObject per video in each article's JSON-LD. After every `content_object_init`
    (another plugin may still change the HTML there): the summary is read only now."""
    for name in ("articles", "translations", "drafts", "drafts_translations",
                 "hidden_articles", "hidden_translations"):  # fmt: skip
        for article in getattr(generator, name, []) or []:
            videos = getattr(article, "videos", None)
            if isinstance(videos, list) and videos:
                data = article.__dict__.setdefault("structured_data", {})
                once = {video.id: video for video in reversed(videos)}  # the first of each
                data["video"] = [video_object(v, article) for v in videos if once[v.id] is v]


# The videos page -----------------------------------------------------------------------------
def published_videos(articles, now: datetime | None = None) -> list[dict]:
    """Every video of the published articles, once (at the first article that embedded it),
    newest article first: [{"video": Video, "article": Article}]."""
    first: dict[str, dict] = {}
    for article in sorted(published(articles, now), key=lambda a: (a.date, str(a.source_path))):
        videos = getattr(article, "videos", None)
        for video in videos if isinstance(videos, list) else []:
            first.setdefault(video.id, {"video": video, "article": article})
    return sorted(first.values(), key=lambda e: e["article"].date, reverse=True)


def _finalized(generator) -> None:
    """Structured data, then a "Videos" menu entry (after "Archives", else last) when a
    published article has a video."""
    add_structured_data(generator)
    settings = generator.settings
    entries = published_videos(generator.articles)
    generator.context["published_videos"] = entries
    shown = bool(entries) and bool(settings.get("VIDEOS_SAVE_AS", VIDEOS_SAVE_AS))
    show_in_menu(generator.context, "Videos", settings.get("VIDEOS_URL", VIDEOS_URL), shown)


def _write_page(generator, writer) -> None:
    settings = generator.settings
    entries = generator.context.get("published_videos", [])
    write_listing(
        generator,
        writer,
        save_as=settings.get("VIDEOS_SAVE_AS", VIDEOS_SAVE_AS),
        template="videos",
        url=settings.get("VIDEOS_URL", VIDEOS_URL),
        listed=[(asdict(e["video"]), e["article"].url) for e in entries],
        videos=entries,
    )


def _reset(_pelican) -> None:
    _channel_feeds.clear()
    _unanswered.clear()


def register():
    signals.initialized.connect(_reset)
    signals.content_object_init.connect(embed)
    signals.article_generator_finalized.connect(_finalized)
    signals.article_writer_finalized.connect(_write_page)
