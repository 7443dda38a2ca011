"""Broken content fails the build with a message naming the file and the field."""

import json
import subprocess
import sys
from xml.etree import ElementTree

import pytest
from bs4 import BeautifulSoup

from blog.build import ROOT, BuildError, build_feeds, load_settings
from tests.conftest import build_site, write_article


def build_error(tmp_path, content) -> str:
    with pytest.raises(BuildError) as caught:
        build_site(tmp_path / "out", "https://blog.example", PATH=content)
    return str(caught.value)


def test_bad_date_names_file_and_field(tmp_path, content_dir):
    write_article(content_dir, "fine", "Fine", "2026-01-01")
    write_article(content_dir, "broken", "Broken", "the 32nd of Smarch")
    message = build_error(tmp_path, content_dir)
    assert "articles/broken.md: field 'Date': 'the 32nd of Smarch' is not a date" in message
    assert "fine.md" not in message
    assert not (tmp_path / "out" / "index.html").exists(), "nothing is written on error"


def test_missing_title_names_file_and_field(tmp_path, content_dir):
    path = content_dir / "articles" / "untitled.md"
    path.write_text("Date: 2026-01-01\nId: 9b0e7f55-4c49-4bb0-9a53-6d1a3c1c2f11\n\nText.\n")
    message = build_error(tmp_path, content_dir)
    assert "articles/untitled.md: field 'Title': missing" in message


def test_missing_or_bad_id_suggests_one(tmp_path, content_dir):
    write_article(content_dir, "noid", "No id", "2026-01-01", id="")
    write_article(content_dir, "badid", "Bad id", "2026-01-01", id="my-article")
    message = build_error(tmp_path, content_dir)
    assert "articles/noid.md: field 'Id': missing; " in message
    assert "articles/badid.md: field 'Id': 'my-article' is not a UUID" in message
    assert "Add the line 'Id: " in message


def test_missing_image_and_unknown_status(tmp_path, content_dir):
    write_article(content_dir, "pic", "Pic", "2026-01-01", image="images/nope.png")
    write_article(content_dir, "stat", "Stat", "2026-01-01", status="pubished")
    message = build_error(tmp_path, content_dir)
    assert "articles/pic.md: field 'Image': 'images/nope.png' does not exist" in message
    assert "articles/stat.md: field 'Status': 'pubished' is unknown" in message


def test_broken_page_fails_too(tmp_path, content_dir):
    (content_dir / "pages" / "about.md").write_text("Slug: about\n\nNo title here.\n")
    assert "pages/about.md: field 'Title': missing" in build_error(tmp_path, content_dir)


def test_feed_task_refuses_broken_content(tmp_path, content_dir):
    write_article(content_dir, "broken", "Broken", "2026-13-45")
    with pytest.raises(BuildError, match=r"broken.md: field 'Date'"):
        build_feeds(PATH=content_dir, OUTPUT_PATH=tmp_path / "out", SITEURL="https://blog.example")
    assert not (tmp_path / "out" / "feeds").exists()


def test_plain_pelican_command_exits_non_zero(tmp_path, content_dir):
    write_article(content_dir, "broken", "Broken", "yesterday-ish")
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "pelican",
            str(content_dir),
            "-s",
            "pelicanconf.py",
            "-o",
            str(tmp_path / "out"),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode != 0
    assert "broken.md: field 'Date'" in result.stdout + result.stderr


# Fields: each one known (Pelican's, or declared by a plugin), or the build fails ---------------
def test_misspelt_fields_fail_with_did_you_mean(tmp_path, content_dir):
    write_article(content_dir, "fine", "Fine", "2026-01-01")
    # the attack: a "draft" that would be published, its summary cut from the body
    write_article(content_dir, "typos", "Typos", "2026-01-02", satus="draft",
                  summery="A summary.", tag="knees", body="Secret draft text.")  # fmt: skip
    message = build_error(tmp_path, content_dir)
    assert "articles/typos.md: field 'Satus': unknown; did you mean 'Status'?" in message
    assert "articles/typos.md: field 'Summery': unknown; did you mean 'Summary'?" in message
    assert "articles/typos.md: field 'Tag': unknown; did you mean 'Tags'?" in message
    assert "3 content problem(s)" in message and "fine.md" not in message
    assert not (tmp_path / "out" / "index.html").exists(), "nothing is written on error"


def test_unknown_field_on_a_page_lists_the_known_fields(tmp_path, content_dir):
    (content_dir / "pages" / "about.md").write_text("Title: About\nColour: red\n\nHello.\n")
    message = build_error(tmp_path, content_dir)
    line = next(line for line in message.splitlines() if "pages/about.md" in line)
    assert "pages/about.md: field 'Colour': unknown; the fields are " in line
    for field in ("Announce", "Id", "Image_alt", "Status", "Subtitle", "Summary", "Tags"):
        assert field in line  # Pelican's own and the ones our plugins declare


def test_status_accepts_only_published_draft_or_hidden(tmp_path, content_dir):
    write_article(content_dir, "a", "A", "2026-01-01", status="drafted")
    write_article(content_dir, "b", "B", "2026-01-01", status="live")
    write_article(content_dir, "c", "C", "2026-01-01", status="Hidden")
    write_article(content_dir, "d", "D", "2026-01-01", status="hidden")
    message = build_error(tmp_path, content_dir)
    assert "articles/a.md: field 'Status': 'drafted' is unknown; did you mean 'draft'? " in message
    assert (
        "articles/b.md: field 'Status': 'live' is unknown; use one of draft, hidden, published"
        in (message)
    )
    assert "articles/c.md: field 'Status': 'Hidden' is unknown; did you mean 'hidden'?" in message
    assert "d.md" not in message


def test_a_plugins_own_field_is_known_once_it_declares_it(tmp_path, content_dir):
    write_article(content_dir, "moody", "Moody", "2026-01-01", mood="cheerful")
    message = build_error(tmp_path / "without", content_dir)
    assert "articles/moody.md: field 'Mood': unknown" in message
    plugins = tmp_path / "more-plugins"
    (plugins / "moods").mkdir(parents=True)
    (plugins / "moods" / "__init__.py").write_text(
        'METADATA_FIELDS = ("Mood",)\n\n\ndef register():\n    pass\n'
    )
    site = build_site(
        tmp_path / "out",
        "https://blog.example",
        PATH=content_dir,
        PLUGIN_PATHS=[str(ROOT / "plugins"), str(plugins)],
        PLUGINS=[*load_settings()["PLUGINS"], "moods"],
    )
    assert "Moody" in site.page("2026/moody/")


def test_a_blank_summary_shows_the_first_paragraph_on_the_card_and_in_the_feed(
    tmp_path, content_dir
):
    # the first paragraph is far under 50 words: only it, not the start of the second
    first = "The first paragraph, about *knees*."
    write_article(content_dir, "blank", "Blank summary", "2026-01-01", summary="",
                  body=f"{first}\n\nThe second one, about hips.")  # fmt: skip
    site = build_site(tmp_path / "out", "https://blog.example", PATH=content_dir)
    card = BeautifulSoup(site.page("index.html"), "html.parser").select_one(".card-summary")
    assert [p.decode_contents() for p in card.find_all(recursive=False)] == [
        "The first paragraph, about <em>knees</em>."
    ]
    assert card.get_text().strip() == "The first paragraph, about knees."
    (item,) = ElementTree.parse(site.output / "feeds" / "all.rss.xml").iter("item")
    assert item.findtext("description") == "<p>The first paragraph, about <em>knees</em>.</p>"
    (entry,) = json.loads((site.output / "feeds" / "all.json").read_text())["items"]
    assert entry["summary"] == "The first paragraph, about knees."
    assert "The second one, about hips." in entry["content_html"]  # the text itself is whole
