"""The topics a reader can choose (issue 20): the blog's categories, plus "New videos" when a
video channel is set, with the author's friendlier names and order.

Where they come from: the blog never imports the newsletter, so the endpoint learns them from
what the blog publishes: `feeds/topics.json` (`blog.feed_contract.TOPICS_JSON`, written by
`plugins/newsletter_topics` at every build, next to `feeds/all.rss.xml`), read over HTTP from
beside NEWSLETTER_FEED_URL (or from output/ when it is empty), as the welcome email reads the
feed. "videos" is added when NEWSLETTER_VIDEO_FEED_URL is set and the file does not list it.

Contract:
- `Topic(slug, name)`.
- `available(settings, source=None) -> list[Topic]`, in the author's order; never raises: a
  file that cannot be read gives the last list read in this process (kept `CACHE_SECONDS`), or
  [] (logged), and is not read again for `REREAD_SECONDS` (no request waits on a blog that is
  down). [] means "unknown": `from_form` then checks the shape of a slug, not its name.
- `reread(settings)`: the same, fetched again when the list kept is older than
  `REREAD_SECONDS` (the form names a topic the list kept does not know: one published since).
- `parse(data, videos=False) -> list[Topic]`: the file's bytes to topics, or `TopicError`.
- `encode(selected) -> str | None`: None (everything, later topics included) stays None; a set
  becomes a sorted JSON array (subscribers.topics). An empty set is refused (`TopicError`).
- `decode(text) -> frozenset[str] | None`: the reverse; malformed text raises `TopicError`.
- `from_form(values, available) -> frozenset | None`: the form's `topics` values. No value at
  all: everything (an older form, an API client). The form sends one empty `topics` first (the
  marker that it offered the checkboxes), so only the marker means none ticked: an error. All
  of the available topics ticked: everything. An unknown slug: an error naming it. More than
  `MAX_VALUES` values, or a value longer than `MAX_SLUG`: an error. Errors are `TopicError`
  with a message for the reader.
"""

from __future__ import annotations

import json
import logging
import re
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from blog import feed_contract
from newsletter.settings import ROOT, Settings
from newsletter.subscriptions.articles import _read as read_source  # the same bounded reader

log = logging.getLogger(__name__)
DEFAULT_SOURCE = ROOT / "output" / feed_contract.TOPICS_JSON
CACHE_SECONDS = 300.0
REREAD_SECONDS = 30.0  # `reread`: a list younger than this is not fetched again
MAX_SLUG = 64
MAX_VALUES = 200  # the form sends one per topic, plus the marker
MAX_TOPICS = 100  # in the file
SLUG = re.compile(r"[a-z0-9][a-z0-9_-]{0,63}")
EVERYTHING = None

_cache: dict[str, tuple[float, list]] = {}
_cache_lock = threading.Lock()


class TopicError(ValueError):
    """A topics value that cannot be stored; the message says why, for the reader."""


@dataclass(frozen=True)
class Topic:
    slug: str
    name: str


def parse(data: bytes | str, videos: bool = False) -> list[Topic]:
    """The topics in a `feeds/topics.json`, in its order; "videos" added when `videos`."""
    try:
        document = json.loads(data)
    except (ValueError, UnicodeDecodeError) as error:
        raise TopicError(f"topics file: not JSON: {error}") from None
    if not isinstance(document, dict) or document.get("version") != feed_contract.TOPICS_VERSION:
        raise TopicError(f"topics file: not version {feed_contract.TOPICS_VERSION}")
    listed = document.get("topics")
    if not isinstance(listed, list) or len(listed) > MAX_TOPICS:
        raise TopicError("topics file: 'topics' must be a list")
    found, seen = [], set()
    for number, entry in enumerate(listed, 1):
        slug = entry.get("slug") if isinstance(entry, dict) else None
        name = entry.get("name") if isinstance(entry, dict) else None
        if not isinstance(slug, str) or not SLUG.fullmatch(slug):
            raise TopicError(f"topics file: topic {number}: slug {slug!r} is not a slug")
        if not isinstance(name, str) or not name.strip():
            raise TopicError(f"topics file: topic {number} ({slug}): no name")
        if slug not in seen:
            seen.add(slug)
            found.append(Topic(slug, " ".join(name.split())[:100]))
    if videos and feed_contract.VIDEO_TOPIC not in seen:
        found.append(Topic(feed_contract.VIDEO_TOPIC, feed_contract.VIDEO_TOPIC_NAME))
    return found


def source_of(settings: Settings) -> str:
    """Where the topics file is: beside the feed the newsletter reads."""
    feed = settings.announce.feed_url
    if feed and feed.endswith(feed_contract.ALL_RSS):
        return feed.removesuffix(feed_contract.ALL_RSS) + feed_contract.TOPICS_JSON
    if feed:  # a feed elsewhere: the topics file at the site's root
        return settings.core.site_url + "/" + feed_contract.TOPICS_JSON
    return str(DEFAULT_SOURCE)


def available(settings: Settings, source: str | Path | None = None) -> list[Topic]:
    """The topics a reader can choose now, in the author's order; [] when unknown."""
    where = str(source or source_of(settings))
    videos = bool(settings.announce.video_feed_url)
    now = time.monotonic()
    with _cache_lock:
        cached = _cache.get(where)
    if cached and now - cached[0] < CACHE_SECONDS:
        return _with_videos(cached[1], videos)
    try:
        topics = parse(read_source(where, settings.http.timeout))
    except Exception as problem:  # noqa: BLE001 - the form still works, with the last list
        log.warning("topics: %s could not be read: %s", where, problem)
        kept = cached[1] if cached else []
        with _cache_lock:  # not read again for REREAD_SECONDS: no request waits on a dead blog
            _cache[where] = (now - CACHE_SECONDS + REREAD_SECONDS, kept)
        return _with_videos(kept, videos)
    with _cache_lock:
        _cache[where] = (now, topics)
    return _with_videos(topics, videos)


def reread(settings: Settings, source: str | Path | None = None) -> list[Topic]:
    """`available`, read again unless it was read in the last `REREAD_SECONDS` (a topic the
    blog published since; at most one fetch per interval, whatever is posted)."""
    where = str(source or source_of(settings))
    with _cache_lock:
        cached = _cache.get(where)
        if cached and time.monotonic() - cached[0] >= REREAD_SECONDS:
            del _cache[where]
    return available(settings, source)


def _with_videos(topics: list[Topic], videos: bool) -> list[Topic]:
    if videos and all(t.slug != feed_contract.VIDEO_TOPIC for t in topics):
        return [*topics, Topic(feed_contract.VIDEO_TOPIC, feed_contract.VIDEO_TOPIC_NAME)]
    return list(topics)


def forget_cache() -> None:
    """Forget the topics read (tests, or after a build that changed them)."""
    with _cache_lock:
        _cache.clear()


def encode(selected: Iterable[str] | None) -> str | None:
    """None (everything) stays None; else the sorted JSON array stored in subscribers.topics."""
    if selected is None:
        return None
    slugs = sorted(set(selected))
    if not slugs:
        raise TopicError("Choose at least one topic.")
    for slug in slugs:
        if not isinstance(slug, str) or not SLUG.fullmatch(slug):
            raise TopicError(f"{slug!r} is not a topic")
    return json.dumps(slugs, separators=(",", ":"))


def decode(text: str | None) -> frozenset[str] | None:
    """subscribers.topics back to a set of slugs; None (NULL) is everything."""
    if text is None:
        return None
    try:
        slugs = json.loads(text)
    except ValueError:
        raise TopicError(f"stored topics {text[:80]!r}: not JSON") from None
    if not isinstance(slugs, list) or not all(isinstance(s, str) for s in slugs):
        raise TopicError(f"stored topics {text[:80]!r}: not a list of slugs")
    return frozenset(slugs)


def from_form(values: list[str], available: list[Topic]) -> frozenset[str] | None:
    """The form's `topics` values as a reader's choice (see the module's contract)."""
    if len(values) > MAX_VALUES:
        raise TopicError(f"Too many topics sent ({len(values)}); at most {MAX_VALUES}.")
    if not values:
        return EVERYTHING  # no checkboxes offered (an older form): everything
    chosen = set()
    for raw in values:
        value = raw.strip() if isinstance(raw, str) else ""
        if not value:
            continue  # the form's marker
        if len(value) > MAX_SLUG:
            raise TopicError(f"A topic sent is too long ({len(value)} characters).")
        chosen.add(value)
    if not chosen:
        raise TopicError("Choose at least one topic (all of them ticked: everything).")
    known = {topic.slug for topic in available}
    for slug in sorted(chosen):
        if known and slug not in known:
            names = ", ".join(topic.slug for topic in available)
            raise TopicError(f"Unknown topic {_shown(slug)}; choose among: {names}.")
        if not known and not SLUG.fullmatch(slug):
            raise TopicError(f"Unknown topic {_shown(slug)}.")
    if known and chosen >= known:
        return EVERYTHING  # all ticked: everything, topics that appear later included
    return frozenset(chosen)


def _shown(value: str) -> str:
    """A value sent by anyone, safe to print in a message (escaped, short)."""
    return ascii(value[:MAX_SLUG])


__all__ = [
    "CACHE_SECONDS",
    "DEFAULT_SOURCE",
    "EVERYTHING",
    "MAX_VALUES",
    "Topic",
    "TopicError",
    "available",
    "decode",
    "encode",
    "forget_cache",
    "from_form",
    "parse",
    "reread",
    "source_of",
]
