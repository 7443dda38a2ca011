"""Helpers for writing content: a new article skeleton with the metadata the build requires."""

from __future__ import annotations

import uuid
from datetime import datetime
from pathlib import Path

from pelican.utils import slugify


def new_article(folder: Path, title: str, now: datetime | None = None) -> Path:
    now = now or datetime.now()
    slug = slugify(
        title,
        regex_subs=[(r"[^\w\s-]", ""), (r"(?u)\A\s*", ""), (r"(?u)\s*\Z", ""), (r"[-\s]+", "-")],
    )
    path = folder / f"{slug}.md"
    if path.exists():
        raise FileExistsError(f"{path} already exists")
    folder.mkdir(parents=True, exist_ok=True)
    path.write_text(
        f"Title: {title}\n"
        "Subtitle: \n"
        f"Date: {now:%Y-%m-%d %H:%M}\n"
        "Category: Rehab\n"
        "Tags: \n"
        f"Id: {uuid.uuid4()}\n"
        "Summary: \n"
        "Status: draft\n"
        "\n"
        "Write here.\n",
        encoding="utf-8",
    )
    return path
