"""Build the site with Pelican: read settings, then read, generate and write, as Pelican.run does.

Contract: `build()` runs a full Pelican build of `content/` with our theme and plugins into the
settings' OUTPUT_PATH (or `output`), raising `BuildError` with Pelican's message if any content
or setting is broken. By default nothing is cached: every file is read and every page written
(`invoke build`, `invoke publish`). With `cache=FOLDER` (`invoke serve`) Pelican's content cache
lives there: a file whose mtime did not change is not read again (and, in the same process, its
article object is reused), and plugins/incremental renders only the pages a change touches; a
change to the theme, the settings or the plugins empties the cache, so everything is rebuilt.
`build_feeds()` reads the articles and writes only the feeds.

The plugins are Pelican's to load (the settings' PLUGINS): this module imports none of them. What
it does to Pelican beyond its public API (pelican-sitemap's state, the context `Pelican.run`
gives a generator) and the signals it sends where Pelican has none (`build_failed`,
`feeds_wanted`) are in `blog.pelican_seam`.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

from pelican import Pelican, signals
from pelican.settings import read_settings

from blog import pelican_seam

ROOT = Path(__file__).resolve().parent.parent


class BuildError(Exception):
    """The site could not be built; the message says which file or setting is wrong."""


def load_settings(config: str | os.PathLike = "pelicanconf.py", **overrides) -> dict:
    """Pelican settings from a settings file, with UPPER_CASE overrides (e.g. SITEURL, PATH)."""
    path = Path(config)
    if not path.is_absolute():
        path = ROOT / path
    if not path.is_file():
        raise BuildError(f"settings file {path} does not exist")
    for key in ("PATH", "OUTPUT_PATH", "THEME"):
        if key in overrides:
            overrides[key] = str(Path(overrides[key]).resolve())
    return read_settings(str(path), override=overrides)


def cache_settings(folder: str | os.PathLike) -> dict:
    """The settings of a build that keeps its cache in `folder` (see the module's docstring)."""
    return {
        "CACHE_CONTENT": True,
        "LOAD_CONTENT_CACHE": True,
        "CONTENT_CACHING_LAYER": "reader",
        "CHECK_MODIFIED_METHOD": "mtime",
        "CACHE_PATH": str(Path(folder).resolve()),
        "GZIP_CACHE": False,
    }


def build(
    config: str | os.PathLike = "pelicanconf.py",
    *,
    cache: str | os.PathLike | None = None,
    **overrides,
) -> dict:
    """Build the whole site, cached in `cache` if given; return the settings used."""
    if cache is not None:
        overrides = {**cache_settings(cache), **overrides}
    settings = load_settings(config, **overrides)
    _quiet_pelican_by_default()
    pelican_seam.reset_sitemap()
    try:
        Pelican(settings).run()
    except Exception as error:  # Pelican raises plain exceptions; give the task one clear type
        # plugins/incremental: the cache is whole, the next rebuild still needs only the change
        pelican_seam.build_failed.send(settings)
        raise BuildError(str(error)) from error
    return settings


def build_feeds(config: str | os.PathLike = "pelicanconf.py", **overrides) -> list[str]:
    """Read the articles and write only the feeds; return the feed paths written. The plugins
    check the content as in a build (`all_generators_finalized`: plugins/content_check raises
    on a broken file), then plugins/feeds writes the feeds (`feeds_wanted`)."""
    settings = load_settings(config, **overrides)
    pelican = Pelican(settings)
    generator = pelican_seam.articles_generator(pelican)
    try:
        generator.generate_context()
        signals.all_generators_finalized.send([generator])
        return [path for _, paths in pelican_seam.feeds_wanted.send(generator) for path in paths]
    except Exception as error:
        raise BuildError(str(error)) from error


def _quiet_pelican_by_default() -> None:
    if not logging.getLogger().handlers:
        logging.basicConfig(level=logging.WARNING, format="%(levelname)s: %(message)s")


__all__ = ["BuildError", "build", "build_feeds", "cache_settings", "load_settings"]
