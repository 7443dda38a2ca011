"""The latest articles, for the welcome email: read from the blog's public feed, as any feed
reader would (the names from `blog.feed_contract`, never Pelican's internals).

Why here and not `newsletter.announcements.feed`: the subscriptions room may not import the
announcer (the rooms point one way), and the welcome needs far less than an announcement: a
title and a link per article. So this is a small reader of its own, with the same source.

Contract: `latest(settings, count=3)` returns up to `count` `Article`s (title, link), newest
first as in the feed, read from `NEWSLETTER_FEED_URL` (an http(s) URL, fetched with `requests`
and `NEWSLETTER_HTTP_TIMEOUT`) or, when it is empty, the built feed `output/feeds/all.rss.xml`.
It never raises: a feed that cannot be read or parsed gives [] (logged), and the welcome goes
out without the list. Feed text reaches mailboxes, so it is made safe here: a title is plain
text on one line (tags stripped, entities decoded; the templates escape it), a link must be an
absolute http(s) URL; an item missing either is left out.

`exercise_library(settings)`: the URL of the blog's exercise library (`/exercises/` under
NEWSLETTER_SITE_URL) when it exists, else "": it exists when the exercise plans the blog
publishes beside its feed (`feed_contract.PLANS_JSON`, next to `feeds/all.rss.xml`) list at
least one plan. Never raises either.
"""

from __future__ import annotations

import html
import json
import logging
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import feedparser
import nh3
import requests

from blog import feed_contract
from newsletter.settings import ROOT, Settings

log = logging.getLogger(__name__)
DEFAULT_FEED = ROOT / "output" / feed_contract.ALL_RSS
MAX_BYTES = 20 * 1024 * 1024
USER_AGENT = "stay-tuned-welcome/1.0 (+newsletter)"
_text_only = nh3.Cleaner(
    tags=set(), clean_content_tags={"script", "style"}, attributes={}, link_rel=None
)


@dataclass(frozen=True)
class Article:
    title: str
    link: str


def latest(settings: Settings, count: int = 3, source: str | Path | None = None) -> list[Article]:
    """Up to `count` of the feed's newest articles; [] when the feed cannot be read."""
    where = source or settings.announce.feed_url or DEFAULT_FEED
    try:
        data = _read(where, settings.http.timeout)
        parsed = feedparser.parse(data)
    except Exception as problem:  # noqa: BLE001 - the welcome goes out without the list
        log.warning("welcome email: the feed %s could not be read: %s", where, problem)
        return []
    found = []
    for entry in parsed.entries:
        title = " ".join(html.unescape(_text_only.clean(entry.get("title", ""))).split())
        link = _http_url(entry.get("link", ""))
        if title and link:
            found.append(Article(title, link))
        if len(found) >= count:
            break
    if not found and parsed.get("bozo"):
        log.warning("welcome email: the feed %s is not readable: %s", where, parsed.bozo_exception)
    return found


def exercise_library(settings: Settings, source: str | Path | None = None) -> str:
    """The exercise library's URL when the blog has one, else ""."""
    where = str(source or settings.announce.feed_url or DEFAULT_FEED)
    if not where.endswith(feed_contract.ALL_RSS):
        return ""  # a feed elsewhere: where its plans are is unknown
    plans = where.removesuffix(feed_contract.ALL_RSS) + feed_contract.PLANS_JSON
    try:
        listed = json.loads(_read(plans, settings.http.timeout)).get("plans")
    except Exception as problem:  # noqa: BLE001 - no plans published: no link
        log.info("welcome email: no exercise plans at %s: %s", plans, problem)
        return ""
    return settings.core.site_url + "/exercises/" if listed else ""


def _read(where: str | Path, timeout: float) -> bytes:
    if str(where).startswith(("http://", "https://")):
        with requests.get(
            str(where), timeout=timeout, headers={"User-Agent": USER_AGENT}, stream=True
        ) as response:
            response.raise_for_status()
            data = response.raw.read(MAX_BYTES + 1, decode_content=True)
        if len(data) > MAX_BYTES:
            raise ValueError(f"larger than {MAX_BYTES} bytes")
        return data
    path = Path(where)
    if path.stat().st_size > MAX_BYTES:
        raise ValueError(f"larger than {MAX_BYTES} bytes")
    return path.read_bytes()


def _http_url(url: str) -> str:
    url = str(url or "").strip()
    if not url or any(c.isspace() or ord(c) < 32 or ord(c) == 127 for c in url):
        return ""
    try:
        parts = urlsplit(url)
    except ValueError:
        return ""
    return url if parts.scheme.lower() in ("http", "https") and parts.hostname else ""


__all__ = ["Article", "DEFAULT_FEED", "exercise_library", "latest"]
