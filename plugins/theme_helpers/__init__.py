"""Template helpers for our theme: absolute URLs, share links, author boxes and JSON-LD.

Contract: this plugin adds Jinja filters (`abs_url`, `urlquote`, `plain`, `isodate`,
`reading_time`) and globals (`share_links`, `author_info`, `article_jsonld`, `summary_text`,
`image_size`, `icon`, `card`) to each generator's Jinja environment, and on `initialized`
checks the AUTHORS_INFO and SHARE_NETWORKS settings, failing with a message that names the
setting. Everything is computed at build time; the pages need no script to show any of it.
What several pages use is made once per build: a summary is rendered once, by the reader; its
plain text once per article (`summary_text`: the meta description, the share texts, the
JSON-LD); an article's card once for every list that shows it (`card`); each icon read once.
Other plugins add to an article's JSON-LD through `article.structured_data`, a dict of
schema.org property -> list of objects (e.g. "hasPart": [ExercisePlan], "video": [VideoObject]).
"""

from __future__ import annotations

import functools
import json
import os
import re
import struct
from html import unescape
from urllib.parse import quote, urljoin

from jinja2 import pass_environment
from markupsafe import Markup
from pelican import signals

from blog import pelican_seam

# The article and page fields of ours this plugin and the theme's templates read (the dek,
# the hero image and its description); plugins/content_check refuses undeclared ones.
METADATA_FIELDS = ("Subtitle", "Image", "Image_alt")

SHARE_URLS = {
    # Each network's documented share endpoint; values are percent-encoded with urlquote.
    "facebook": ("Facebook", "https://www.facebook.com/sharer/sharer.php?u={url}"),
    "twitter": ("X (Twitter)", "https://twitter.com/intent/tweet?url={url}&text={title}"),
    "linkedin": ("LinkedIn", "https://www.linkedin.com/sharing/share-offsite/?url={url}"),
    "pinterest": (
        "Pinterest",
        "https://www.pinterest.com/pin/create/button/?url={url}&media={image}&description={text}",
    ),
    "bluesky": ("Bluesky", "https://bsky.app/intent/compose?text={post}"),
    # Mastodon has no central server: our own page (share_mastodon.html, written by the build
    # when "mastodon" is in SHARE_NETWORKS) asks for the reader's server, then opens its /share.
    "mastodon": ("Mastodon", "{mastodon_page}?text={post}"),
}
MASTODON_PAGE = "share/mastodon/"
AUTHOR_FIELDS = {"job_title", "bio", "photo", "links"}


class SettingsError(Exception):
    """A theme setting has the wrong shape."""


def urlquote(value) -> str:
    """Percent-encode everything but unreserved characters (for a query-string value)."""
    return quote(str(value), safe="")


def plain(html) -> str:
    """HTML (a summary, a title) to plain text, for meta tags and share texts."""
    text = str(html)
    if "<" not in text and "&" not in text:  # most titles: nothing to strip or unescape
        return " ".join(text.split())
    return " ".join(unescape(Markup(text).striptags()).split())


_FIGURES = re.compile(r"<figure\b.*?</figure>", re.S)


def summary_text(content) -> str:
    """The plain text of an article's or page's summary, derived once per article and reused by
    the meta description, the share texts and the JSON-LD. Figures are not prose: a video
    facade's title and caption near the top stay out of it."""
    cached = content.__dict__.get("_summary_text")
    if cached is None:
        summary = str(content.summary)
        summary = _FIGURES.sub(" ", summary) if "<figure" in summary else summary
        cached = content.__dict__["_summary_text"] = plain(summary)
    return cached


def isodate(value) -> str:
    return value.isoformat(timespec="seconds")


_TAGS_AND_COMMENTS = re.compile(r"<!--.*?-->|<[^>]*>", re.S)


def word_count(html) -> int:
    """The words of an HTML text, as plain() would split them, in one regex pass."""
    text = _TAGS_AND_COMMENTS.sub("", str(html))
    return len((unescape(text) if "&" in text else text).split())


def reading_time(html, words_per_minute: int = 230) -> int:
    return max(1, round(word_count(html) / words_per_minute))


@functools.cache
def _image_size(path: str):
    try:
        with open(path, "rb") as handle:
            head = handle.read(4096)
    except OSError:
        return None
    if head[:8] == b"\x89PNG\r\n\x1a\n":
        return struct.unpack(">II", head[16:24])
    if head[:6] in (b"GIF87a", b"GIF89a"):
        return struct.unpack("<HH", head[6:10])
    match = re.search(rb'<svg[^>]*?\swidth="(\d+)"[^>]*?\sheight="(\d+)"', head)
    return (int(match[1]), int(match[2])) if match else None


def make_helpers(settings: dict) -> dict:
    siteurl = settings.get("SITEURL", "").rstrip("/")

    @functools.lru_cache(maxsize=65536)
    def _join(path: str) -> str:
        return urljoin(siteurl + "/", path)

    def abs_url(path) -> str:
        """A site path ('2026/slug/', 'images/x.png') or URL made absolute against SITEURL."""
        return _join(str(path or ""))

    def author_info(author) -> dict:
        name = str(author)
        info = dict(settings.get("AUTHORS_INFO", {}).get(name, {}))
        info.setdefault("job_title", "")
        info.setdefault("bio", "")
        info.setdefault("links", [])
        info["name"] = name
        info["monogram"] = "".join(part[0] for part in name.split()[:2]).upper()
        return info

    def share_links(article) -> list[dict]:
        url = abs_url(article.url)
        # The title as the page shows it: Pelican keeps metadata titles as text, which the
        # templates escape, so "<script>" in a title is words to share, not a tag to strip.
        title = " ".join(str(article.title).split())
        subtitle = getattr(article, "subtitle", "")
        text = (plain(subtitle) if subtitle else summary_text(article)) or title
        image = abs_url(article.image) if getattr(article, "image", None) else ""
        values = {
            "url": urlquote(url),
            "title": urlquote(title),
            "text": urlquote(f"{title}: {text}" if text != title else title),
            "image": urlquote(image),
            "post": urlquote(f"{title} {url}"),
            "mastodon_page": abs_url(settings.get("SHARE_MASTODON_URL", MASTODON_PAGE)),
        }
        links = []
        for network in settings.get("SHARE_NETWORKS", []):
            label, template = SHARE_URLS[network]
            links.append(
                {
                    "network": network,
                    "label": label,
                    "name": f"Share on {label}",
                    "href": template.format(**values),
                }
            )
        links.append(
            {
                "network": "email",
                "label": "Email",
                "name": "Share by email",
                "href": f"mailto:?subject={values['title']}&body={urlquote(text + chr(10) + url)}",
            }
        )
        return links

    def article_jsonld(article) -> Markup:
        author = author_info(article.author)
        data = {
            "@context": "https://schema.org",
            "@type": "BlogPosting",
            "headline": plain(article.title),
            "description": summary_text(article),
            "datePublished": isodate(article.date),
            "dateModified": isodate(getattr(article, "modified", None) or article.date),
            "mainEntityOfPage": abs_url(article.url),
            "url": abs_url(article.url),
            "author": {
                "@type": "Person",
                "name": author["name"],
                "jobTitle": author["job_title"],
                "url": abs_url(article.author.url),
            },
            "publisher": {"@type": "Person", "name": author["name"]},
            "keywords": [str(tag) for tag in getattr(article, "tags", [])],
            "articleSection": str(article.category),
        }
        if getattr(article, "image", None):
            data["image"] = abs_url(article.image)
        # What plugins found in the text (exercise plans, videos): {property: [objects]}.
        for prop, objects in getattr(article, "structured_data", {}).items():
            data[prop] = objects[0] if len(objects) == 1 else list(objects)
        text = json.dumps(data, ensure_ascii=False, indent=None)
        # Safe inside <script>: no '</script>' or '<!--' can be formed.
        text = text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
        return Markup(text)

    cards: dict[int, Markup] = {}

    @pass_environment
    def card(env, item) -> Markup:
        """An article's card (partials/card.html), rendered once per build: the index, tag,
        category and author pages that list the article reuse it."""
        found = cards.get(id(item))  # articles live as long as the build: their ids are theirs
        if found is None:
            found = Markup(env.get_template("partials/card.html").render(item=item))
            cards[id(item)] = found
        return found

    @functools.cache
    def icon(name: str) -> Markup:
        """An SVG icon of the theme (templates/partials/icons/NAME.svg), inline, read once. Not in
        partials/stay_tuned.html, which base.html includes: the newsletter's endpoint renders
        base.html in its own Jinja environment, without our globals."""
        path = os.path.join(settings.get("THEME", ""), "templates", "partials", "icons", name)
        with open(f"{path}.svg", encoding="utf-8") as handle:
            text = handle.read()
        return Markup(text[:-1] if text.endswith("\n") else text)  # as {% include %} wrote it

    def image_size(path):
        """(width, height) of a PNG, GIF or SVG under content/, or None (reserves space)."""
        return _image_size(os.path.join(settings.get("PATH", os.curdir), str(path)))

    return {
        "filters": {
            "abs_url": abs_url,
            "urlquote": urlquote,
            "plain": plain,
            "isodate": isodate,
            "reading_time": reading_time,
        },
        "globals": {
            "image_size": image_size,
            "share_links": share_links,
            "author_info": author_info,
            "article_jsonld": article_jsonld,
            "summary_text": summary_text,
            "icon": icon,
            "card": card,
        },
    }


def check_settings(settings: dict) -> None:
    for network in settings.get("SHARE_NETWORKS", []):
        if network not in SHARE_URLS:
            raise SettingsError(
                f"SHARE_NETWORKS: {network!r} is unknown; use some of {', '.join(SHARE_URLS)}"
            )
    authors = settings.get("AUTHORS_INFO", {})
    if not isinstance(authors, dict):
        raise SettingsError("AUTHORS_INFO must be a dict of author name -> details")
    for name, info in authors.items():
        unknown = set(info) - AUTHOR_FIELDS
        if unknown:
            raise SettingsError(
                f"AUTHORS_INFO[{name!r}]: unknown key(s) {', '.join(sorted(unknown))}; "
                f"use {', '.join(sorted(AUTHOR_FIELDS))}"
            )


def _check(pelican) -> None:
    check_settings(pelican.settings)
    add_mastodon_page(pelican.settings)


def add_mastodon_page(settings: dict) -> None:
    """With "mastodon" in SHARE_NETWORKS, the build writes the page that asks for the reader's
    server (templates/share_mastodon.html) as a direct template, at SHARE_MASTODON_SAVE_AS."""
    if "mastodon" not in settings.get("SHARE_NETWORKS", []):
        return
    settings.setdefault("SHARE_MASTODON_URL", MASTODON_PAGE)
    settings.setdefault("SHARE_MASTODON_SAVE_AS", MASTODON_PAGE + "index.html")
    templates = list(settings.get("DIRECT_TEMPLATES", []))
    if "share_mastodon" not in templates:
        settings["DIRECT_TEMPLATES"] = [*templates, "share_mastodon"]


def _install(generator) -> None:
    """Our filters and globals, on each generator's Jinja environment. Not in the settings'
    JINJA_FILTERS: the settings must stay picklable for Pelican's content cache (`invoke serve`),
    and these helpers are closures over them."""
    helpers = make_helpers(generator.settings)
    generator.env.filters.update(helpers["filters"])
    generator.env.globals.update(helpers["globals"])


def freeze_urls(generator) -> None:
    """Compute each article's and page's url and save_as once (Pelican rebuilds them on every
    access, with strftime; our templates ask for them often). Runs after Pelican has settled
    each status (a future date turns an article into a draft after it is created)."""
    for name in (
        "articles",
        "translations",
        "drafts",
        "drafts_translations",
        "hidden_articles",
        "hidden_translations",
        "pages",
        "hidden_pages",
        "draft_pages",
    ):
        for content in getattr(generator, name, []) or []:
            pelican_seam.freeze_urls(content)


def register():
    signals.initialized.connect(_check)
    signals.generator_init.connect(_install)
    signals.article_generator_finalized.connect(freeze_urls)
    signals.page_generator_finalized.connect(freeze_urls)
