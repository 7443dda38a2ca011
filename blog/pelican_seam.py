"""The one seam to Pelican's internals: what our plugins and build need that Pelican's public API
(settings, signals, documented attributes) does not offer, here and nowhere else.

Written for Pelican 4.12.0 and pelican-sitemap 1.2.2 (`PELICAN`, `PELICAN_SITEMAP`;
tests/test_pelican_seam.py fails when the installed versions differ). After an upgrade, read
each item below against the new sources, adjust this module, then the pins. It relies on:

- `Content._content`: the HTML the reader made, before links resolve (`html`, `set_html`: a
  plugin rewrites it on `content_object_init`); `Content._summary`: the summary Pelican copies
  back into the metadata in `refresh_metadata_intersite_links` (`set_summary`);
  `Content._context`: the build context its links resolve against (`rebind`, for an object
  reused from an earlier build); `Content._get_intrasite_link_regex()`: the `{filename}`,
  `{static}`, `{attach}` link pattern (`intrasite_links`); and that `vars(content)` holds only
  these, `settings`, `metadata` and the attributes the metadata and plugins set (`attributes`);
- `Content.get_url_setting` answering `url` and `save_as` from `override_url` and
  `override_save_as` when set (`freeze_urls`);
- `Content.get_content` and `Content.get_summary` memoized by `pelican.utils.memoized`, whose
  `cache` dict (on the function in `Content.__dict__`) keeps every result for the life of the
  process (`forget_memoized`, `memoized_count`);
- `URLWrapper._name`, `_slug` and `_slug_from_name`: a Tag's, Category's or Author's identity
  (`url_wrapper_key`);
- `ArticlesGenerator._build_period_archives(sorted_articles, articles, settings)`, called once
  by `generate_context` (`wrap_period_archives`);
- `get_cached_data(filename, default)`, `cache_data(filename, content)`,
  `add_source_path(content)` and `add_static_links(content)`, looked up on the generator by
  `ArticlesGenerator.generate_context` and `PagesGenerator.generate_context` once per file
  (`replace_content_hooks`);
- `Writer.write_file(name, template, context, relative_urls, paginated, template_name,
  override_output, url, **kwargs)` (its signature, copied by `PageWriter`), which opens every
  file it writes through `Writer._open_w(filename, encoding, override)` and remembers it in
  `Writer._written_files` (a second write of the same file in one build is refused);
- the context `Pelican.run` gives its generators: the settings plus `generated_content`,
  `static_links`, `static_content` and `localsiteurl` (`articles_generator`);
- pelican-sitemap 1.2.2 keeps a build's state in its module-level `generator`
  (`_main_pelican`, `page_queue`, `now`), cleared only by a build that ends (`reset_sitemap`).

Where Pelican has no signal, our build sends its own (blinker, as Pelican's are):
`build_failed` (sender: the settings, after a build that raised) and `feeds_wanted` (sender: an
ArticlesGenerator whose context is generated; a receiver writes the feeds, returns their paths).
"""

from __future__ import annotations

import functools
import os
import sys
import types
from collections.abc import Callable, Iterator
from datetime import datetime

from blinker import signal
from pelican import signals
from pelican.contents import Content
from pelican.generators import ArticlesGenerator
from pelican.writers import Writer

PELICAN = "4.12.0"
PELICAN_SITEMAP = "1.2.2"

build_failed = signal("walkagain.build_failed")
feeds_wanted = signal("walkagain.feeds_wanted")

# What `vars(content)` holds for Pelican's own bookkeeping, not for templates.
_BOOKKEEPING = frozenset({"_context", "settings", "metadata", "_content"})


# Contents -----------------------------------------------------------------------------------
def html(content) -> str | None:
    """The HTML its reader made (links unresolved), None if it has none."""
    return getattr(content, "_content", None)


def set_html(content, html: str) -> None:
    content._content = html


def set_summary(content, summary: str) -> None:
    """The summary, where Pelican keeps it and where it copies it from after reading."""
    content.metadata["summary"] = content._summary = summary


def rebind(content, context: dict, settings: dict) -> None:
    """An object made by an earlier build, given this build's context and settings."""
    content._context = context
    content.settings = settings


def intrasite_links(content, html: str) -> Iterator:
    """The matches of Pelican's `{filename}`, `{static}`, `{attach}` link pattern in `html`
    (groups `what` and `value`, as Pelican reads them)."""
    return content._get_intrasite_link_regex().finditer(html)


def attributes(content) -> dict:
    """Its attributes, without Pelican's bookkeeping (its context, settings, metadata, HTML)."""
    return {k: v for k, v in vars(content).items() if k not in _BOOKKEEPING}


def freeze_urls(content) -> None:
    """Its url and save_as computed once (Pelican formats them again at every access)."""
    # One new dict, sized for its keys: two new attributes would turn the object's key-sharing
    # dict into a full one twice its size (1.3 KB more per article).
    content.__dict__ = {
        **content.__dict__,
        "override_url": content.url,
        "override_save_as": content.save_as,
    }


def forget_memoized(*names: str) -> None:
    """Drop what Pelican memoized for every content object (`get_content`, `get_summary`)."""
    for name in names:
        Content.__dict__[name].cache.clear()


def memoized_count(name: str) -> int:
    """How many results Pelican keeps memoized for `Content.<name>`, over all objects."""
    return len(Content.__dict__[name].cache)


def url_wrapper_key(wrapper) -> tuple | None:
    """(kind, name, explicit slug or None): what makes two Tags, Categories or Authors the
    same; None for anything else."""
    if wrapper is None or not hasattr(wrapper, "_slug_from_name"):
        return None
    return (type(wrapper), wrapper._name, None if wrapper._slug_from_name else wrapper._slug)


# Generators ---------------------------------------------------------------------------------
def wrap_period_archives(generator, wrapper: Callable) -> None:
    """On this ArticlesGenerator only: its period archives become `wrapper(build,
    sorted_articles, articles, settings)`, where `build(sorted_articles, articles, settings)` is
    Pelican's own."""
    build = ArticlesGenerator._build_period_archives

    def replaced(self, sorted_articles, articles, settings):
        return wrapper(functools.partial(build, self), sorted_articles, articles, settings)

    generator._build_period_archives = types.MethodType(replaced, generator)


def replace_content_hooks(
    generator, *, get_cached_data, cache_data, add_source_path, add_static_links
) -> None:
    """On this Articles or Pages generator only, the four methods its `generate_context` calls
    for each file: where Pelican asks for a cached object, offers one to cache, records where an
    object is and the static files it links."""
    generator.get_cached_data, generator.cache_data = get_cached_data, cache_data
    generator.add_source_path, generator.add_static_links = add_source_path, add_static_links


def articles_generator(pelican) -> ArticlesGenerator:
    """An ArticlesGenerator with the context `Pelican.run` gives its generators."""
    context = pelican.settings.copy()
    context.update(generated_content={}, static_links=set(), static_content={})
    context["localsiteurl"] = pelican.settings["SITEURL"]
    return ArticlesGenerator(
        context=context,
        settings=pelican.settings,
        path=pelican.path,
        theme=pelican.theme,
        output_path=pelican.output_path,
    )


# The writer ---------------------------------------------------------------------------------
class PageWriter(Writer):
    """Pelican's writer, asking `pages` (made by `make_pages(settings)`) before each page:
    `pages.unchanged(name, template, context, url, relative_urls, template_name, kwargs)`
    returns the files it wrote last time if the page needs no writing (they are announced with
    `content_written` as if written, so the sitemap lists them), else None; then
    `pages.written(name, paths)` gets the files the page was written to. Made per use by
    `page_writer`."""

    make_pages: Callable[[dict], object]

    def __init__(self, output_path, settings=None):
        super().__init__(output_path, settings=settings)
        self.pages = type(self).make_pages(self.settings)
        self._opened: list[str] = []

    def _open_w(self, filename, encoding, override=False):
        self._opened.append(filename)
        return super()._open_w(filename, encoding, override)

    def write_file(
        self,
        name,
        template,
        context,
        relative_urls=False,
        paginated=None,
        template_name=None,
        override_output=False,
        url=None,
        **kwargs,
    ):
        if not name:
            return super().write_file(name, template, context, relative_urls, paginated,
                                      template_name, override_output, url, **kwargs)  # fmt: skip
        files = self.pages.unchanged(
            name, template, context, url, relative_urls, template_name, kwargs
        )
        if files is not None:
            local = {**kwargs, "output_file": name}  # what `content_written` receivers read
            for path in files:
                self._written_files.add(path)
                signals.content_written.send(path, context=local)
            return None
        self._opened = []
        result = super().write_file(name, template, context, relative_urls, paginated,
                                    template_name, override_output, url, **kwargs)  # fmt: skip
        self.pages.written(name, [path for path in self._opened if path != os.devnull])
        return result


def page_writer(make_pages: Callable[[dict], object]) -> type[Writer]:
    """A writer class for Pelican's `get_writer` signal, asking `make_pages(settings)`'s object
    about each page (see `PageWriter`)."""
    return type("PageWriter", (PageWriter,), {"make_pages": staticmethod(make_pages)})


# pelican-sitemap ----------------------------------------------------------------------------
def reset_sitemap() -> None:
    """pelican-sitemap keeps a build's state in a module-level object that only a build that ends
    clears: after a failed build in the same process (a content error while `invoke serve` runs)
    it would never write the sitemap again. Each build starts it afresh, as a new process would."""
    module = sys.modules.get("pelican.plugins.sitemap.sitemap")
    if module is not None:
        module.generator._main_pelican = None
        module.generator.page_queue = []
        module.generator.now = datetime.now()


__all__ = [
    "PELICAN",
    "PELICAN_SITEMAP",
    "PageWriter",
    "articles_generator",
    "attributes",
    "build_failed",
    "feeds_wanted",
    "forget_memoized",
    "freeze_urls",
    "html",
    "intrasite_links",
    "memoized_count",
    "page_writer",
    "rebind",
    "replace_content_hooks",
    "reset_sitemap",
    "set_html",
    "set_summary",
    "url_wrapper_key",
    "wrap_period_archives",
]
