"""Broken content fails the build with a message naming the file and the field."""

import subprocess
import sys

import pytest

from blog.build import ROOT, BuildError, build_feeds
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
