"""The one seam to Pelican (blog/pelican_seam.py): written for the Pelican and pelican-sitemap
versions installed here, holding the only uses of their private names in plugins/ and blog/, and
the plugins a real package that Pelican loads by name."""

from __future__ import annotations

import inspect
import re
import subprocess
import sys
from importlib.metadata import version
from pathlib import Path

import pytest
from pelican.contents import Content
from pelican.generators import ArticlesGenerator
from pelican.urlwrappers import Tag
from pelican.writers import Writer

from blog import pelican_seam
from blog.build import ROOT, load_settings

SEAM = "blog/pelican_seam.py"
# Pelican's and pelican-sitemap's private names the seam uses (its docstring's list).
PRIVATE = (
    "_content", "_summary", "_context", "_get_intrasite_link_regex", "_open_w", "_written_files",
    "_build_period_archives", "_name", "_slug", "_slug_from_name", "_main_pelican",
)  # fmt: skip


@pytest.mark.parametrize(
    "package, pinned", [("pelican", pelican_seam.PELICAN), ("pelican-sitemap",
                                                            pelican_seam.PELICAN_SITEMAP)]
)  # fmt: skip
def test_the_seam_was_written_for_the_installed_versions(package, pinned):
    installed = version(package)
    assert installed == pinned, (
        f"{package} {installed} is installed, but {SEAM} was written for {pinned}: read each item "
        f"of its docstring against {package} {installed}'s sources, adjust {SEAM}, then its pins"
    )


def test_what_the_seam_relies_on_is_there():
    """The private names and shapes the seam's docstring lists, as this Pelican has them."""
    where = f"(relied on by {SEAM})"
    writer = inspect.signature(Writer.write_file)
    copied = inspect.signature(pelican_seam.PageWriter.write_file)
    assert list(writer.parameters) == list(copied.parameters), f"Writer.write_file {where}"
    assert list(inspect.signature(Writer._open_w).parameters) == [
        "self", "filename", "encoding", "override"
    ], f"Writer._open_w {where}"  # fmt: skip
    assert isinstance(Writer("/nonexistent", settings={})._written_files, set), where
    assert list(inspect.signature(ArticlesGenerator._build_period_archives).parameters) == [
        "self", "sorted_articles", "articles", "settings"
    ], f"ArticlesGenerator._build_period_archives {where}"  # fmt: skip
    for name in ("get_content", "get_summary"):
        assert isinstance(Content.__dict__[name].cache, dict), f"Content.{name} memoized {where}"
    assert callable(Content._get_intrasite_link_regex), where
    tag = Tag("Knee pain", {})
    assert pelican_seam.url_wrapper_key(tag) == (Tag, "Knee pain", None), where
    tag.slug = "knees"
    assert pelican_seam.url_wrapper_key(tag) == (Tag, "Knee pain", "knees"), where
    from pelican.plugins.sitemap import sitemap

    for name in ("_main_pelican", "page_queue", "now"):
        assert hasattr(sitemap.generator, name), f"pelican-sitemap's generator.{name} {where}"


def _code_files():
    for folder in ("plugins", "blog"):
        for path in sorted((ROOT / folder).rglob("*.py")):
            if path.relative_to(ROOT).as_posix() != SEAM:
                yield path


def test_only_the_seam_uses_pelicans_private_names():
    names = "|".join(map(re.escape, PRIVATE))
    pattern = re.compile(rf"""[.'"]({names})\b""")
    found = [
        f"{path.relative_to(ROOT)}:{number}: {line.strip()}"
        for path in _code_files()
        for number, line in enumerate(path.read_text().splitlines(), 1)
        if pattern.search(line)
    ]
    assert not found, f"Pelican's private names belong in {SEAM}:\n" + "\n".join(found)
    seam = (ROOT / SEAM).read_text()
    for name in PRIVATE:
        assert f".{name}" in seam, f"{name}: no longer used by the seam, drop it from PRIVATE"


def test_the_plugins_are_a_package_pelican_loads_by_dotted_name():
    settings = load_settings("pelicanconf.py")
    ours = [name for name in settings["PLUGINS"] if not name.startswith("pelican.")]
    folders = sorted(p.name for p in (ROOT / "plugins").iterdir() if (p / "__init__.py").is_file())
    assert sorted(ours) == [f"plugins.{name}" for name in folders]
    assert not settings.get("PLUGIN_PATHS")
    for path in _code_files():  # no sys.path games to find them
        assert "sys.path" not in path.read_text(), path


def test_a_fresh_interpreter_finds_the_plugins_outside_the_repository(tmp_path):
    """As an installed project: from any folder (the package is part of the distribution)."""
    code = "import plugins.lean, blog.pelican_seam; print(plugins.lean.__file__)"
    done = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True,
                          text=True, check=True)  # fmt: skip
    assert Path(done.stdout.strip()) == ROOT / "plugins" / "lean" / "__init__.py"
