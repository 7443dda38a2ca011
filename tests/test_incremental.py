"""Rebuilds while writing (`invoke serve`: `build(cache=...)`, plugins/incremental): an edited
article is read again and its page and the feeds change; an untouched article's page is not even
rewritten; a theme change rebuilds everything; drafts and future articles behave as without the
cache; `invoke build` (no cache) stays a clean build that writes every page."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from blog.build import ROOT, BuildError, build
from tests.conftest import write_article

SITE = "https://blog.example"


class Files:
    """Every file of an output folder: bytes and mtime (ns), to compare two builds."""

    def __init__(self, output: Path):
        self.output = output
        self.files = {
            str(p.relative_to(output)): (p.read_bytes(), p.stat().st_mtime_ns)
            for p in output.rglob("*")
            if p.is_file()
        }

    def changed(self, later: Files) -> set[str]:
        return {
            name for name, (data, _) in later.files.items() if self.files.get(name, (0,))[0] != data
        }

    def rewritten(self, later: Files) -> set[str]:
        return {
            name
            for name, (_, mtime) in later.files.items()
            if self.files.get(name, (0, 0))[1] != mtime
        }


def touch_later(path: Path) -> None:
    """As an editor's save: new content, and an mtime that certainly differs from the last one."""
    stat = path.stat()
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))


@pytest.fixture
def reads(monkeypatch):
    """The paths the Markdown reader reads, in order."""
    from plugins import commonmark_reader

    seen = []
    read = commonmark_reader.CommonMarkReader.read

    def counting(self, source_path):
        seen.append(Path(source_path).name)
        return read(self, source_path)

    monkeypatch.setattr(commonmark_reader.CommonMarkReader, "read", counting)
    return seen


@pytest.fixture
def blog(tmp_path, content_dir):
    """A small blog: three articles, a draft, a future article and a page, and a copy of the
    theme (so a test can edit it); `blog.build()` builds it as `invoke serve` does."""
    write_article(content_dir, "first", "First", "2026-01-01 10:00", body="First body.",
                  summary="The first.", tags="knees")  # fmt: skip
    write_article(content_dir, "second", "Second", "2026-01-02 10:00", body="Second body.",
                  summary="The second.", tags="knees")  # fmt: skip
    write_article(content_dir, "third", "Third", "2026-01-03 10:00", body="Links to "
                  "[the first]({filename}/articles/first.md).", category="Hips")  # fmt: skip
    write_article(content_dir, "wip", "Work in progress", "2026-01-04", status="draft")
    write_article(content_dir, "later", "Later", "2999-01-01", body="Not yet.")
    (content_dir / "pages" / "about.md").write_text("Title: About\n\nAbout us.\n")
    theme = tmp_path / "theme"
    shutil.copytree(ROOT / "theme", theme)

    class Blog:
        content = content_dir
        output = tmp_path / "out"
        cache = tmp_path / "cache"

        def build(self, cache=True):
            build("pelicanconf.py", cache=self.cache if cache else None, SITEURL=SITE,
                  PATH=content_dir, OUTPUT_PATH=self.output, THEME=theme)  # fmt: skip
            return Files(self.output)

    Blog.theme = theme
    return Blog()


def test_one_edited_article_rebuilds_its_page_and_the_feeds_only(blog, reads):
    before = blog.build()
    assert sorted(reads) == ["about.md", "first.md", "later.md", "second.md", "third.md", "wip.md"]
    reads.clear()
    second = blog.content / "articles" / "second.md"
    second.write_text(second.read_text().replace("Second body.", "Second body, edited."))
    touch_later(second)
    after = blog.build()

    assert reads == ["second.md"], "only the edited file is read again"
    assert "Second body, edited." in (blog.output / "2026/second/index.html").read_text()
    changed = before.changed(after)
    assert {"2026/second/index.html", "feeds/all.rss.xml", "feeds/all.atom.xml"} <= changed
    assert {"feeds/rehab.rss.xml", "feeds/rehab.atom.xml"} <= changed
    assert changed <= {
        "2026/second/index.html",
        *(f"feeds/{name}.{kind}.xml" for name in ("all", "rehab") for kind in ("rss", "atom")),
        "feeds/all.json",
        "feeds/rehab.json",
        "sitemap.xml",
    }
    rewritten = before.rewritten(after)
    untouched_pages = [
        "2026/first/index.html",
        "2026/third/index.html",
        "about/index.html",
        "index.html",
        "tag/knees/index.html",
        "drafts/work-in-progress.html",
    ]
    for untouched in untouched_pages:
        assert untouched not in rewritten, untouched
        assert before.files[untouched][0] == after.files[untouched][0]
    sitemap = (blog.output / "sitemap.xml").read_text()
    assert f"{SITE}/2026/first/" in sitemap and f"{SITE}/about/" in sitemap, "skipped, still listed"


def test_an_edited_title_or_summary_rebuilds_the_lists(blog, reads):
    before = blog.build()
    second = blog.content / "articles" / "second.md"
    second.write_text(second.read_text().replace("Summary: The second.", "Summary: New words."))
    touch_later(second)
    after = blog.build()
    changed = before.changed(after)
    assert {"index.html", "tag/knees/index.html", "category/rehab/index.html"} <= changed
    assert "New words." in (blog.output / "index.html").read_text()
    assert "2026/first/index.html" not in changed


def test_a_theme_change_rebuilds_everything(blog, reads):
    before = blog.build()
    reads.clear()
    base = blog.theme / "templates" / "base.html"
    base.write_text(base.read_text().replace("</body>", "<!-- theme v2 -->\n</body>"))
    after = blog.build()
    assert sorted(reads) == ["about.md", "first.md", "later.md", "second.md", "third.md", "wip.md"]
    pages = [name for name in after.files if name.endswith(".html")]
    assert len(pages) >= 15
    for name in pages:
        assert b"<!-- theme v2 -->" in after.files[name][0], name
        assert name in before.rewritten(after), name


def test_a_settings_change_rebuilds_everything(blog, reads):
    blog.build()
    reads.clear()
    build("pelicanconf.py", cache=blog.cache, SITEURL="https://other.example",
          PATH=blog.content, OUTPUT_PATH=blog.output, THEME=blog.theme)  # fmt: skip
    assert len(reads) == 6
    assert (
        "https://other.example/2026/first/" in (blog.output / "2026/first/index.html").read_text()
    )


def test_a_renamed_article_updates_the_links_to_it(blog, reads):
    blog.build()
    first = blog.content / "articles" / "first.md"
    first.write_text(first.read_text().replace("Title: First", "Title: First\nSlug: premier"))
    touch_later(first)
    blog.build()
    third = (blog.output / "2026/third/index.html").read_text()
    assert f'href="{SITE}/2026/premier/"' in third


def test_drafts_and_future_articles_behave_as_without_the_cache(blog):
    for _ in range(2):
        files = blog.build()
        assert "drafts/work-in-progress.html" in files.files
        assert "drafts/later.html" in files.files
        assert "2999/later/index.html" not in files.files
        feed = files.files["feeds/all.atom.xml"][0].decode()
        assert "Work in progress" not in feed and "Later" not in feed


def test_a_broken_edit_then_its_fix(blog, reads):
    blog.build()
    second = blog.content / "articles" / "second.md"
    text = second.read_text()
    second.write_text(text.replace("Date: 2026-01-02 10:00", "Date: the 32nd"))
    touch_later(second)
    with pytest.raises(BuildError, match="second.md: field 'Date'"):
        blog.build()
    reads.clear()
    second.write_text(text.replace("Second body.", "Second body, fixed."))
    touch_later(second)
    (blog.output / "sitemap.xml").unlink()
    blog.build()
    assert reads == ["second.md"], "the cache survived the failed build"
    assert "Second body, fixed." in (blog.output / "2026/second/index.html").read_text()
    assert f"{SITE}/2026/second/" in (blog.output / "sitemap.xml").read_text()


def test_an_interrupted_build_starts_the_next_from_an_empty_cache(blog, reads):
    blog.build()
    (blog.cache / "fingerprint").write_text("unfinished")  # as a build killed half-way leaves it
    reads.clear()
    blog.build()
    assert len(reads) == 6


def test_invoke_build_stays_clean(blog, reads):
    before = blog.build()
    reads.clear()
    after = blog.build(cache=False)
    assert len(reads) == 6, "every file read"
    pages = [name for name in after.files if name.endswith(".html")]
    assert set(pages) <= before.rewritten(after), "every page written"
    # the search index (pagefind/) comes from full builds; `invoke serve` makes it apart
    assert {
        name: data
        for name, (data, _) in after.files.items()
        if name != "sitemap.xml" and not name.startswith("pagefind/")
    } == {name: data for name, (data, _) in before.files.items() if name != "sitemap.xml"}, (
        "and the same site"
    )


@pytest.fixture
def made():
    """The file names of the article and page objects each build makes (content_object_init)."""
    from pelican import signals

    seen = []

    def one(content):
        seen.append(Path(content.source_path).name)

    signals.content_object_init.connect(one)
    yield seen
    signals.content_object_init.disconnect(one)


def _same_site(output: Path, clean: Path) -> None:
    """Every page of a clean build is in `output`, byte for byte (but the sitemap's lastmod);
    `output` may hold more: pages a change moved keep their old file while serving."""
    import re

    for path in clean.rglob("*"):
        if path.is_file() and path.relative_to(clean).parts[0] != "pagefind":  # search: apart
            name = path.relative_to(clean)
            ours, theirs = (output / name).read_bytes(), path.read_bytes()
            if path.name == "sitemap.xml":
                ours, theirs = (
                    re.sub(rb"<lastmod>[^<]*</lastmod>", b"", d) for d in (ours, theirs)
                )
            assert ours == theirs, name


def test_unchanged_articles_are_reused_from_the_last_build(blog, reads, made):
    blog.build()
    reads.clear()
    made.clear()
    second = blog.content / "articles" / "second.md"
    second.write_text(second.read_text().replace("Second body.", "Second body, edited."))
    touch_later(second)
    blog.build()
    assert reads == ["second.md"]
    # The future article is made again from the cache at every build (its status may change).
    assert sorted(made) == ["later.md", "second.md"], "the others' objects are reused"


def test_a_title_edit_updates_every_page_and_feed_showing_it(blog, tmp_path):
    blog.build()
    second = blog.content / "articles" / "second.md"
    second.write_text(second.read_text().replace("Title: Second", "Title: A Renamed Second"))
    touch_later(second)
    after = blog.build()
    clean = tmp_path / "clean"
    build("pelicanconf.py", SITEURL=SITE, PATH=blog.content, OUTPUT_PATH=clean, THEME=blog.theme)
    _same_site(blog.output, clean)
    for name in ("index.html", "tag/knees/index.html", "category/rehab/index.html",
                 "archives/index.html", "2026/index.html", "author/mark-williams/index.html",
                 "feeds/all.atom.xml", "feeds/all.rss.xml", "feeds/rehab.atom.xml"):  # fmt: skip
        text = after.files[name][0].decode()
        assert "A Renamed Second" in text, name


def test_reused_articles_link_to_this_build_and_match_a_clean_build(blog, tmp_path):
    blog.build()
    first = blog.content / "articles" / "first.md"
    first.write_text(first.read_text().replace("Title: First", "Title: First\nSlug: premier"))
    touch_later(first)
    third = blog.content / "articles" / "third.md"
    third.write_text(third.read_text().replace("Category: Hips", "Category: Knees"))
    touch_later(third)
    (blog.content / "articles" / "wip.md").unlink()
    blog.build()
    clean = tmp_path / "clean"
    build("pelicanconf.py", SITEURL=SITE, PATH=blog.content, OUTPUT_PATH=clean, THEME=blog.theme)
    _same_site(blog.output, clean)


def test_a_future_article_is_published_once_its_date_has_passed(blog, made):
    import time
    from datetime import datetime, timedelta
    from zoneinfo import ZoneInfo

    when = datetime.now(ZoneInfo("Europe/London")).replace(microsecond=0) + timedelta(seconds=3)
    write_article(blog.content, "soon", "Soon", f"{when:%Y-%m-%d %H:%M:%S}", body="Soon here.")
    files = blog.build()
    assert "drafts/soon.html" in files.files
    assert f"{when:%Y}/soon/index.html" not in files.files
    time.sleep(max(0.0, (when - datetime.now(ZoneInfo("Europe/London"))).total_seconds()) + 0.5)
    made.clear()
    files = blog.build()  # nothing edited: the date alone has passed
    assert "soon.md" in made
    assert f"{when:%Y}/soon/index.html" in files.files
    assert "Soon" in files.files["feeds/all.atom.xml"][0].decode()


def test_another_cache_folder_reuses_nothing(blog, reads, tmp_path):
    blog.build()
    reads.clear()
    build("pelicanconf.py", cache=tmp_path / "other-cache", SITEURL=SITE, PATH=blog.content,
          OUTPUT_PATH=tmp_path / "other", THEME=blog.theme)  # fmt: skip
    assert len(reads) == 6


def test_a_title_edit_renders_only_the_pages_that_show_the_article(blog):
    before = blog.build()
    third = blog.content / "articles" / "third.md"
    third.write_text(third.read_text().replace("Title: Third", "Title: The Third"))
    touch_later(third)
    after = blog.build()
    rewritten = before.rewritten(after)
    # its own page (a new slug), the lists that hold it, the feeds
    assert {
        "2026/the-third/index.html",
        "index.html",
        "category/hips/index.html",
        "archives/index.html",
        "2026/index.html",
        "feeds/all.atom.xml",
    } <= set(after.files)
    assert {"index.html", "category/hips/index.html", "archives/index.html"} <= rewritten
    # not the pages that do not show it
    for name in ("2026/first/index.html", "2026/second/index.html", "tag/knees/index.html",
                 "category/rehab/index.html", "about/index.html"):  # fmt: skip
        assert name not in rewritten, name


def test_a_summary_edit_leaves_the_other_articles_pages_alone(blog):
    before = blog.build()
    second = blog.content / "articles" / "second.md"
    second.write_text(second.read_text().replace("Summary: The second.", "Summary: New words."))
    touch_later(second)
    after = blog.build()
    rewritten = before.rewritten(after)
    assert {"2026/second/index.html", "index.html", "tag/knees/index.html"} <= rewritten
    assert not {"2026/first/index.html", "2026/third/index.html", "category/hips/index.html"} & (
        rewritten
    )


def test_a_page_follows_everything_when_its_templates_cannot_be_known(tmp_path):
    from jinja2 import DictLoader, Environment

    from plugins.incremental import template_names

    env = Environment(loader=DictLoader({
        "page.html": "{% extends 'base.html' %}{% block b %}{{ article.title }}{% endblock %}",
        "base.html": "{{ SITENAME }}{% block b %}{% endblock %}{% include 'menu.html' %}",
        "menu.html": "{% for title, link in MENUITEMS %}{{ title }}{% endfor %}",
        "dynamic.html": "{% include chosen %}",
    }))  # fmt: skip
    assert template_names(env, "page.html") >= {"article", "SITENAME", "MENUITEMS"}
    assert template_names(env, "dynamic.html") is None
