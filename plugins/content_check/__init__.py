"""Fail the build on broken content, naming the file and the field.

Contract: every Markdown file under content/ is read by `CheckedMarkdownReader`, which refuses a
file with a missing Title, an unparseable Date, an unknown Status, an Image that does not exist or
(for articles) no stable `Id`. Pelican itself only logs such files and skips them; this plugin
collects every problem and, once all files are read, raises `ContentError` listing each one as
"path: field 'name': what is wrong", so `pelican` exits non-zero before anything is written.
"""

from __future__ import annotations

import os
import uuid

from pelican import signals
from pelican.readers import MarkdownReader
from pelican.utils import get_date

ALLOWED_STATUSES = {"published", "draft", "hidden"}
_problems: dict[str, list[str]] = {}


class ContentError(Exception):
    """Raised at the end of reading when some content file is broken."""


class MetadataError(ValueError):
    def __init__(self, field: str, message: str):
        super().__init__(f"field '{field}': {message}")
        self.field = field


class CheckedMarkdownReader(MarkdownReader):
    """Pelican's Markdown reader, with errors that name the file and the field."""

    def process_metadata(self, name, value):
        if name == "date" or name == "modified":
            try:
                return get_date(value)
            except (ValueError, OverflowError):
                raise MetadataError(
                    name.capitalize(),
                    f"{value!r} is not a date; write it as YYYY-MM-DD or YYYY-MM-DD HH:MM",
                ) from None
        return super().process_metadata(name, value)

    def read(self, source_path):
        relative = os.path.relpath(source_path, self.settings.get("PATH", os.curdir))
        try:
            content, metadata = super().read(source_path)
            self._check(relative, metadata)
        except MetadataError as error:
            _record(source_path, f"{relative}: {error}")
            raise
        return content, metadata

    def _check(self, relative: str, metadata: dict) -> None:
        if not str(metadata.get("title", "")).strip():
            raise MetadataError("Title", "missing; add a line 'Title: ...' at the top of the file")
        status = metadata.get("status")
        if status is not None and status not in ALLOWED_STATUSES:
            raise MetadataError(
                "Status", f"{status!r} is unknown; use one of {', '.join(sorted(ALLOWED_STATUSES))}"
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


def _record(source_path: str, message: str) -> None:
    _problems.setdefault(os.path.abspath(source_path), []).append(message)


def _reset(_pelican) -> None:
    _problems.clear()


def _use_checked_reader(readers) -> None:
    for ext in CheckedMarkdownReader.file_extensions:
        if ext in readers.reader_classes:
            readers.reader_classes[ext] = CheckedMarkdownReader


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
