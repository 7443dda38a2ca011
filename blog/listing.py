"""A site page that lists what the published articles hold (the exercise library, the videos
page), and its menu entry: both exist only while the page lists something.

Contract: `published(articles, now=None)` is the published articles dated up to now, in their
order (the one test, shared with plugins/feeds). `show_in_menu(context, title, url, shown,
after=...)` puts (title, url) into the context's MENUITEMS after the first title of `after`
found there (else last), or takes it out when not `shown`. `write_listing(generator, writer,
save_as=..., template=..., url=..., listed=..., **values)` renders the page with Pelican's
writer (so the sitemap and plugins/incremental see it) when `listed` is not empty, and removes
the page an earlier build left when it is (the last item went while serving). The template gets
`listing_url`, the `values`, and `listing_digest`: a hash of `listed` (what the page shows, as
plain values), the value plugins/incremental follows (it compares a page's arguments by value,
and a list of articles does not count there).
"""

from __future__ import annotations

import hashlib
import os
from datetime import UTC, datetime


def published(articles, now: datetime | None = None) -> list:
    """The articles whose status is published and whose date is not after `now` (default: this
    moment), in the order given."""
    now = now or datetime.now(UTC)
    return [
        a for a in articles if getattr(a, "status", "published") == "published" and a.date <= now
    ]


def show_in_menu(context: dict, title: str, url: str, shown: bool, after=("Archives",)) -> None:
    menu = [item for item in context.get("MENUITEMS", []) if item[1] != url]
    if shown:
        titles = [item[0] for item in menu]
        found = next((titles.index(t) + 1 for t in after if t in titles), len(menu))
        menu.insert(found, (title, url))
    context["MENUITEMS"] = menu


def write_listing(generator, writer, *, save_as: str, template: str, url: str, listed, **values):
    if not save_as:
        return
    if not listed:
        target = os.path.join(generator.output_path, save_as)
        if os.path.isfile(target):
            os.remove(target)
        return
    writer.write_file(
        save_as,
        generator.get_template(template),
        generator.context,
        relative_urls=generator.settings.get("RELATIVE_URLS", False),
        url=url,
        page_name=template,
        listing_url=url,  # the writer keeps `url` for itself (pagination)
        listing_digest=hashlib.blake2b(repr(listed).encode(), digest_size=16).hexdigest(),
        **values,
    )
