"""Private YouTube embeds: a facade from our own site, YouTube's player only after a click.

Contract: a paragraph that holds only a YouTube URL (`https://www.youtube.com/watch?v=ID`,
`https://youtu.be/ID`), bare or as a Markdown link `[Title](URL)`, becomes a facade: the video's
thumbnail served from our site, its title (the link's text, else "Video on YouTube"), a link to
the video (what readers without JavaScript use) and a hidden <button> that theme/static/js/
video.js shows and turns into a youtube-nocookie.com player. Works on the rendered HTML (any
Markdown engine), on `content_object_init`. The thumbnail is fetched once with requests from
VIDEO_THUMBNAIL_URL into content/images/videos/ID.jpg and reused; when that fails the build warns
and uses the theme's placeholder (theme/static/images/video-placeholder.svg); it never fails.
"""

from __future__ import annotations

import logging
import os
import re
from html import escape, unescape

import requests
from pelican import signals
from pelican.contents import Article, Page

log = logging.getLogger(__name__)

THUMBNAIL_URL = "https://i.ytimg.com/vi/{id}/hqdefault.jpg"
_URL = (
    r"https?://(?:www\.|m\.)?(?:youtube\.com/watch\?(?:[^\"<\s]*?&amp;)?v=|youtu\.be/)"
    r"(?P<id>[A-Za-z0-9_-]{11})[^\"<\s]*"
)
_BARE = _URL.replace("?P<id>", "?P<id2>")
_PARAGRAPH = re.compile(
    rf'<p>\s*(?:<a href="(?P<href>{_URL})">(?P<text>[^<]*)</a>|(?P<bare>{_BARE}))\s*</p>'
)


def thumbnail(settings: dict, video_id: str) -> str | None:
    """The thumbnail's site path (images/videos/ID.jpg), fetched once; None when unavailable."""
    relative = f"images/videos/{video_id}.jpg"
    target = os.path.join(settings.get("PATH", os.curdir), relative)
    if os.path.isfile(target) and os.path.getsize(target) > 0:
        return relative
    url = settings.get("VIDEO_THUMBNAIL_URL", THUMBNAIL_URL).format(id=video_id)
    try:
        response = requests.get(url, timeout=settings.get("VIDEO_THUMBNAIL_TIMEOUT", 10))
        response.raise_for_status()
        if not response.content:
            raise ValueError("empty response")
        os.makedirs(os.path.dirname(target), exist_ok=True)
        with open(target + ".part", "wb") as handle:
            handle.write(response.content)
        os.replace(target + ".part", target)
        return relative
    except (requests.RequestException, OSError, ValueError) as error:
        log.warning(
            "video %s: no thumbnail from %s (%s); using the placeholder", video_id, url, error
        )
        return None


def facade(settings: dict, video_id: str, title: str) -> str:
    siteurl = settings.get("SITEURL", "").rstrip("/")
    found = thumbnail(settings, video_id)
    if found:
        src, size = f"{siteurl}/{found}", 'width="480" height="360"'
    else:
        static = settings.get("THEME_STATIC_DIR", "theme")
        src, size = f"{siteurl}/{static}/images/video-placeholder.svg", 'width="480" height="360"'
    watch = f"https://www.youtube.com/watch?v={video_id}"
    name = escape(title)
    return (
        f'<figure class="video" data-video="{video_id}">'
        f'<a class="video-link" href="{watch}"><img src="{src}" alt="" {size} loading="lazy">'
        f'<span class="video-title">{name}</span></a>'
        f'<button type="button" class="video-play" aria-label="Play {name}" hidden>'
        '<svg viewBox="0 0 24 24" width="48" height="48" aria-hidden="true" focusable="false">'
        '<path fill="currentColor" d="M8 5v14l11-7z"/></svg></button>'
        f'<figcaption>{name} <span class="video-note">(plays from youtube-nocookie.com)</span>'
        "</figcaption></figure>"
    )


def embed(content) -> None:
    if not isinstance(content, (Article, Page)):
        return
    html = getattr(content, "_content", None)
    if not html or ("youtube.com/watch" not in html and "youtu.be/" not in html):
        return
    settings = content.settings

    def replace(match):
        video_id = match["id"] or match["id2"]
        text = unescape(match["text"] or "").strip()
        title = (
            text if text and not text.startswith(("http://", "https://")) else "Video on YouTube"
        )
        return facade(settings, video_id, title)

    content._content = _PARAGRAPH.sub(replace, html)


def register():
    signals.content_object_init.connect(embed)
