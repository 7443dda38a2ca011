"""RSS 2.0 and Atom feeds made with feedgen, and JSON Feed 1.1 beside them, written at every build.

Contract: after Pelican writes the articles, `write_feeds(generator)` writes one RSS, one Atom
and one JSON Feed for all published articles and one of each per category, at the paths in the
FEEDS setting. The JSON Feed holds the same items as the RSS (same ids, full `content_html`,
a plain-text `summary`, `image`, RFC 3339 dates, authors, tags). Each feed names itself (RSS and
Atom `rel="self"`, JSON `feed_url`); with the `WEBSUB_HUB` setting each also declares that hub
(`rel="hub"`, JSON `hubs`), and without it none does.
Each entry carries the full HTML with every URL made absolute, the summary, a stable guid built
from the article's `Id` metadata (never its URL), the author, categories and tags, the dek as
`<st:subtitle>`, and the image as an enclosure and media:content. Entries are newest first, at
most `max_items`; the feed's own date is the newest entry's, so rebuilding unchanged content
writes byte-identical files. Drafts, hidden and future-dated articles are never included. An
article with `Announce: no` carries `<category domain="announce">no</category>` so the
newsletter can skip it. Each entry says its category's slug as `<category domain="topic">`
(`feed_contract.TOPIC_DOMAIN`), and every build writes the topics a reader may choose (the
published articles' categories, "videos" with VIDEO_CHANNEL_FEED_URL, the author's
NEWSLETTER_TOPICS names and order: `feed_contract.topic_list`) to `feed_contract.TOPICS_JSON`,
and gives them to the templates as `NEWSLETTER_TOPIC_CHOICES` (the "Stay tuned" form's
checkboxes). A plugin may give an article `feed_html`, {id: HTML}: each `<figure
id="...">` of the article with such an id is that HTML in the feeds (plugins/video_embeds: the
video facade becomes a plain linked thumbnail, no script or button).
"""

from __future__ import annotations

import json
import mimetypes
import os
import re
from datetime import UTC, datetime
from html import unescape
from urllib.parse import urljoin

from feedgen.ext.base import BaseEntryExtension, BaseExtension
from feedgen.feed import FeedGenerator
from feedgen.util import xml_elem
from pelican import signals

from blog import feed_contract, listing, pelican_seam, websub
from blog.feed_contract import feed_settings

# The article fields of ours this plugin reads (plugins/content_check refuses undeclared ones).
METADATA_FIELDS = ("Id", "Subtitle", "Image", "Announce")
JSON_FEED_VERSION = "https://jsonfeed.org/version/1.1"
ATOM = "http://www.w3.org/2005/Atom"
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
NS = feed_contract.NAMESPACE  # our own elements; feedparser shows them as st_*
URL_ATTR = re.compile(r"""(\s(?:href|src|poster|cite)\s*=\s*)(["'])(.*?)\2""", re.I | re.S)
SRCSET_ATTR = re.compile(r"""(\ssrcset\s*=\s*)(["'])(.*?)\2""", re.I | re.S)


class ArticleExtension(BaseExtension):
    """Our namespace, and the WebSub hub as `<link rel="hub">` (Atom) or `<atom:link rel="hub">`
    (RSS), after the feed's self link: feedgen writes only the self link into RSS."""

    def __init__(self):
        self._hub = ""

    def hub(self, value=None):
        if value is not None:
            self._hub = value
        return self._hub

    def extend_ns(self):
        return {feed_contract.PREFIX: NS}

    def _add_hub(self, parent, tag):
        if not self._hub:
            return
        links = [i for i, child in enumerate(parent) if child.tag == tag]
        at = links[-1] + 1 if links else len(parent)
        link = xml_elem(tag, parent, href=self._hub, rel="hub")
        parent.remove(link)
        parent.insert(at, link)

    def extend_atom(self, feed):
        self._add_hub(feed, "link")  # feedgen's Atom elements carry no prefix (xmlns on <feed>)
        return feed

    def extend_rss(self, feed):
        self._add_hub(feed.find("channel"), f"{{{ATOM}}}link")
        return feed


class ArticleEntryExtension(BaseEntryExtension):
    """<st:subtitle>: the article's dek, which RSS and Atom have no element for."""

    def __init__(self):
        self._subtitle = None

    def subtitle(self, value=None):
        if value is not None:
            self._subtitle = value
        return self._subtitle

    def _extend(self, entry):
        if self._subtitle:
            xml_elem(f"{{{NS}}}subtitle", entry).text = self._subtitle
        return entry

    extend_rss = extend_atom = _extend


def absolutize(html: str, base: str) -> str:
    """Make every href/src/poster/cite/srcset URL in an HTML fragment absolute against base."""
    html = URL_ATTR.sub(lambda m: f"{m[1]}{m[2]}{urljoin(base, m[3].strip())}{m[2]}", html)

    def fix_srcset(match):
        parts = []
        for candidate in match[3].split(","):
            bits = candidate.strip().split(None, 1)
            if bits:
                bits[0] = urljoin(base, bits[0])
                parts.append(" ".join(bits))
        return f"{match[1]}{match[2]}{', '.join(parts)}{match[2]}"

    return SRCSET_ATTR.sub(fix_srcset, html)


_FIGURE = re.compile(r'<figure\b[^>]*?\sid="(?P<id>[^"]+)"[^>]*>.*?</figure>', re.S)


def plain_figures(html: str, replaced: dict[str, str]) -> str:
    """Each `<figure id="ID">...</figure>` whose ID is a key of `replaced` made that HTML (a
    figure a summary cut short too: Pelican closes it)."""
    return _FIGURE.sub(lambda m: replaced.get(m["id"], m[0]), html)


def guid(article) -> str:
    return f"urn:uuid:{str(article.id).strip().lower()}"


def published(articles, now=None) -> list:
    """Published articles dated up to now, newest first (ties broken by guid, for stable output)."""
    return sorted(listing.published(articles, now), key=lambda a: (a.date, guid(a)), reverse=True)


def updated(article):
    return getattr(article, "modified", None) or article.date


def entry_html(article, url: str, siteurl: str, cache: dict | None = None) -> tuple[str, str]:
    """(summary, content) of an article with absolute URLs, made once per article per build: an
    article is in the site's feeds and in its category's, RSS and Atom each."""
    key = id(article)
    if cache is not None and key in cache:
        return cache[key]
    summary, content = str(article.summary), article.get_content(siteurl)
    replaced = getattr(article, "feed_html", None)  # {figure id: HTML}, e.g. video facades
    if replaced:
        summary, content = plain_figures(summary, replaced), plain_figures(content, replaced)
    found = (absolutize(summary, url), absolutize(content, url))
    if cache is not None:
        cache[key] = found
    return found


def image_url(article, siteurl: str) -> str | None:
    image = getattr(article, "image", None)
    return urljoin(siteurl + "/", str(image)) if image else None


_TAG = re.compile(r"<\s*/?\s*([a-zA-Z][a-zA-Z0-9]*)?[^>]*>")
_BLOCK = frozenset(
    "address blockquote br dd div dl dt figcaption figure h1 h2 h3 h4 h5 h6 hr li ol p pre "
    "section table td th tr ul".split()
)


def plain_text(html: str) -> str:
    """An HTML fragment as one line of text (JSON Feed's `summary` is plain text): tags
    dropped, a block's edge a space, entities decoded."""
    text = _TAG.sub(lambda m: " " if (m[1] or "").lower() in _BLOCK else "", html)
    return " ".join(unescape(text).split())


def rfc3339(moment: datetime) -> str:
    if moment.tzinfo is None:
        raise ValueError(f"date {moment} has no time zone; set TIMEZONE")
    return moment.isoformat(timespec="seconds")


def build_json_feed(articles, settings, *, title, json_url, html_url, cache=None, hub="") -> bytes:
    """A JSON Feed 1.1 document of these articles, with the items of the RSS and Atom feeds."""
    siteurl = settings["SITEURL"].rstrip("/")
    feed = {
        "version": JSON_FEED_VERSION,
        "title": title,
        "home_page_url": html_url,
        "feed_url": json_url,
        "description": settings.get("SITESUBTITLE") or settings.get("SITENAME", ""),
        "language": settings.get("DEFAULT_LANG", "en"),
        "authors": [{"name": settings.get("AUTHOR", "")}],
    }
    if hub:
        feed["hubs"] = [{"type": "WebSub", "url": hub}]
    items = []
    for article in articles:
        url = urljoin(siteurl + "/", article.url)
        summary, content = entry_html(article, url, siteurl, cache)
        item = {
            "id": guid(article),
            "url": url,
            "title": str(article.title),
            "content_html": content,
            "summary": plain_text(summary),
            "date_published": rfc3339(article.date),
            "date_modified": rfc3339(updated(article)),
            "authors": [{"name": str(article.author)}],
            "tags": [str(article.category), *(str(t) for t in getattr(article, "tags", []))],
        }
        image = image_url(article, siteurl)
        if image:
            item["image"] = image
        items.append(item)
    feed["items"] = items
    return (json.dumps(feed, ensure_ascii=False, indent=1) + "\n").encode("utf-8")


def build_feed(
    articles, settings, *, title, rss_path, atom_path, html_url, content_path, cache=None, hub=""
):
    siteurl = settings["SITEURL"].rstrip("/")
    fg = FeedGenerator()
    fg.load_extension("dc")
    fg.load_extension("media")
    fg.register_extension("st", ArticleExtension, ArticleEntryExtension)
    fg.st.hub(hub)
    fg.id(html_url)
    fg.title(title)
    fg.subtitle(settings.get("SITESUBTITLE") or settings.get("SITENAME", ""))
    fg.link(href=html_url, rel="alternate")
    fg.language(settings.get("DEFAULT_LANG", "en"))
    fg.author({"name": settings.get("AUTHOR", "")})
    fg.updated(max((updated(a) for a in articles), default=EPOCH))
    for article in articles:
        url = urljoin(siteurl + "/", article.url)
        fe = fg.add_entry(order="append")
        fe.id(guid(article))
        fe.guid(guid(article), permalink=False)
        fe.title(str(article.title))
        fe.link(href=url, rel="alternate")
        fe.published(article.date)
        fe.updated(updated(article))
        fe.author({"name": str(article.author)})
        fe.dc.dc_creator(str(article.author))
        if getattr(article, "subtitle", None):
            fe.st.subtitle(str(article.subtitle))
        summary, content = entry_html(article, url, siteurl, cache)
        fe.summary(summary, type="html")
        fe.description(summary)
        fe.content(content, type="html")
        fe.category(term=str(article.category), label=str(article.category))
        fe.category(term=str(article.category.slug), scheme=feed_contract.TOPIC_DOMAIN)
        for tag in getattr(article, "tags", []):
            fe.category(term=str(tag), label=str(tag))
        if feed_contract.opts_out(getattr(article, "announce", "yes")):
            fe.category(term="no", scheme=feed_contract.ANNOUNCE_DOMAIN)
        image = getattr(article, "image", None)
        if image:
            url_of_image = image_url(article, siteurl)
            mime = mimetypes.guess_type(str(image))[0] or "application/octet-stream"
            local = os.path.join(content_path, str(image))
            length = os.path.getsize(local) if os.path.isfile(local) else 0
            fe.enclosure(url_of_image, str(length), mime)
            fe.media.content({"url": url_of_image, "type": mime, "medium": "image"})
    rss_url = f"{siteurl}/{rss_path}"
    atom_url = f"{siteurl}/{atom_path}"
    fg.link(href=atom_url, rel="self", replace=False)
    atom = fg.atom_str(pretty=True)
    # RSS's atom:link rel=self names the RSS file; feedgen takes the channel <link> from the last.
    fg.link(
        [{"href": rss_url, "rel": "self"}, {"href": html_url, "rel": "alternate"}], replace=True
    )
    fg.description(settings.get("SITESUBTITLE") or settings.get("SITENAME", ""))
    rss = fg.rss_str(pretty=True)
    return rss, atom


def _write(output_path: str, relative: str, data: bytes) -> None:
    path = os.path.join(output_path, relative)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as handle:
        handle.write(data)


def write_feeds(generator) -> list[str]:
    """Write all feeds for an ArticlesGenerator whose context is generated; return their paths."""
    settings = generator.settings
    conf = feed_settings(settings)
    hub = websub.hub_url(settings)
    siteurl = settings["SITEURL"].rstrip("/")
    articles = published(generator.articles)
    written = []
    cache: dict = {}
    jobs = [
        (
            settings.get("SITENAME", ""),
            conf["all_rss"],
            conf["all_atom"],
            conf["all_json"],
            siteurl + "/",
            articles,
        )
    ]
    for category, _ in generator.categories:
        in_category = [a for a in articles if a.category == category]
        if in_category:
            jobs.append(
                (
                    f"{settings.get('SITENAME', '')}: {category}",
                    conf["category_rss"].format(slug=category.slug),
                    conf["category_atom"].format(slug=category.slug),
                    conf["category_json"].format(slug=category.slug),
                    urljoin(siteurl + "/", category.url),
                    in_category,
                )
            )
    for title, rss_path, atom_path, json_path, html_url, items in jobs:
        rss, atom = build_feed(
            items[: conf["max_items"]],
            settings,
            title=title,
            rss_path=rss_path,
            atom_path=atom_path,
            html_url=html_url,
            content_path=generator.path,
            cache=cache,
            hub=hub,
        )
        data = build_json_feed(
            items[: conf["max_items"]],
            settings,
            title=title,
            json_url=f"{siteurl}/{json_path}",
            html_url=html_url,
            cache=cache,
            hub=hub,
        )
        _write(generator.output_path, rss_path, rss)
        _write(generator.output_path, atom_path, atom)
        _write(generator.output_path, json_path, data)
        written += [rss_path, atom_path, json_path]
    document = {
        "version": feed_contract.TOPICS_VERSION,
        "site": siteurl,
        "topics": topic_choices(generator),
    }
    _write(generator.output_path, feed_contract.TOPICS_JSON,
           (json.dumps(document, ensure_ascii=False, indent=1) + "\n").encode("utf-8"))  # fmt: skip
    return written + [feed_contract.TOPICS_JSON]


def topic_choices(generator) -> list[dict]:
    """The topics a reader may choose: the published articles' categories, in the author's
    order and names, plus "videos" when the site has a video channel."""
    settings = generator.settings
    categories = {}
    for article in published(generator.articles):
        categories.setdefault(article.category.slug, str(article.category))
    return feed_contract.topic_list(
        categories.items(),
        settings.get("NEWSLETTER_TOPICS") or {},
        videos=bool(settings.get("VIDEO_CHANNEL_FEED_URL")),
    )


def _topics_for_templates(generator) -> None:
    generator.context["NEWSLETTER_TOPIC_CHOICES"] = topic_choices(generator)


def _check(pelican) -> None:
    # Complete the setting with defaults so templates can link every feed; a bad hub fails early.
    pelican.settings["FEEDS"] = feed_settings(pelican.settings)
    websub.hub_url(pelican.settings)


def _write_after_articles(generator, writer) -> None:
    write_feeds(generator)


def register():
    signals.initialized.connect(_check)
    signals.article_writer_finalized.connect(_write_after_articles)
    signals.article_generator_finalized.connect(_topics_for_templates)
    pelican_seam.feeds_wanted.connect(write_feeds)  # `invoke feed`: blog.build.build_feeds
