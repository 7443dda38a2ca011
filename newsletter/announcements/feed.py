"""The blog's RSS feed, read the way any feed reader reads it (names from `blog.feed_contract`).

Contract: `read_feed(source=None)` returns a `Feed` whose `items` are `FeedItem`s, newest first as
in the feed. `source` is a file (default `output/feeds/all.rss.xml`, written by `invoke build`) or
an http(s) URL (the live site), fetched with `requests` with a timeout; urllib3's `Retry` on the
session retries refused or dropped connections, timeouts, 429 and 5xx answers with exponential
backoff. Anything wrong (a missing
file, an unreachable site, a 404, XML that is not well formed, something that is not RSS or Atom,
an item without a guid, a link or a title) raises `FeedError` with a sentence that says what and
where, and the caller then sends nothing. Each item carries its guid (its identity, never the
URL), link, title, dek (`<st:subtitle>`), summary HTML (sanitised by feedparser), image URL,
publication time (aware, UTC) and whether it may be announced (`Announce: no` in the article's
metadata becomes `<category domain="announce">no</category>`).
"""

from __future__ import annotations

import calendar
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import urlsplit

import feedparser
import requests
from requests.adapters import HTTPAdapter
from urllib3.util.retry import Retry

from blog import feed_contract
from newsletter.settings import ROOT

DEFAULT_FEED = ROOT / "output" / feed_contract.ALL_RSS
MAX_BYTES = 20 * 1024 * 1024
USER_AGENT = "stay-tuned-announcer/1.0 (+newsletter)"


class FeedError(Exception):
    """The feed could not be read or does not keep the contract; str() says what and where."""


@dataclass(frozen=True)
class FeedItem:
    guid: str
    link: str
    title: str
    subtitle: str = ""
    summary: str = ""  # HTML
    image: str = ""  # absolute URL, or ""
    published: datetime | None = None  # aware, UTC
    announce: bool = True
    author: str = ""

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
    timeout: float = 10.0,
    retries: int = 3,
    backoff: float = 1.0,
    session: requests.Session | None = None,
) -> Feed:
    source = str(source or DEFAULT_FEED)
    if urlsplit(source).scheme in ("http", "https"):
        data = fetch(source, timeout=timeout, retries=retries, backoff=backoff, session=session)
    else:
        data = _read_file(Path(source))
    return parse_feed(data, source)


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
    timeout: float = 10.0,
    retries: int = 3,
    backoff: float = 1.0,
    session: requests.Session | None = None,
) -> bytes:
    """The body of `url`; retries what may pass (connection errors, timeouts, 429, 5xx)."""
    http = session or session_with_retries(retries, backoff)
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


def _item(entry, where: str) -> FeedItem:
    title = " ".join(str(entry.get("title", "")).split())
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
    return FeedItem(
        guid=guid,
        link=link,
        title=title,
        subtitle=" ".join(str(entry.get(f"{feed_contract.PREFIX}_subtitle", "")).split()),
        summary=str(entry.get("summary", "")).strip(),
        image=_image(entry),
        published=_published(entry),
        announce=announce,
        author=str(entry.get("author", "")).strip(),
    )


def _image(entry) -> str:
    for enclosure in entry.get("enclosures", []):
        if str(enclosure.get("type", "")).startswith("image/") and enclosure.get("href"):
            return enclosure["href"]
    for media in entry.get("media_content", []):
        if media.get("url") and (
            media.get("medium") == "image" or str(media.get("type", "")).startswith("image/")
        ):
            return media["url"]
    return ""


def _published(entry) -> datetime | None:
    parsed = entry.get("published_parsed") or entry.get("updated_parsed")
    if not parsed:
        return None
    return datetime.fromtimestamp(calendar.timegm(parsed), UTC)


__all__ = ["DEFAULT_FEED", "Feed", "FeedError", "FeedItem", "fetch", "parse_feed", "read_feed"]
