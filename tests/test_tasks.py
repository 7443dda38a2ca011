"""The invoke front door: the tasks exist, and `new` starts an article the build accepts."""

import subprocess
import sys
from pathlib import Path

from blog.build import ROOT
from blog.content import new_article
from tests.conftest import build_site

INVOKE = Path(sys.executable).parent / "invoke"


def test_invoke_lists_every_task_with_a_one_line_docstring():
    listing = subprocess.run(
        [str(INVOKE), "--list"], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout
    for name in (
        "clean",
        "build",
        "rebuild",
        "serve",
        "preview",
        "publish",
        "feed",
        "test",
        "lint",
        "bench",
        "new",
    ):
        assert f"\n  {name} " in listing, name


def test_publish_refuses_without_a_target(tmp_path):
    result = subprocess.run(
        [str(INVOKE), "publish"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "PUBLISH_TARGET": ""},
    )
    assert result.returncode == 1
    assert "Not published: set PUBLISH_TARGET" in result.stderr


def test_new_article_is_a_draft_with_an_id_that_builds(tmp_path, content_dir):
    path = new_article(content_dir / "articles", "Hip hinge: the basics & more")
    assert path.name == "hip-hinge-the-basics-more.md"
    text = path.read_text()
    assert "Status: draft" in text and "\nId: " in text
    site = build_site(tmp_path / "out", "https://blog.example", PATH=content_dir)
    assert (site.output / "drafts" / "hip-hinge-the-basics-more.html").is_file()


def test_invoke_list_shows_each_task_with_a_whole_sentence():
    """Issue 22: `invoke --list` shows a docstring's first line, and two were cut mid-sentence
    ("... (installs it from npm the first")."""
    listing = subprocess.run(
        [str(INVOKE), "--list"], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout
    described: dict[str, str] = {}
    for line in listing.split("Available tasks:", 1)[1].splitlines():
        if line.startswith("  ") and not line.startswith("   "):  # a task: name, description
            name, _, text = line.strip().partition("  ")
            described[name] = text.strip()
        elif line.strip():  # the description, wrapped to the terminal's width
            described[name] += " " + line.strip()
    assert len(described) >= 20 and "lighthouse" in described
    for name, text in described.items():
        assert text[:1].isupper() and text.endswith("."), f"{name}: {text!r}"
