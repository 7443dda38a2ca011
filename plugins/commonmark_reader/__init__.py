"""The `.md` reader: CommonMark on pulldown-cmark (pyromark), with the blocks our theme styles.

Contract: `register()` replaces Pelican's Markdown reader (Python-Markdown) for `.md`,
`.markdown`, `.mkd` and `.mdown` files with `CommonMarkReader`. It reads Pelican's metadata
header exactly as Python-Markdown's `meta` extension did (the `Key: value` lines up to the first
blank line, indented continuation lines, an optional `---` line before and `---`/`...` after),
processes each field with Pelican's own metadata processors, and converts the body and each
formatted field (`Summary`) to HTML once, with `render()`.

`render()` is CommonMark plus: tables, footnotes, strikethrough, task lists, definition lists,
smart punctuation (straight quotes, `--`, `---` and `...` become typographic), heading
attributes (`## Title {#id .class}`), raw HTML kept as written (the author's own, trusted), and
fenced code keeping its language as `class="language-xxx"` (an ```` ```exercise ```` block is
`<pre><code class="language-exercise">`). Then, in a few string passes over pulldown-cmark's
output:

- Pelican's links to other content keep their braces (`[x]({filename}/articles/y.md)`;
  pulldown-cmark writes `%7Bfilename%7D`), so Pelican resolves them as before;
- every heading gets a stable `id`: its text, lower-cased, punctuation dropped, spaces as
  hyphens (`## So what does it do?` -> `id="so-what-does-it-do"`); a repeat, an id already in
  the document or one the theme uses on every page (`comments`, `main`, ...) gets `-1`, `-2`...
- GitHub alerts become the theme's fact box: `> [!NOTE]` -> `<aside class="fact-box">`, and
  `[!TIP]`, `[!IMPORTANT]`, `[!WARNING]`, `[!CAUTION]` -> `<aside class="fact-box fact-box-tip">`
  and so on;
- footnotes are numbered references `<sup id="fnref-1"><a class="footnote-ref" href="#fn-1">`
  and one `<div class="footnote">` list at the end with links back: Python-Markdown's structure,
  with ids made of the numbers (a label may hold spaces, which an id may not).

A file without a `Summary` (or with a blank one) gets one here, from its body: its first
paragraph, whole (the first top-level `<p>` with text), after whatever stands alone before it
as a figure (a `<figure>`, an image, or a paragraph holding only a link or a URL, such as a
video that plugins/video_embeds makes a facade, with the length written after it). Other blocks
before it (a heading, a list) are left out. A body with no such paragraph gets none: Pelican
then cuts one from the text (SUMMARY_MAX_LENGTH words).
"""

from __future__ import annotations

import logging
import os
import re
import sys
import unicodedata
from html import unescape

import pyromark
from pelican import signals
from pelican.readers import DUPLICATES_DEFINITIONS_ALLOWED, BaseReader, MarkdownReader
from pelican.utils import pelican_open

_O = pyromark.Options
OPTIONS = (
    _O.ENABLE_TABLES
    | _O.ENABLE_FOOTNOTES
    | _O.ENABLE_STRIKETHROUGH
    | _O.ENABLE_TASKLISTS
    | _O.ENABLE_SMART_PUNCTUATION
    | _O.ENABLE_HEADING_ATTRIBUTES
    | _O.ENABLE_GFM
    | _O.ENABLE_DEFINITION_LIST
)
_PARSER = pyromark.Markdown(options=OPTIONS)
log = logging.getLogger(__name__)

# Ids the theme puts on every page: a heading must not take one (an id is unique in a page).
THEME_IDS = frozenset(
    {"main", "comments", "comments-title", "isso-thread", "share-title", "search"}
    | {"share-mastodon", "share-mastodon-nojs", "mastodon-server", "mastodon-server-help",
       "mastodon-text", "mastodon-status"}  # share_mastodon.html
    | {f"{name}-{form}" for name in ("stay-tuned", "stay-tuned-title", "email", "consent",
                                     "website", "frequency-each", "frequency-weekly")
       for form in ("article", "footer")}
)  # fmt: skip
# The topics' checkboxes (subscribe_choices.html): one id per topic slug and form.
THEME_ID_PATTERN = re.compile(r"topic-.+-(article|footer)")
ALERTS = {
    "note": '<aside class="fact-box">',
    "tip": '<aside class="fact-box fact-box-tip">',
    "important": '<aside class="fact-box fact-box-important">',
    "warning": '<aside class="fact-box fact-box-warning">',
    "caution": '<aside class="fact-box fact-box-caution">',
}

# The metadata header, as Python-Markdown's meta extension reads it.
META_RE = re.compile(r"^[ ]{0,3}(?P<key>[A-Za-z0-9_-]+):\s*(?P<value>.*)")
META_MORE_RE = re.compile(r"^[ ]{4,}(?P<value>.*)")
BEGIN_RE = re.compile(r"^-{3}(\s.*)?")
END_RE = re.compile(r"^(-{3}|\.{3})(\s.*)?")

_HEADING = re.compile(r"<h([1-6])>(.*?)</h\1>", re.S)
_ID = re.compile(r"""\sid\s*=\s*["']?([^"'\s>]+)""")
_TAG = re.compile(r"<[^>]*>")
_NOT_SLUG = re.compile(r"[^\w\- ]")
_ALERT = re.compile(r'<blockquote class="markdown-alert-(\w+)">')
_BLOCKQUOTE = re.compile(r"<blockquote[\s>]|</blockquote>")
_DIV = re.compile(r"<div[\s>]|</div>")
# pulldown-cmark percent-encodes the braces of Pelican's `{filename}` (and `|filename|`) links.
_INTRASITE = re.compile(r'="%7B(\w+)%7D|="%7C(\w+)%7C')
_FN_REF = re.compile(r'<sup class="footnote-reference"><a href="#([^"]*)">(\d+)</a></sup>')
_FN_DEF = re.compile(
    r'<div class="footnote-definition" id="([^"]*)">'
    r'<sup class="footnote-definition-label">(\d+)</sup>\n?'
)


def split_metadata(text: str) -> tuple[dict[str, list[str]], str]:
    """(metadata as {lower-case key: [values]}, the Markdown body) of a source file, reading the
    header as Python-Markdown's meta extension does."""
    if "\r" in text:
        text = text.replace("\r\n", "\n").replace("\r", "\n")
    meta: dict[str, list[str]] = {}
    key = None
    position = 0  # the next line's offset
    first = True
    while position < len(text):
        end = text.find("\n", position)
        end = len(text) if end < 0 else end
        line = text[position:end].expandtabs(4)
        if first and BEGIN_RE.match(line):
            first = False
            position = end + 1
            continue
        first = False
        if line.strip() == "" or END_RE.match(line):
            position = end + 1
            break
        match = META_RE.match(line)
        if match:
            key = sys.intern(match["key"].lower().strip())  # one "title" for all articles
            meta.setdefault(key, []).append(match["value"].strip())
        else:
            more = META_MORE_RE.match(line)
            if not (more and key):
                break
            meta[key].append(more["value"].strip())
        position = end + 1
    return meta, text[position:]


def slugify(html: str) -> str:
    """A heading's id from its HTML: the text, lower-cased, punctuation out, spaces as hyphens."""
    text = unicodedata.normalize("NFKC", unescape(_TAG.sub("", html))).strip().lower()
    return "-".join(_NOT_SLUG.sub("", text).split()) or "section"


def _add_heading_ids(html: str) -> str:
    taken = set(THEME_IDS)
    if "id=" in html:
        taken.update(_ID.findall(html))

    def with_id(match):
        base = slugify(match[2])
        slug, n = base, 0
        while slug in taken or THEME_ID_PATTERN.fullmatch(slug):
            n += 1
            slug = f"{base}-{n}"
        taken.add(slug)
        return f'<h{match[1]} id="{slug}">{match[2]}</h{match[1]}>'

    return _HEADING.sub(with_id, html)


def _element_end(html: str, start: int, pattern: re.Pattern) -> tuple[int, int]:
    """(start, end) of the closing tag that matches the element opened just before `start`."""
    depth = 1
    for match in pattern.finditer(html, start):
        depth += -1 if match[0].startswith("</") else 1
        if depth == 0:
            return match.start(), match.end()
    return len(html), len(html)  # unbalanced raw HTML: close at the end


def _alerts_to_fact_boxes(html: str) -> str:
    out, position = [], 0
    for match in _ALERT.finditer(html):
        if match.start() < position:  # an alert inside an alert: handled by the recursion
            continue
        close_start, close_end = _element_end(html, match.end(), _BLOCKQUOTE)
        inner = _alerts_to_fact_boxes(html[match.end() : close_start])
        opening = ALERTS.get(match[1].lower(), ALERTS["note"])
        out += [html[position : match.start()], opening, inner, "</aside>"]
        position = close_end
    out.append(html[position:])
    return "".join(out)


def _footnotes(html: str) -> str:
    definitions: dict[int, str] = {}
    body, position = [], 0
    for match in _FN_DEF.finditer(html):
        if match.start() < position:
            continue
        close_start, close_end = _element_end(html, match.end(), _DIV)
        definitions[int(match[2])] = html[match.end() : close_start].strip()
        body.append(html[position : match.start()])
        position = close_end + (html.startswith("\n", close_end))
    body.append(html[position:])
    html = "".join(body)

    references: dict[int, list[str]] = {}

    def reference(match):
        number = int(match[2])
        refs = references.setdefault(number, [])
        ref_id = f"fnref-{number}" + (f"-{len(refs) + 1}" if refs else "")
        refs.append(ref_id)
        return f'<sup id="{ref_id}"><a class="footnote-ref" href="#fn-{number}">{number}</a></sup>'

    html = _FN_REF.sub(reference, html)
    if not definitions:
        return html
    items = []
    for number in sorted(definitions):
        note = definitions[number]
        backs = "".join(
            f'<a class="footnote-backref" href="#{ref_id}" '
            f'title="Jump back to footnote {number} in the text">&#8617;</a>'
            for ref_id in references.get(number, [])
        )
        if backs:
            backs = "&#160;" + backs
            if note.endswith("</p>"):
                note = note[: -len("</p>")] + backs + "</p>"
            else:
                note = f"{note}\n<p>{backs}</p>"
        value = "" if number == len(items) + 1 else f' value="{number}"'
        items.append(f'<li id="fn-{number}"{value}>\n{note}\n</li>')
    notes = "\n".join(items)
    return f'{html.rstrip()}\n<div class="footnote">\n<hr>\n<ol>\n{notes}\n</ol>\n</div>'


_BLOCK_TAG = re.compile(r"<!--.*?-->|<(/?)([A-Za-z][A-Za-z0-9-]*)\b[^>]*?(/?)>", re.S)
_VOID = frozenset("area base br col embed hr img input link meta source track wbr".split())
_FIGURE_TAGS = frozenset({"figure", "picture", "img", "video", "iframe"})
# a paragraph that is a figure, not text: only a link, an image or a URL (and a length, 4:12)
_FIGURE_PARAGRAPH = re.compile(
    r"<p>\s*(?:<a\s[^>]*>[^<]*(?:<img\s[^>]*>[^<]*)?</a>|<img\s[^>]*>|https?://[^\s<]+)"
    r"(?:\s+\(?[0-9]{1,2}(?::[0-5][0-9]){1,2}\)?)?\s*</p>",
    re.S,
)


def _top_level_blocks(html: str):
    """(tag name, HTML) of each top-level element of `html`, in order; None if unbalanced."""
    blocks, depth, start, name = [], 0, 0, ""
    for match in _BLOCK_TAG.finditer(html):
        closing, tag = match[1], (match[2] or "").lower()
        if not tag or (not closing and (tag in _VOID or match[3])):
            if depth == 0 and tag:
                blocks.append((tag, match[0]))
            continue
        if not closing:
            if depth == 0:
                start, name = match.start(), tag
            depth += 1
        else:
            depth -= 1
            if depth < 0:
                return None
            if depth == 0:
                blocks.append((name, html[start : match.end()]))
    return blocks if depth == 0 else None


def first_paragraph(html: str) -> str | None:
    """The summary of a body without one (see the module's docstring): the figures that come
    before its first paragraph, then that paragraph; None when it has no paragraph of text."""
    kept = []
    for tag, block in _top_level_blocks(html) or ():
        if tag in _FIGURE_TAGS or (tag == "p" and _FIGURE_PARAGRAPH.fullmatch(block)):
            kept.append(block)
        elif tag == "p" and _TAG.sub("", block).strip():
            return "\n".join([*kept, block])
    return None


def render(markdown: str) -> str:
    """Markdown to HTML (see the module's docstring), without a trailing newline."""
    html = _PARSER.html(markdown)
    if '="%7' in html:
        html = _INTRASITE.sub(lambda m: f'="{{{m[1]}}}' if m[1] else f'="|{m[2]}|', html)
    if "<h" in html:
        html = _add_heading_ids(html)
    if "markdown-alert-" in html:
        html = _alerts_to_fact_boxes(html)
    if "footnote-" in html:
        html = _footnotes(html)
    return html.rstrip("\n")


class CommonMarkReader(MarkdownReader):
    """Pelican's reader for Markdown files, on pulldown-cmark. A subclass of Pelican's own
    Markdown reader only so that Pelican does not pick it up by itself (Pelican registers the
    direct subclasses of BaseReader): nothing of Python-Markdown is used."""

    enabled = True
    file_extensions = MarkdownReader.file_extensions

    def __init__(self, settings):
        BaseReader.__init__(self, settings)  # not MarkdownReader's: no MARKDOWN setting here

    def read(self, source_path):
        with pelican_open(source_path) as text:
            self.source_text = text  # for checks on the source (plugins/content_check)
            meta, body = split_metadata(text)
        html = render(body)
        metadata = self.parse_metadata(meta, source_path)
        if not str(metadata.get("summary", "")).strip():  # none, or `Summary:` left blank
            metadata.pop("summary", None)
            summary = first_paragraph(html)
            if summary is not None:
                metadata["summary"] = summary
        return html, metadata

    def parse_metadata(self, meta: dict[str, list[str]], source_path: str) -> dict:
        formatted_fields = self.settings["FORMATTED_FIELDS"]
        output = {}
        for name, values in meta.items():
            if name in formatted_fields:
                output[name] = self.process_metadata(name, render("\n".join(values)))
            elif len(values) > 1 and not DUPLICATES_DEFINITIONS_ALLOWED.get(name, True):
                log.warning(
                    "Duplicate definition of `%s` for %s. Using first one.",
                    name,
                    os.path.relpath(source_path),
                )
                output[name] = self.process_metadata(name, values[0])
            elif len(values) > 1:
                output[name] = self.process_metadata(name, values)
            else:
                output[name] = self.process_metadata(name, values[0])
        return output


def _use_commonmark(readers) -> None:
    for ext in CommonMarkReader.file_extensions:
        readers.reader_classes[ext] = CommonMarkReader


def register():
    signals.readers_init.connect(_use_commonmark)
