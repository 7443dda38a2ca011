"""plugins/lean: the same site with less work and less memory (linear list membership, one
Tag/Category/Author per name, resolved HTML dropped after each page), and blog.build's deferred
imports."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
from pelican import signals
from pelican.contents import Content

from blog.build import ROOT, build, load_settings
from tests.conftest import write_article

SITE = "https://blog.example"


class Item:
    """No __eq__: compared by identity, as Pelican's contents are."""


def test_members_answer_in_by_identity_and_follow_appends():
    from lean import Members

    a, b, c = Item(), Item(), Item()
    members = Members([a, b])
    assert a in members and b in members and c not in members
    members.append(c)
    assert c in members, "an item appended after the first `in` counts"
    assert members == [a, b, c] and isinstance(members, list)


@pytest.fixture
def site(content_dir):
    """Twelve articles over two years (pagination, year archives), tags shared between them, a
    category each of two, no Author metadata (the default author), and one without Summary."""
    for n in range(12):
        write_article(
            content_dir,
            f"a{n:02d}",
            f"Article {n}",
            f"{2025 + n // 7}-0{1 + n % 7}-0{1 + n % 5} 10:00",
            body=f"Body {n}, [a link]({{filename}}/articles/a00.md).",
            tags="knees, hips" if n % 2 else "knees",
            category="Rehab" if n % 3 else "Hips",
            **({} if n == 5 else {"summary": f"Summary {n}."}),
        )
    return content_dir


def _files(output: Path) -> dict[str, bytes]:
    found = {}
    for path in output.rglob("*"):
        if path.is_file():
            data = path.read_bytes()
            if path.name == "sitemap.xml":  # its lastmod is the build's time
                data = re.sub(rb"<lastmod>[^<]*</lastmod>", b"", data)
            found[str(path.relative_to(output))] = data
    return found


def test_the_site_is_byte_identical_without_the_plugin(site, tmp_path):
    plugins = load_settings("pelicanconf.py")["PLUGINS"]
    assert "lean" in plugins
    without = [name for name in plugins if name != "lean"]
    build("pelicanconf.py", PATH=site, OUTPUT_PATH=tmp_path / "lean", SITEURL=SITE)
    build("pelicanconf.py", PATH=site, OUTPUT_PATH=tmp_path / "plain", SITEURL=SITE,
          PLUGINS=without)  # fmt: skip
    lean, plain = _files(tmp_path / "lean"), _files(tmp_path / "plain")
    assert "index2.html" in lean and "2026/index.html" in lean and "tag/hips/index.html" in lean
    assert lean == plain


def test_one_tag_category_and_author_object_per_name(site, tmp_path):
    seen = {}

    def keep(generators):
        seen["articles"] = list(generators[0].articles)

    signals.all_generators_finalized.connect(keep)
    try:
        build("pelicanconf.py", PATH=site, OUTPUT_PATH=tmp_path / "out", SITEURL=SITE)
    finally:
        signals.all_generators_finalized.disconnect(keep)
    articles = seen["articles"]
    assert len(articles) == 12
    knees = {id(tag) for a in articles for tag in a.tags if tag.name == "knees"}
    rehab = {id(a.category) for a in articles if a.category.name == "Rehab"}
    authors = {id(a.author) for a in articles} | {id(x) for a in articles for x in a.authors}
    assert len(knees) == len(rehab) == len(authors) == 1
    assert all(a.metadata["category"] is a.category for a in articles if "category" in a.metadata)


def test_no_resolved_html_is_kept_after_the_build(site, tmp_path):
    build("pelicanconf.py", PATH=site, OUTPUT_PATH=tmp_path / "out", SITEURL=SITE)
    assert not Content.__dict__["get_content"].cache
    assert not Content.__dict__["get_summary"].cache


def test_a_build_imports_requests_and_feedparser_only_when_used(tmp_path, site):
    code = (
        "import sys; from blog.build import build; "
        "build('pelicanconf.py', PATH=sys.argv[1], OUTPUT_PATH=sys.argv[2], SITEURL=sys.argv[3]); "
        "loaded = sorted(m for m in ('urllib3', 'requests.exceptions', 'sgmllib', "
        "'feedparser.api') if m in sys.modules); print('loaded:', loaded); "
        "import requests; print('uses:', requests.codes.ok, type(sys.modules['requests']).__name__)"
    )
    done = subprocess.run(
        [sys.executable, "-c", code, str(site), str(tmp_path / "out"), SITE],
        cwd=ROOT, capture_output=True, text=True, check=True,
    )  # fmt: skip
    assert "loaded: []" in done.stdout
    assert "uses: 200 module" in done.stdout, "the first use imports the real module"
