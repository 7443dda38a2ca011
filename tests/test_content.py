"""`invoke new` (blog/content.py): a new draft the build accepts, clear refusals, short slugs."""

import json
import shutil
import subprocess
import sys
from pathlib import Path
from xml.etree import ElementTree

import pytest
from bs4 import BeautifulSoup

from blog.build import ROOT
from blog.content import MAX_SLUG, NewArticleError, new_article
from tests.conftest import build_site

INVOKE = Path(sys.executable).parent / "invoke"


def invoke_new(project: Path, title: str) -> subprocess.CompletedProcess:
    """The real `invoke new TITLE`, run on a copy of tasks.py whose content/ is `project`'s."""
    return subprocess.run(
        [str(INVOKE), "new", title],
        cwd=project,
        capture_output=True,
        text=True,
        timeout=60,
        env={"PATH": "/usr/bin:/bin", "HOME": str(project), "PYTHONPATH": str(ROOT)},
    )


@pytest.fixture
def project(tmp_path):
    """A project folder with the real tasks.py and an empty content/articles/."""
    folder = tmp_path / "project"
    (folder / "content" / "articles").mkdir(parents=True)
    shutil.copy(ROOT / "tasks.py", folder / "tasks.py")
    return folder


@pytest.mark.slow  # invoke in subprocesses
def test_invoke_new_refuses_an_empty_or_existing_title_in_one_sentence(project):
    articles = project / "content" / "articles"
    for empty in ("", "   "):
        result = invoke_new(project, empty)
        assert result.returncode == 1
        assert result.stderr.strip() == (
            'The title is empty; give one, e.g. invoke new "Why the hip matters".'
        )
        assert list(articles.iterdir()) == [], "nothing is written"
    created = invoke_new(project, "Knee pain")
    assert created.returncode == 0, created.stderr
    assert "Created content/articles/knee-pain.md" in created.stdout
    before = (articles / "knee-pain.md").read_text()
    again = invoke_new(project, "Knee pain!")  # the same slug, so the same file
    assert again.returncode == 1
    assert again.stderr.strip() == (
        "content/articles/knee-pain.md already exists; edit it, or choose another title for a "
        "new article."
    )
    assert "Traceback" not in again.stderr + again.stdout
    assert (articles / "knee-pain.md").read_text() == before, "the article is left alone"


def test_a_title_with_nothing_to_name_a_file_is_refused(tmp_path):
    with pytest.raises(NewArticleError, match="no letter or digit to make a file name of"):
        new_article(tmp_path, "🦵 ?!")
    assert list(tmp_path.iterdir()) == []


def test_a_long_title_gets_a_short_slug_and_builds(tmp_path, content_dir):
    title = "Why the muscle on the side of your hip matters for knee pain " * 6  # ~370 bytes
    path = new_article(content_dir / "articles", title)
    assert len(path.name) <= MAX_SLUG + len(".md")
    assert path.name.startswith("why-the-muscle-on-the-side-of-your-hip-matters")
    slug = path.stem
    assert not slug.endswith("-") and f"\nSlug: {slug}\n" in path.read_text()
    site = build_site(tmp_path / "out", "https://blog.example", PATH=content_dir)
    page = site.page(f"drafts/{slug}.html")
    assert BeautifulSoup(page, "html.parser").h1.get_text(strip=True) == title.strip()


def test_a_new_article_has_no_blank_summary_and_its_card_shows_its_first_paragraph(
    tmp_path, content_dir
):
    path = new_article(content_dir / "articles", "Hip hinge")
    text = path.read_text()
    assert "Summary:" not in text
    first = "The hip hinge is the movement behind every lift from the floor."
    text = text.replace("Status: draft\n", "").replace("Write here.", f"{first}\n\nThen more.")
    path.write_text(text)
    site = build_site(tmp_path / "out", "https://blog.example", PATH=content_dir)
    card = BeautifulSoup(site.page("index.html"), "html.parser").select_one(".card-summary")
    assert card.get_text().strip() == first, "the first paragraph, not the start of the next"
    (item,) = ElementTree.parse(site.output / "feeds" / "all.rss.xml").iter("item")
    assert item.findtext("description") == f"<p>{first}</p>"
    (entry,) = json.loads((site.output / "feeds" / "all.json").read_text())["items"]
    assert entry["summary"] == first
