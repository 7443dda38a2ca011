"""RSS 2.0 and Atom feeds made with feedgen, written at every build.

Contract: after Pelican writes the articles, `write_feeds(generator)` writes one RSS and one Atom
feed for all published articles and one of each per category, at the paths in the FEEDS setting.
Each entry carries the full HTML with every URL made absolute, the summary, a stable guid built
from the article's `Id` metadata (never its URL), the author, categories and tags, the dek as
`<st:subtitle>`, and the image as an enclosure and media:content. Entries are newest first, at
most `max_items`; the feed's own date is the newest entry's, so rebuilding unchanged content
writes byte-identical files. Drafts, hidden and future-dated articles are never included. An
article with `Announce: no` carries `<category domain="announce">no</category>` so the
newsletter can skip it. A plugin may give an article `feed_html`, {id: HTML}: each `<figure
id="...">` of the article with such an id is that HTML in the feeds (plugins/video_embeds: the
video facade becomes a plain linked thumbnail, no script or button).
"""

from __future__ import annotations

import mimetypes
import os
import re
from datetime import UTC, datetime
from urllib.parse import urljoin

from feedgen.ext.base import BaseEntryExtension, BaseExtension
from feedgen.feed import FeedGenerator
from feedgen.util import xml_elem
from pelican import signals

from blog import feed_contract, listing

DEFAULTS = {
    "max_items": 20,
    "all_rss": feed_contract.ALL_RSS,
    "all_atom": feed_contract.ALL_ATOM,
    "category_rss": "feeds/{slug}.rss.xml",
    "category_atom": "feeds/{slug}.atom.xml",
}
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
NS = feed_contract.NAMESPACE  # our own elements; feedparser shows them as st_*
URL_ATTR = re.compile(r"""(\s(?:href|src|poster|cite)\s*=\s*)(["'])(.*?)\2""", re.I | re.S)
SRCSET_ATTR = re.compile(r"""(\ssrcset\s*=\s*)(["'])(.*?)\2""", re.I | re.S)


class ArticleExtension(BaseExtension):
    def extend_ns(self):
        return {feed_contract.PREFIX: NS}


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


class FeedSettingsError(Exception):
    """The FEEDS setting is malformed."""


def feed_settings(settings: dict) -> dict:
    given = settings.get("FEEDS", {}) or {}
    unknown = set(given) - set(DEFAULTS)
    if unknown:
        raise FeedSettingsError(
            f"FEEDS: unknown key(s) {', '.join(sorted(unknown))}; use {', '.join(DEFAULTS)}"
        )
    conf = {**DEFAULTS, **given}
    if not isinstance(conf["max_items"], int) or conf["max_items"] < 1:
        raise FeedSettingsError(
            f"FEEDS['max_items'] must be a positive integer, not {conf['max_items']!r}"
        )
    if not settings.get("SITEURL", "").startswith(("http://", "https://")):
        raise FeedSettingsError(
            f"SITEURL must be an absolute http(s) URL for feeds, not {settings.get('SITEURL')!r}"
        )
    return conf


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


def build_feed(
    articles, settings, *, title, rss_path, atom_path, html_url, content_path, cache=None
):
    siteurl = settings["SITEURL"].rstrip("/")
    fg = FeedGenerator()
    fg.load_extension("dc")
    fg.load_extension("media")
    fg.register_extension("st", ArticleExtension, ArticleEntryExtension)
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
        for tag in getattr(article, "tags", []):
            fe.category(term=str(tag), label=str(tag))
        if feed_contract.opts_out(getattr(article, "announce", "yes")):
            fe.category(term="no", scheme=feed_contract.ANNOUNCE_DOMAIN)
        image = getattr(article, "image", None)
        if image:
            image_url = urljoin(siteurl + "/", str(image))
            mime = mimetypes.guess_type(str(image))[0] or "application/octet-stream"
            local = os.path.join(content_path, str(image))
            length = os.path.getsize(local) if os.path.isfile(local) else 0
            fe.enclosure(image_url, str(length), mime)
            fe.media.content({"url": image_url, "type": mime, "medium": "image"})
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
    siteurl = settings["SITEURL"].rstrip("/")
    articles = published(generator.articles)
    written = []
    cache: dict = {}
    jobs = [
        (settings.get("SITENAME", ""), conf["all_rss"], conf["all_atom"], siteurl + "/", articles)
    ]
    for category, _ in generator.categories:
        in_category = [a for a in articles if a.category == category]
        if in_category:
            jobs.append(
                (
                    f"{settings.get('SITENAME', '')}: {category}",
                    conf["category_rss"].format(slug=category.slug),
                    conf["category_atom"].format(slug=category.slug),
                    urljoin(siteurl + "/", category.url),
                    in_category,
                )
            )
    for title, rss_path, atom_path, html_url, items in jobs:
        rss, atom = build_feed(
            items[: conf["max_items"]],
            settings,
            title=title,
            rss_path=rss_path,
            atom_path=atom_path,
            html_url=html_url,
            content_path=generator.path,
            cache=cache,
        )
        _write(generator.output_path, rss_path, rss)
        _write(generator.output_path, atom_path, atom)
        written += [rss_path, atom_path]
    return written


def _check(pelican) -> None:
    # Complete the setting with defaults so templates can link every feed.
    pelican.settings["FEEDS"] = feed_settings(pelican.settings)


def _write_after_articles(generator, writer) -> None:
    write_feeds(generator)


def register():
    signals.initialized.connect(_check)
    signals.article_writer_finalized.connect(_write_after_articles)
