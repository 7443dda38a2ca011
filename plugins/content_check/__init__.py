"""Fail the build on broken content, naming the file and the field.

Contract: every Markdown file under content/ is read by the Markdown reader in place (our
CommonMark reader, `plugins/commonmark_reader`, which must be listed before this plugin) with
these checks added: it refuses a file with a field nobody declared (a typo such as `Satus:`,
named with "did you mean 'Status'?"), a missing Title, an unparseable Date, a Status other
than `published`, `draft` or `hidden`, an Image that does not exist or (for articles) no
stable `Id`, and a file that uses Python-Markdown-only syntax (`markdown="1"`, `{: .class}`
attribute lists, `[TOC]`, `*[ABBR]:` abbreviations) outside code, which CommonMark would print
as text. Pelican itself only logs
such files and skips them; this plugin collects every problem and, once all files are read,
raises `ContentError` listing each one as "path: field 'name': what is wrong" or
"path:line: what is wrong and how to write it in CommonMark", so `pelican` exits non-zero before
anything is written. Other plugins add their own problems with `report(source_path, message)`.

The known fields are Pelican's own (`PELICAN_FIELDS`, and any in the FORMATTED_FIELDS,
ARTICLE_ORDER_BY and PAGE_ORDER_BY settings) and those the loaded plugins declare: each plugin
that reads a field of its own names it in a module-level `METADATA_FIELDS` tuple, collected on
Pelican's `initialized` signal from the Pelican object's plugins. A blank `Summary:` counts as
no summary (the lists and feeds then show the first paragraph: plugins/commonmark_reader).
"""

from __future__ import annotations

import difflib
import functools
import os
import re
import uuid

import pyromark
from pelican import signals
from pelican.readers import MarkdownReader
from pelican.utils import SafeDatetime, get_date, pelican_open

from plugins.commonmark_reader import OPTIONS as READER_OPTIONS

ALLOWED_STATUSES = {"published", "draft", "hidden"}
# Pelican's own fields, as docs.getpelican.com (content.html#file-metadata) lists them.
PELICAN_FIELDS = (
    "Title", "Date", "Modified", "Tags", "Keywords", "Category", "Slug", "Author", "Authors",
    "Summary", "Lang", "Translation", "Status", "Template", "Save_as", "Url",
)  # fmt: skip
# The fields of ours this plugin reads: the article's identity, and the image it checks.
METADATA_FIELDS = ("Id", "Image")
_fields: dict[str, str] | None = None  # this build's known fields: {lower case: as written}
# Python-Markdown syntax that CommonMark prints as text (or ignores): what it is, and the
# CommonMark way to write it. Looked for outside code blocks and code spans only.
PYTHON_MARKDOWN_ONLY = [
    (
        re.compile(r"<[A-Za-z][^<>]*?\smarkdown\s*=\s*[\"']?(?:1|block|span)\b", re.S),
        "'markdown=\"1\"' is Python-Markdown syntax: CommonMark ignores it and prints the "
        "Markdown inside as text. Remove the attribute and leave a blank line after the opening "
        "tag and before the closing one, so the Markdown inside is read; for a fact box write "
        "'> [!NOTE]' and then each line of the box starting with '> '",
    ),
    (
        re.compile(r"\{:[^}\n]*\}"),
        "'{: ...}' attribute lists are Python-Markdown syntax: CommonMark prints them as text. "
        "On a heading write '## Title {#id .class}'; on any other block write its HTML element, "
        "e.g. '<p class=\"note\">...</p>'",
    ),
    (
        re.compile(r"^[ ]{0,3}\[TOC\][ \t]*$", re.M),
        "'[TOC]' is Python-Markdown syntax: CommonMark prints it as text. Headings carry ids "
        "('## How to train' is '#how-to-train'): write the contents as a list of links, e.g. "
        "'- [How to train](#how-to-train)'",
    ),
    (
        re.compile(r"^[ ]{0,3}\*\[[^\]\n]+\]:", re.M),
        "'*[ABBR]: ...' abbreviations are Python-Markdown syntax: CommonMark prints them as "
        "text. Write '<abbr title=\"what it stands for\">ABBR</abbr>' where it first appears",
    ),
]
_MARKERS = ("markdown", "{:", "[TOC]", "*[")  # in every match of the patterns above
_SUSPECT = re.compile("|".join(p.pattern for p, _ in PYTHON_MARKDOWN_ONLY), re.M | re.S)
_problems: dict[str, list[str]] = {}
_ISO_DATE = re.compile(r"\d{4}-\d{2}-\d{2}(?: \d{2}:\d{2}(?::\d{2})?)?\Z")


class ContentError(Exception):
    """Raised at the end of reading when some content file is broken."""


class MetadataError(ValueError):
    def __init__(self, field: str, message: str):
        super().__init__(f"field '{field}': {message}")
        self.field = field


class SyntaxProblem(ValueError):
    """Python-Markdown-only syntax, at a line of the file."""


def python_markdown_only(text: str) -> list[tuple[int, str]]:
    """(line, message) for each Python-Markdown-only construct in a Markdown file's text, outside
    code blocks and code spans; lines are 1-based, counted from the file's first line."""
    if not any(marker in text for marker in _MARKERS) or not _SUSPECT.search(text):
        return []  # the common case costs a few substring scans
    data = text.encode("utf-8")
    code = []  # byte ranges of code blocks and code spans
    start = None
    # parsed as our reader parses (its extensions): code spans and blocks found as it finds them
    for event, span in pyromark.events_with_range(text, options=READER_OPTIONS):
        if not isinstance(event, dict):
            continue
        if "Code" in event:
            code.append((span["start"], span["end"]))
        elif isinstance(event.get("Start"), dict) and "CodeBlock" in event["Start"]:
            start = span["start"]
        elif event.get("End") == "CodeBlock" and start is not None:
            code.append((start, span["end"]))
            start = None
    found = []
    for pattern, message in PYTHON_MARKDOWN_ONLY:
        for match in re.finditer(pattern.pattern.encode(), data, pattern.flags & ~re.U):
            if not any(a <= match.start() < b for a, b in code):
                found.append((data.count(b"\n", 0, match.start()) + 1, message))
    return sorted(found)


class ContentChecks:
    """Our checks, on top of a Markdown reader class (see `checked`): errors that name the file
    and the field, or the line."""

    def process_metadata(self, name, value):
        if _fields is not None and name not in _fields:
            self.__dict__.setdefault("unknown_fields", []).append(name)
        if name == "date" or name == "modified":
            try:
                if _ISO_DATE.match(value):  # the usual forms, without dateutil's slow parser
                    return SafeDatetime.fromisoformat(value)
                return get_date(value)
            except (ValueError, OverflowError):
                raise MetadataError(
                    name.capitalize(),
                    f"{value!r} is not a date; write it as YYYY-MM-DD or YYYY-MM-DD HH:MM",
                ) from None
        return super().process_metadata(name, value)

    def read(self, source_path):
        relative = os.path.relpath(source_path, self.settings.get("PATH", os.curdir))
        problems = []
        self.source_text = None
        self.unknown_fields = []
        try:
            content, metadata = super().read(source_path)
            if "summary" in metadata and not str(metadata["summary"]).strip():
                del metadata["summary"]  # `Summary:` left blank: none (another reader's)
            self.check_fields(relative, metadata)
        except MetadataError as error:
            problems.append(f"{relative}: {error}")
        problems[:0] = [f"{relative}: {unknown_field(name)}" for name in self.unknown_fields]
        text = self.source_text  # the text the reader read, if it says; else read it here
        if text is None:
            with pelican_open(source_path) as text:
                pass
        problems += [f"{relative}:{n}: {message}" for n, message in python_markdown_only(text)]
        for problem in problems:
            _record(source_path, problem)
        if problems:
            raise SyntaxProblem(problems[0])
        return content, metadata

    def check_fields(self, relative: str, metadata: dict) -> None:
        if not str(metadata.get("title", "")).strip():
            raise MetadataError("Title", "missing; add a line 'Title: ...' at the top of the file")
        status = metadata.get("status")
        if status is not None and status not in ALLOWED_STATUSES:
            close = difflib.get_close_matches(str(status), ALLOWED_STATUSES, n=1, cutoff=0.6)
            guess = f"did you mean '{close[0]}'? " if close else ""
            raise MetadataError(
                "Status",
                f"{status!r} is unknown; {guess}use one of {', '.join(sorted(ALLOWED_STATUSES))}",
            )
        image = metadata.get("image")
        if image:
            path = os.path.join(self.settings.get("PATH", os.curdir), str(image))
            if not os.path.isfile(path):
                raise MetadataError("Image", f"{image!r} does not exist under content/")
        is_article = any(
            relative.startswith(p.rstrip("/") + "/") for p in self.settings.get("ARTICLE_PATHS", [])
        )
        if is_article:
            if "date" not in metadata:
                raise MetadataError("Date", "missing; add a line 'Date: YYYY-MM-DD HH:MM'")
            given = str(metadata.get("id", "")).strip()
            try:
                uuid.UUID(given)
            except ValueError:
                problem = f"{given!r} is not a UUID" if given else "missing"
                raise MetadataError(
                    "Id",
                    f"{problem}; it is the article's permanent identity in feeds and emails. "
                    f"Add the line 'Id: {uuid.uuid4()}' and never change it",
                ) from None


def unknown_field(name: str) -> str:
    """What is wrong with a field nobody declared (`name` in lower case, as the reader keeps it)."""
    known = _fields or {}
    close = difflib.get_close_matches(name, known, n=1, cutoff=0.6)
    if close:
        return f"field '{name.capitalize()}': unknown; did you mean '{known[close[0]]}'?"
    return (
        f"field '{name.capitalize()}': unknown; the fields are "
        f"{', '.join(sorted(known.values()))} (see docs/writing.md)"
    )


def _collect_fields(pelican) -> None:
    """The fields this build knows: Pelican's, those its settings name, the plugins' own."""
    global _fields
    fields = {name.lower(): name for name in PELICAN_FIELDS}
    for plugin in getattr(pelican, "plugins", ()):
        for name in getattr(plugin, "METADATA_FIELDS", ()):
            fields.setdefault(name.lower(), name)
    settings = pelican.settings
    named = list(settings.get("FORMATTED_FIELDS", ()))
    for key in ("ARTICLE_ORDER_BY", "PAGE_ORDER_BY"):
        if isinstance(settings.get(key), str):
            named.append(settings[key].removeprefix("reversed-"))
    for name in named:
        if name != "basename":
            fields.setdefault(name.lower(), name.capitalize())
    _fields = fields


def _record(source_path: str, message: str) -> None:
    _problems.setdefault(os.path.abspath(source_path), []).append(message)


def report(source_path: str, message: str) -> None:
    """For other plugins (plugins/exercises): a problem in a content file, reported with ours
    before anything is written. Report from a `*_generator_finalized` receiver."""
    _record(source_path, message)


def _reset(pelican) -> None:
    _problems.clear()
    _collect_fields(pelican)


@functools.cache
def checked(reader_class: type) -> type:
    """The reader class with our checks on top (the same class for the same reader)."""
    if issubclass(reader_class, ContentChecks):
        return reader_class
    return type(f"Checked{reader_class.__name__}", (ContentChecks, reader_class), {})


def _use_checked_reader(readers) -> None:
    for ext in MarkdownReader.file_extensions:
        reader_class = readers.reader_classes.get(ext)
        if reader_class:
            readers.reader_classes[ext] = checked(reader_class)


def fail_on_problems(generators) -> None:
    failed = []
    for generator in generators:
        for path, value in generator.context.get("generated_content", {}).items():
            if value is None:
                failed.append(os.path.abspath(os.path.join(generator.path, path)))
    messages = []
    for path in sorted(set(failed) | set(_problems)):
        messages.extend(
            _problems.get(path)
            or [f"{os.path.relpath(path)}: could not be read (see the error above)"]
        )
    if messages:
        raise ContentError(
            f"{len(messages)} content problem(s), nothing was written:\n  " + "\n  ".join(messages)
        )


def register():
    signals.initialized.connect(_reset)
    signals.readers_init.connect(_use_checked_reader)
    signals.all_generators_finalized.connect(fail_on_problems)
