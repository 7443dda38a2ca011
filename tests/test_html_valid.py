"""Every generated HTML page passes the Nu HTML Checker (vnu-jar from npm) with no errors."""

import json
import shutil
import subprocess

import pytest

from blog.build import ROOT
from tests.conftest import build_site, write_article

pytestmark = pytest.mark.slow  # the Nu HTML Checker (Java)

VNU = ROOT / "node_modules" / "vnu-jar" / "build" / "dist" / "vnu.jar"


@pytest.fixture
def tricky_site(tmp_path, content_dir):
    """Titles and metadata with markup characters and unicode, which must be escaped."""
    write_article(
        content_dir,
        "tricky",
        'Knees & Hips <Part 1> "quoted"',
        "2026-03-01 10:00",
        subtitle="Less <b>pain</b> & more 'gain'",
        summary="Ampersand & 3 < 4, in Markdown.",
        tags="a&b, <tag>",
        category="Übungen & Co",
    )
    write_article(content_dir, "unicode", "Über Knie — 膝の痛み ✓", "2026-02-01 10:00")
    (content_dir / "pages" / "about.md").write_text("Title: About & <more>\n\nHi.\n")
    return build_site(tmp_path / "out", "https://blog.example", PATH=content_dir)


def test_every_page_is_valid_html(site, tricky_site):
    if not VNU.is_file() or not shutil.which("java"):
        pytest.fail("the Nu HTML Checker is not installed: run `bash bin/setup --test`")
    pages = sorted(site.output.rglob("*.html")) + sorted(tricky_site.output.rglob("*.html"))
    assert len(pages) >= 25
    result = subprocess.run(
        ["java", "-Xss4m", "-jar", str(VNU), "--errors-only", "--format", "json",
         "--exit-zero-always", *map(str, pages)],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    report = json.loads(result.stderr or result.stdout)
    errors = [
        f"{m.get('url', '')}:{m.get('lastLine')}: {m['message']}"
        for m in report["messages"]
        if m["type"] == "error"
    ]
    assert errors == [], "\n".join(errors)
    checked = {m.get("url") for m in report["messages"]}
    assert not any("fatal" in m["type"] for m in report["messages"]), checked


def test_titles_with_markup_characters_are_escaped(tricky_site):
    html = tricky_site.page("2026/knees-hips-quoted/")
    assert "<h1>Knees &amp; Hips &lt;Part 1&gt; &#34;quoted&#34;</h1>" in html
    assert '<p class="dek">Less &lt;b&gt;pain&lt;/b&gt; &amp; more &#39;gain&#39;</p>' in html
    assert "<b>pain</b>" not in html
