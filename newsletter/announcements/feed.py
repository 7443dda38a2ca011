"""The blog's RSS feed, read the way any feed reader reads it (names from `blog.feed_contract`).

Contract: `read_feed(source=None)` returns a `Feed` whose `items` are `FeedItem`s, newest first as
in the feed. `source` is a file (default `output/feeds/all.rss.xml`, written by `invoke build`) or
an http(s) URL (the live site), fetched with `requests` with a timeout (`timeout=`: callers pass
`settings.http.timeout`, NEWSLETTER_HTTP_TIMEOUT, whose default is the default); urllib3's
`Retry` on the session retries refused or dropped connections, timeouts, 429 and 5xx answers
with exponential backoff. Anything wrong (a missing file, an unreachable site, a 404, XML that
is not well formed, something that is not RSS or Atom, an item without a guid, a link or a
title) raises `FeedError` with a sentence that says what and where, and the caller then sends
nothing. Each item carries its guid (its identity, never the URL), link, title, dek
(`<st:subtitle>`), summary HTML, image URL, publication time (aware, UTC) and whether it may be
announced (`Announce: no` in the article's metadata becomes
`<category domain="announce">no</category>`). An article's exercise plans are read back from
their cards in the full content (`exercises_in`, the classes of `blog.feed_contract`) as plain
text: `FeedItem.exercises`, `Exercise`s (card id, name, targets, steps, prescription rows).
An item's `topic` (issue 20: who chose to get it) is its `<category domain="topic">` slug (an
article's category), "videos" for a video of the channel feed, or "" when the feed says none
(a feed built before topics: such an item goes to every reader).

Feed text reaches subscribers' mailboxes, so it is checked here, in one place:
- `safe_html(html)`: the summary through nh3 (Rust's ammonia) with an allow-list made for email:
  text-level and structural tags only (`SUMMARY_TAGS`), `a[href]` and `img[src alt width
  height]`, links to absolute http(s) (or mailto:) URLs, images from absolute http(s) URLs, no
  style, class or event attribute; forms, SVG, MathML, frames, scripts and styles go with their
  content. A `FeedItem` applies it to its summary however it is made (parsed, read back from the
  ledger, built by hand), so the templates may print the summary as HTML.
- `http_url(url)`: an absolute http(s) URL, or "" (the item's image; a `javascript:` or `data:`
  enclosure is dropped).
- `plain_text(text, html=)`: titles, deks and authors are plain text everywhere. When the feed
  marks one as HTML, or it looks like HTML (a closing tag or an entity reference, as in
  feedparser's own guess for RSS), its tags are stripped and its entities decoded:
  `<b>Knees</b> &amp; Hips` becomes `Knees & Hips`. Text that only contains angle brackets
  (`Hips <Part 1>`) is kept as written. Whitespace is collapsed. The HTML templates escape these
  strings; the Subject uses them as they are.
"""

from __future__ import annotations

import calendar
import html as _html
import re
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import urlsplit

import feedparser
import nh3
import requests
from requests.adapters import HTTPAdapter
from urllib3.util.retry import Retry

from blog import feed_contract
from newsletter.settings import DEFAULT_HTTP_TIMEOUT, ROOT

DEFAULT_FEED = ROOT / "output" / feed_contract.ALL_RSS
MAX_BYTES = 20 * 1024 * 1024
USER_AGENT = "stay-tuned-announcer/1.0 (+newsletter)"


class FeedError(Exception):
    """The feed could not be read or does not keep the contract; str() says what and where."""


# Feed text and HTML, as an email may show them ---------------------------------------------------
SUMMARY_TAGS = frozenset(
    {"p", "br", "hr", "a", "strong", "em", "b", "i", "code", "pre", "blockquote",
     "ul", "ol", "li", "h2", "h3", "h4", "img", "figure", "figcaption"}
)  # fmt: skip
SUMMARY_ATTRIBUTES = {"a": {"href"}, "img": {"src", "alt", "width", "height"}}
# Removed together with everything inside them (other unknown tags lose the tag, keep the text).
DROPPED_WITH_CONTENT = frozenset(
    {"script", "style", "svg", "math", "form", "button", "select", "textarea", "iframe",
     "frame", "frameset", "object", "embed", "applet", "noscript", "template", "title"}
)  # fmt: skip
HTML_TYPES = frozenset({"text/html", "application/xhtml+xml"})
_SIZE = re.compile(r"[0-9]{1,4}")
_LOOKS_LIKE_HTML = re.compile(
    r"</[A-Za-z][\w-]*\s*>|&(?:[A-Za-z][A-Za-z0-9]*|#[0-9]+|#[xX][0-9a-fA-F]+);"
)


def http_url(url: str) -> str:
    """`url` if it is an absolute http(s) URL with a host (and no whitespace or control
    character inside), else ""."""
    url = str(url or "").strip()
    if not url or any(c.isspace() or ord(c) < 32 or ord(c) == 127 for c in url):
        return ""
    try:
        parts = urlsplit(url)
        ok = parts.scheme.lower() in ("http", "https") and bool(parts.hostname)
    except ValueError:  # e.g. a broken IPv6 host
        return ""
    return url if ok else ""


def _summary_attribute(tag: str, name: str, value: str) -> str | None:
    if name == "href":
        if value.strip().lower().startswith("mailto:") and "@" in value:
            return value.strip()
        return http_url(value) or None
    if name == "src":
        return http_url(value) or None
    if name in ("width", "height"):
        return value.strip() if _SIZE.fullmatch(value.strip()) else None
    return value


_summary_cleaner = nh3.Cleaner(
    tags=set(SUMMARY_TAGS),
    clean_content_tags=set(DROPPED_WITH_CONTENT),
    attributes={tag: set(names) for tag, names in SUMMARY_ATTRIBUTES.items()},
    attribute_filter=_summary_attribute,
    url_schemes={"http", "https", "mailto"},
    url_relative="deny",  # a relative URL means nothing in a mailbox
    link_rel="noopener noreferrer",
    strip_comments=True,
)
_text_cleaner = nh3.Cleaner(
    tags=set(), clean_content_tags=set(DROPPED_WITH_CONTENT), attributes={}, link_rel=None
)


# An <img> as nh3 writes it (attribute values always double-quoted, `"` escaped inside).
_IMG = re.compile(r'<img(?:\s+[\w-]+="[^"]*")*\s*/?>')


def safe_html(html: str) -> str:
    """Feed HTML as an email may show it: the allow-list above, applied by nh3 (ammonia); an
    image whose URL was refused goes altogether (no broken-image box). Idempotent."""
    cleaned = _summary_cleaner.clean(str(html or ""))
    return _IMG.sub(lambda m: m[0] if ' src="' in m[0] else "", cleaned).strip()


def looks_like_html(text: str) -> bool:
    return bool(_LOOKS_LIKE_HTML.search(text))


def plain_text(text: str, *, html: bool | None = None) -> str:
    """Feed text as plain text on one line. `html=True`: it is HTML (strip the tags, decode the
    entities); `None`: guess (a closing tag or an entity reference means HTML)."""
    text = str(text or "")
    if html or (html is None and looks_like_html(text)):
        text = _html.unescape(_text_cleaner.clean(text))
    return " ".join(text.split())


# Exercise plans, read back from their cards in the full content ---------------------------------
@dataclass(frozen=True)
class Exercise:
    """An exercise plan of an article, as plain text: its card's id (the anchor in the article),
    name, targets, steps and prescription rows ((label, value), e.g. ("Reps", "15–20"))."""

    id: str
    name: str
    targets: str = ""
    steps: tuple[str, ...] = ()
    rows: tuple[tuple[str, str], ...] = ()

    def __post_init__(self):
        object.__setattr__(self, "steps", tuple(str(step) for step in self.steps))
        object.__setattr__(self, "rows", tuple((str(a), str(b)) for a, b in self.rows))

    @classmethod
    def from_value(cls, value) -> Exercise:
        return value if isinstance(value, cls) else cls(**value)


_EXERCISE = feed_contract.EXERCISE_CLASSES
_VOID = frozenset({"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta",
                   "source", "track", "wbr"})  # fmt: skip
_ID = re.compile(r"[A-Za-z][\w-]{0,120}")


class _Cards(HTMLParser):
    """The exercise cards of an HTML fragment (see blog.feed_contract), as `Exercise`s."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.found: list[Exercise] = []
        self.stack: list[tuple[str, str | None]] = []  # (tag, what its text is) inside a card
        self.card: dict | None = None
        self.text: list[str] = []

    def handle_starttag(self, tag, attrs):
        if tag in _VOID:
            if tag == "br":
                self.handle_data(" ")
            return
        attributes = dict(attrs)
        classes = (attributes.get("class") or "").split()
        if self.card is None:
            if _EXERCISE["card"] in classes:
                card_id = attributes.get("id") or ""
                self.card = {"id": card_id if _ID.fullmatch(card_id) else "", "name": "",
                             "targets": "", "steps": [], "rows": [], "dt": None}  # fmt: skip
                self.stack = [(tag, None)]
            return
        role = None
        if _EXERCISE["name"] in classes:
            role = "name"
        elif _EXERCISE["targets"] in classes:
            role = "targets"
        elif _EXERCISE["label"] in classes:
            role = "label"
        elif tag == "li" and self._inside("steps"):
            role = "step"
        elif tag in ("dt", "dd") and self._inside("prescription"):
            role = tag
        elif _EXERCISE["steps"] in classes:
            role = "steps"
        elif _EXERCISE["prescription"] in classes:
            role = "prescription"
        if role in ("name", "targets", "step", "dt", "dd"):
            self.text = []
        self.stack.append((tag, role))

    def _inside(self, role: str) -> bool:
        return any(r == role for _, r in self.stack)

    def _role(self) -> str | None:
        return next((r for _, r in reversed(self.stack) if r), None)

    def handle_data(self, data):
        if self.card is not None and self._role() in ("name", "targets", "step", "dt", "dd"):
            self.text.append(data)

    def handle_endtag(self, tag):
        if self.card is None or tag in _VOID:
            return
        while self.stack:
            open_tag, role = self.stack.pop()
            self._close(role)
            if open_tag == tag:
                break
        if not self.stack:
            card = self.card
            self.card = None
            if card["name"]:
                self.found.append(Exercise(card["id"], card["name"], card["targets"],
                                           card["steps"], card["rows"]))  # fmt: skip

    def _close(self, role: str | None) -> None:
        text = " ".join("".join(self.text).split())
        card = self.card
        if role == "name":
            card["name"] = text
        elif role == "targets":
            card["targets"] = text
        elif role == "step" and text:
            card["steps"].append(text)
        elif role == "dt":
            card["dt"] = text
        elif role == "dd" and card["dt"]:
            card["rows"].append((card["dt"], text))
            card["dt"] = None
        if role in ("name", "targets", "step", "dt", "dd"):
            self.text = []


def exercises_in(html: str) -> tuple[Exercise, ...]:
    """The exercise cards in an article's HTML (the feed's full content), in order, as text."""
    if _EXERCISE["card"] not in (html or ""):
        return ()
    parser = _Cards()
    parser.feed(html)
    parser.close()
    return tuple(parser.found)


@dataclass(frozen=True)
class FeedItem:
    guid: str
    link: str
    title: str  # plain text
    subtitle: str = ""  # plain text
    summary: str = ""  # HTML, always through safe_html
    image: str = ""  # absolute http(s) URL, or ""
    published: datetime | None = None  # aware, UTC
    announce: bool = True
    author: str = ""  # plain text
    kind: str = "article"  # or "video" (the author's YouTube channel feed)
    videos: tuple[str, ...] = ()  # an article: the YouTube video ids it embeds
    short: bool = False  # a video: a YouTube Short
    exercises: tuple[Exercise, ...] = ()  # an article: its exercise plans, from their cards
    topic: str = ""  # the reader's topic it belongs to: its category's slug, or "videos"

    def __post_init__(self):
        # However the item was made (parsed, read back from the ledger, built by hand), what an
        # email prints as HTML or as an image URL has been checked.
        object.__setattr__(self, "summary", safe_html(self.summary))
        object.__setattr__(self, "image", http_url(self.image))
        object.__setattr__(self, "videos", tuple(self.videos))
        object.__setattr__(self, "exercises", tuple(map(Exercise.from_value, self.exercises)))

    def to_dict(self) -> dict:
        data = asdict(self)
        data["published"] = self.published.isoformat() if self.published else None
        return data

    @classmethod
    def from_dict(cls, data: dict) -> FeedItem:
        data = dict(data)
        if data.get("published"):
            data["published"] = datetime.fromisoformat(data["published"])
        return cls(**data)


@dataclass(frozen=True)
class Feed:
    source: str
    title: str
    link: str
    items: list[FeedItem]


def read_feed(
    source: str | Path | None = None,
    *,
    timeout: float = DEFAULT_HTTP_TIMEOUT,
    retries: int = 3,
    backoff: float = 1.0,
) -> Feed:
    source = str(source or DEFAULT_FEED)
    if urlsplit(source).scheme in ("http", "https"):
        data = fetch(source, timeout=timeout, retries=retries, backoff=backoff)
    else:
        data = _read_file(Path(source))
    return parse_feed(data, source)


def read_video_feed(url: str, **options) -> Feed:
    """The author's YouTube channel feed (Atom: `yt:videoId`, `media:group` with the title,
    thumbnail and description), as `FeedItem`s of kind "video": guid `yt:video:<id>`, the
    thumbnail as the image, the description's first lines as a short text (plain text, escaped),
    `short` for a YouTube Short. The same errors as `read_feed`."""
    feed = read_feed(url, **options)
    videos = []
    for number, item in enumerate(feed.items, 1):
        if not item.guid.startswith("yt:video:"):
            raise FeedError(f"video feed {url}, item {number}: not a YouTube video ({item.guid})")
        videos.append(item)
    return Feed(feed.source, feed.title, feed.link, videos)


YOUTUBE_ID = re.compile(
    r"(?:youtube(?:-nocookie)?\.com/(?:watch\?(?:[^\"'\s<>]*&(?:amp;)?)?v=|embed/|shorts/|live/)"
    r"|youtu\.be/)([A-Za-z0-9_-]{11})"
)
DESCRIPTION_LINES = 3


def video_ids(html: str) -> tuple[str, ...]:
    """The YouTube video ids that links and embeds in an article's HTML point at, in order."""
    return tuple(dict.fromkeys(YOUTUBE_ID.findall(html or "")))


def session_with_retries(retries: int = 3, backoff: float = 1.0) -> requests.Session:
    """A session that retries connection errors, timeouts, 429 and 5xx `retries` times, waiting
    `backoff` x 1, 2, 4 ... seconds (or what Retry-After says)."""
    retry = Retry(
        total=retries,
        connect=retries,
        read=retries,
        status=retries,
        backoff_factor=backoff,
        status_forcelist=(429, 500, 502, 503, 504),
        allowed_methods=("GET",),
        raise_on_status=False,
        respect_retry_after_header=True,
    )
    session = requests.Session()
    adapter = HTTPAdapter(max_retries=retry)
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    return session


def fetch(
    url: str,
    *,
    timeout: float = DEFAULT_HTTP_TIMEOUT,
    retries: int = 3,
    backoff: float = 1.0,
) -> bytes:
    """The body of `url`; retries what may pass (connection errors, timeouts, 429, 5xx)."""
    http = session_with_retries(retries, backoff)
    tries = f"tried {retries + 1} times"
    try:
        response = http.get(
            url, timeout=(timeout, timeout), headers={"User-Agent": USER_AGENT}, stream=True
        )
    except requests.exceptions.RetryError as error:
        raise FeedError(f"feed {url}: the server kept failing ({error}); {tries}") from None
    except requests.RequestException as error:
        raise FeedError(
            f"feed {url}: cannot reach it ({type(error).__name__}: {error}); {tries}"
        ) from None
    with response:
        if response.status_code == 429 or response.status_code >= 500:
            raise FeedError(
                f"feed {url}: the server answered {response.status_code} {response.reason}; {tries}"
            )
        if response.status_code != 200:
            raise FeedError(
                f"feed {url}: the server answered {response.status_code} {response.reason}"
            )
        try:
            return _bounded(response)
        except requests.RequestException as error:
            raise FeedError(
                f"feed {url}: the connection broke while reading it ({error})"
            ) from None


def _bounded(response: requests.Response) -> bytes:
    chunks, size = [], 0
    for chunk in response.iter_content(64 * 1024):
        size += len(chunk)
        if size > MAX_BYTES:
            raise FeedError(f"feed {response.url}: larger than {MAX_BYTES // 2**20} MB")
        chunks.append(chunk)
    return b"".join(chunks)


def _read_file(path: Path) -> bytes:
    if not path.is_file():
        hint = " (run `invoke build` first)" if path == DEFAULT_FEED else ""
        raise FeedError(f"feed {path}: no such file{hint}")
    try:
        return path.read_bytes()
    except OSError as error:
        raise FeedError(f"feed {path}: cannot read it: {error}") from None


def parse_feed(data: bytes, source: str = "<feed>") -> Feed:
    if not data.strip():
        raise FeedError(f"feed {source}: empty")
    parsed = feedparser.parse(data, sanitize_html=True, resolve_relative_uris=True)
    problem = parsed.get("bozo_exception")
    if parsed.get("bozo") and not isinstance(problem, feedparser.CharacterEncodingOverride):
        raise FeedError(f"feed {source}: not well-formed XML: {problem}")
    if not parsed.get("version"):
        raise FeedError(f"feed {source}: not an RSS or Atom feed")
    items, seen = [], set()
    for number, entry in enumerate(parsed.entries, 1):
        item = _item(entry, f"feed {source}, item {number}")
        if item.guid not in seen:
            seen.add(item.guid)
            items.append(item)
    channel = parsed.get("feed", {})
    return Feed(source, channel.get("title", ""), channel.get("link", ""), items)


def _text(entry, key: str) -> str:
    """An element's text as plain text: HTML when feedparser says so (Atom's type="html", or its
    guess for RSS) or when it looks like HTML."""
    detail = entry.get(f"{key}_detail") or {}
    is_html = detail.get("type") in HTML_TYPES or None
    return plain_text(str(entry.get(key, "")), html=is_html)


def _item(entry, where: str) -> FeedItem:
    title = _text(entry, "title")
    if not title:
        raise FeedError(f"{where}: no title")
    where = f"{where} ({title!r})"
    guid = str(entry.get("id", "")).strip()
    if not guid:
        raise FeedError(f"{where}: no guid; every item needs a stable guid")
    link = str(entry.get("link", "")).strip()
    if urlsplit(link).scheme not in ("http", "https") or not urlsplit(link).hostname:
        raise FeedError(f"{where}: its link {link!r} is not an absolute http(s) URL")
    announce = not any(
        (tag.get("scheme") or "").lower() == feed_contract.ANNOUNCE_DOMAIN
        and feed_contract.opts_out(tag.get("term", ""))
        for tag in entry.get("tags", [])
    )
    if guid.startswith("yt:video:"):  # an entry of a YouTube channel feed
        return FeedItem(
            guid=guid,
            link=link,
            title=title,
            summary=_description(entry),
            image=_thumbnail(entry),
            published=_published(entry),
            author=_text(entry, "author"),
            kind="video",
            short="/shorts/" in urlsplit(link).path,
            topic=feed_contract.VIDEO_TOPIC,
        )
    content = " ".join(str(part.get("value", "")) for part in entry.get("content", []))
    return FeedItem(
        guid=guid,
        link=link,
        title=title,
        subtitle=_text(entry, f"{feed_contract.PREFIX}_subtitle"),
        summary=str(entry.get("summary", "")),  # FeedItem puts it through safe_html
        image=_image(entry),
        published=_published(entry),
        announce=announce,
        author=_text(entry, "author"),
        videos=video_ids(content + " " + str(entry.get("summary", ""))),
        exercises=exercises_in(content),
        topic=_topic(entry),
    )


def _topic(entry) -> str:
    """The item's topic: its `<category domain="topic">` (a slug), or "" when the feed says none."""
    for tag in entry.get("tags", []):
        if (tag.get("scheme") or "").lower() == feed_contract.TOPIC_DOMAIN:
            slug = str(tag.get("term", "")).strip().lower()
            if re.fullmatch(r"[a-z0-9][a-z0-9_-]{0,63}", slug):
                return slug
    return ""


def _description(entry) -> str:
    """A video's description (plain text on YouTube): its first lines, escaped, as HTML."""
    lines = [line.strip() for line in str(entry.get("summary", "")).splitlines() if line.strip()]
    return "".join(f"<p>{_html.escape(line)}</p>" for line in lines[:DESCRIPTION_LINES])


def _thumbnail(entry) -> str:
    for thumbnail in entry.get("media_thumbnail", []):
        if http_url(thumbnail.get("url")):
            return http_url(thumbnail["url"])
    return ""


def _image(entry) -> str:
    """The first image enclosure (or media:content image) with an absolute http(s) URL."""
    for enclosure in entry.get("enclosures", []):
        if str(enclosure.get("type", "")).startswith("image/") and http_url(enclosure.get("href")):
            return http_url(enclosure["href"])
    for media in entry.get("media_content", []):
        if http_url(media.get("url")) and (
            media.get("medium") == "image" or str(media.get("type", "")).startswith("image/")
        ):
            return http_url(media["url"])
    return ""


def _published(entry) -> datetime | None:
    parsed = entry.get("published_parsed") or entry.get("updated_parsed")
    if not parsed:
        return None
    return datetime.fromtimestamp(calendar.timegm(parsed), UTC)


__all__ = [
    "DEFAULT_FEED",
    "Exercise",
    "Feed",
    "FeedError",
    "FeedItem",
    "exercises_in",
    "fetch",
    "http_url",
    "parse_feed",
    "plain_text",
    "read_feed",
    "read_video_feed",
    "safe_html",
    "video_ids",
]
