"""Build the site with Pelican: read settings, then read, generate and write, as Pelican.run does.

Contract: `build()` runs a full Pelican build of `content/` with our theme and plugins into the
settings' OUTPUT_PATH (or `output`), raising `BuildError` with Pelican's message if any content
or setting is broken. `build_feeds()` reads the articles and writes only the feeds.
"""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path

from pelican import Pelican
from pelican.generators import ArticlesGenerator
from pelican.settings import read_settings

ROOT = Path(__file__).resolve().parent.parent
# Our plugins are imported under the same top-level names Pelican gives them (PLUGIN_PATHS).
if str(ROOT / "plugins") not in sys.path:
    sys.path.insert(0, str(ROOT / "plugins"))


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


def build(config: str | os.PathLike = "pelicanconf.py", **overrides) -> dict:
    """Build the whole site; return the settings used."""
    settings = load_settings(config, **overrides)
    _quiet_pelican_by_default()
    try:
        Pelican(settings).run()
    except Exception as error:  # Pelican raises plain exceptions; give the task one clear type
        raise BuildError(str(error)) from error
    return settings


def build_feeds(config: str | os.PathLike = "pelicanconf.py", **overrides) -> list[str]:
    """Read the articles and write only the feeds; return the feed paths written."""
    from content_check import fail_on_problems
    from feeds import write_feeds

    settings = load_settings(config, **overrides)
    pelican = Pelican(settings)
    context = pelican.settings.copy()
    context.update(generated_content={}, static_links=set(), static_content={})
    context["localsiteurl"] = pelican.settings["SITEURL"]
    generator = ArticlesGenerator(
        context=context,
        settings=pelican.settings,
        path=pelican.path,
        theme=pelican.theme,
        output_path=pelican.output_path,
    )
    try:
        generator.generate_context()
        fail_on_problems([generator])
        return write_feeds(generator)
    except Exception as error:
        raise BuildError(str(error)) from error


def _quiet_pelican_by_default() -> None:
    if not logging.getLogger().handlers:
        logging.basicConfig(level=logging.WARNING, format="%(levelname)s: %(message)s")


__all__ = ["BuildError", "build", "build_feeds", "load_settings"]
