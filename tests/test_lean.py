"""plugins/lean: the same site with less work and less memory (linear list membership, one
Tag/Category/Author per name, resolved HTML dropped after each page), counted, and blog.build's
deferred imports."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
from pelican import signals

from blog import pelican_seam
from blog.build import ROOT, build, load_settings
from tests.conftest import write_article

SITE = "https://blog.example"


class Item:
    """No __eq__: compared by identity, as Pelican's contents are."""


def test_members_answer_in_by_identity_and_follow_appends():
    from plugins.lean import Members

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


# A build in a fresh interpreter (a plugin's receivers stay connected for the life of the process
# that loaded it: in this one, a build without `plugins.lean` would still run them), counting
# the work each part of the plugin saves: comparisons of contents (a `Content.__eq__` that counts;
# `in` on a set needs none), slugs computed (Pelican's URLWrapper.slug, once per object), and the
# resolved HTML Pelican keeps memoized once every article's page is written.
COUNTING_CHILD = """
import json, sys
import pelican.urlwrappers
from pelican import signals
from pelican.contents import Content
from blog import pelican_seam
from blog.build import build
content, output, site, plugins = sys.argv[1:5]
counts = {"comparisons": 0, "slugs": 0, "resolved_html_kept": None}
def eq(self, other):
    counts["comparisons"] += 1
    return self is other
Content.__eq__ = eq  # identity, as without it; the class keeps its __hash__
slugify = pelican.urlwrappers.slugify
def counted_slugify(*args, **kwargs):
    counts["slugs"] += 1
    return slugify(*args, **kwargs)
pelican.urlwrappers.slugify = counted_slugify
def articles_written(generator, writer):
    counts["resolved_html_kept"] = pelican_seam.memoized_count("get_content")
signals.article_writer_finalized.connect(articles_written)
build("pelicanconf.py", PATH=content, OUTPUT_PATH=output, SITEURL=site, PLUGINS=json.loads(plugins))
print("counts:", json.dumps(counts))
"""


def counted_build(site: Path, output: Path, plugins: list[str]) -> dict:
    done = subprocess.run(
        [sys.executable, "-c", COUNTING_CHILD, str(site), str(output), SITE, json.dumps(plugins)],
        cwd=ROOT, capture_output=True, text=True, check=True,
    )  # fmt: skip
    return json.loads(done.stdout.split("counts:")[-1])


def test_the_site_is_byte_identical_without_the_plugin_which_saves_work(site, tmp_path):
    plugins = load_settings("pelicanconf.py")["PLUGINS"]
    assert "plugins.lean" in plugins
    without = [name for name in plugins if name != "plugins.lean"]
    lean = counted_build(site, tmp_path / "lean", plugins)
    plain = counted_build(site, tmp_path / "plain", without)
    files = _files(tmp_path / "lean")
    assert "index2.html" in files and "2026/index.html" in files and "tag/hips/index.html" in files
    assert files == _files(tmp_path / "plain")
    # what it saves, as counts (12 articles): lists answer `in` without comparing contents...
    assert lean["comparisons"] * 3 < plain["comparisons"], (lean, plain)
    # ... one Tag, Category, Author per name: each slug computed once, not once per article...
    assert lean["slugs"] < plain["slugs"], (lean, plain)
    # ... and no article's resolved HTML kept once its page is written
    assert lean["resolved_html_kept"] == 0 and plain["resolved_html_kept"] >= 12, (lean, plain)


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
    assert pelican_seam.memoized_count("get_content") == 0
    assert pelican_seam.memoized_count("get_summary") == 0


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
