"""Helpers for writing content: a new article skeleton with the metadata the build requires.

Contract: `new_article(folder, title)` writes `folder/SLUG.md`, a draft with the title, today's
date, the category, a fresh `Id` and `Status: draft`, and returns its path. The slug is the
title's as Pelican makes it; a title whose slug is longer than `MAX_SLUG` characters gets a
slug cut at a word boundary, written as the file's `Slug:` too, so the file name and the
article's URL stay short enough for any file system. There is no `Summary:` line: without one,
the cards and the feeds show the article's beginning. An empty title (or one with no letter or
digit to make a file name of) and a title whose file already exists raise `NewArticleError`,
one sentence for the author, and nothing is written.
"""

from __future__ import annotations

import os
import uuid
from datetime import datetime
from pathlib import Path

from pelican.utils import slugify

MAX_SLUG = 80  # characters (ASCII: Pelican transliterates); file names allow 255 bytes
SLUG_SUBSTITUTIONS = [(r"[^\w\s-]", ""), (r"(?u)\A\s*", ""), (r"(?u)\s*\Z", ""), (r"[-\s]+", "-")]


class NewArticleError(ValueError):
    """The article cannot be started; the message says why, in one sentence."""


def article_slug(title: str) -> tuple[str, bool]:
    """(the slug of a title as Pelican makes it, shortened to MAX_SLUG at a hyphen; whether it
    was shortened)."""
    slug = slugify(title, regex_subs=SLUG_SUBSTITUTIONS)
    if len(slug) <= MAX_SLUG:
        return slug, False
    cut = slug[: MAX_SLUG + 1]
    cut = cut[: cut.rfind("-")] if "-" in cut[1:] else cut[:MAX_SLUG]
    return cut.strip("-") or slug[:MAX_SLUG], True


def new_article(folder: Path, title: str, now: datetime | None = None) -> Path:
    title = " ".join(title.split())  # one line: a newline would end the metadata
    if not title:
        raise NewArticleError(
            'The title is empty; give one, e.g. invoke new "Why the hip matters".'
        )
    slug, shortened = article_slug(title)
    if not slug:
        raise NewArticleError(
            f"The title {title!r} has no letter or digit to make a file name of; add some words."
        )
    path = folder / f"{slug}.md"
    now = now or datetime.now()
    folder.mkdir(parents=True, exist_ok=True)
    lines = [
        f"Title: {title}",
        "Subtitle: ",
        f"Date: {now:%Y-%m-%d %H:%M}",
        "Category: Rehab",
        "Tags: ",
        f"Id: {uuid.uuid4()}",
        *([f"Slug: {slug}"] if shortened else []),
        "Status: draft",
    ]
    try:
        with open(path, "x", encoding="utf-8") as file:  # "x": never overwrite an article
            file.write("\n".join(lines) + "\n\nWrite here.\n")
    except FileExistsError:
        raise NewArticleError(
            f"{os.path.relpath(path)} already exists; edit it, or choose another title for a "
            "new article."
        ) from None
    return path
