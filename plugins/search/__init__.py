"""Search: the /search/ page, its menu entry, and Pagefind's index of the published articles and
pages (blog/search.py), made at the end of a build.

Contract: with `SEARCH_SAVE_AS` (default `search/index.html`; empty turns search off) the build
renders the theme's `search.html` at `SEARCH_URL` (default `search/`) and shows "Search" in the
menu (after "About", else last). Once every generator is done, it notes the files of the
published articles and pages (and their translations) this build made (`blog.search.remember`):
never drafts, hidden or future ones, nor a page an earlier build left in the output. On
`finalized` a build without the content cache (`invoke build`, `preview`, `publish`, the tests)
indexes those files with Pagefind, and a Pagefind failure fails the build. A build with the
content cache (`invoke serve`'s rebuilds) does not wait for Pagefind: `invoke serve` indexes in
the background after each rebuild (`blog.search.index_in_background`), so a save reaches the
page as fast as before and the search follows a moment later.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from pelican import signals
from pelican.generators import ArticlesGenerator, PagesGenerator

from blog.listing import show_in_menu
from blog.search import SearchError, index, remember, remembered

SEARCH_SAVE_AS, SEARCH_URL = "search/index.html", "search/"


def _enabled(settings) -> bool:
    return bool(settings.get("SEARCH_SAVE_AS", SEARCH_SAVE_AS))


def add_page(pelican) -> None:
    settings = pelican.settings
    if not _enabled(settings):
        return
    settings.setdefault("SEARCH_SAVE_AS", SEARCH_SAVE_AS)
    settings.setdefault("SEARCH_URL", SEARCH_URL)
    if "search" not in settings["DIRECT_TEMPLATES"]:
        settings["DIRECT_TEMPLATES"] = [*settings["DIRECT_TEMPLATES"], "search"]


def add_menu_entry(generator) -> None:
    settings = generator.settings
    if _enabled(settings):
        url = settings.get("SEARCH_URL", SEARCH_URL)
        show_in_menu(generator.context, "Search", url, True, after=("About",))
        # Pagefind's results are root-relative URLs (/2026/slug/): the site's own path before them
        path = urlsplit(settings.get("SITEURL", "")).path.rstrip("/")
        generator.context["SEARCH_BASE_PATH"] = path + "/"


def note_published(generators) -> None:
    pages, output = [], None
    for generator in generators:
        if isinstance(generator, ArticlesGenerator):
            items = [*generator.articles, *generator.translations]
        elif isinstance(generator, PagesGenerator):
            items = [*generator.pages, *generator.translations]
        else:
            continue
        output = generator.output_path
        if _enabled(generator.settings):
            pages += [item.save_as for item in items if item.save_as]
    if output is not None:
        remember(output, pages)


def index_output(pelican) -> None:
    settings = pelican.settings
    cached = settings.get("CACHE_CONTENT") and settings.get("LOAD_CONTENT_CACHE")
    if not _enabled(settings) or cached:
        return
    try:
        index(pelican.output_path, remembered(pelican.output_path))
    except SearchError as error:
        raise RuntimeError(str(error)) from error


def register():
    signals.initialized.connect(add_page)
    signals.article_generator_finalized.connect(add_menu_entry)
    signals.all_generators_finalized.connect(note_published)
    signals.finalized.connect(index_output)
