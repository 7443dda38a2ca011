"""Files only the service can read: under the usual umask 022, every data file that names
subscribers (the database, its -wal, -shm and lock files, the outbox, previews, exports) is 0600
in 0700 folders; an older, readable database is tightened; `subscribers.forget` leaves no file
that names the address (the database's own files included). Real parts: a SQLite file, the
outbox, the invoke tasks."""

from __future__ import annotations

import os
import sqlite3
import stat
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from pathlib import Path

import pytest

from newsletter.announcements.ledger import Ledger
from newsletter.database import Database
from newsletter.subscriptions import admin
from tests.conftest import newsletter_settings, serve_folder

pytestmark = pytest.mark.slow  # the invoke tasks in subprocesses

INVOKE = Path(sys.executable).parent / "invoke"
ROOT = Path(__file__).resolve().parent.parent
FEED = """<?xml version="1.0" encoding="UTF-8"?>
<rss version="2.0"><channel><title>Walk Again</title><link>https://walkagain.example/</link>
<description>d</description><item><title>Knees</title><guid>urn:uuid:private-files-1</guid>
<link>https://walkagain.example/2026/knees/</link><pubDate>{date}</pubDate>
<description>Steps.</description></item></channel></rss>"""


@pytest.fixture
def umask_022():
    previous = os.umask(0o022)
    yield
    os.umask(previous)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def modes(folder: Path) -> dict[str, int]:
    """Every file and folder under `folder` (itself included), by relative path, with its mode."""
    found = {".": mode(folder)}
    for path in folder.rglob("*"):
        found[str(path.relative_to(folder))] = mode(path)
    return found


@pytest.fixture
def feed_url(tmp_path):
    """The blog's feed with one recent article, served over HTTP (as NEWSLETTER_FEED_URL)."""
    site = tmp_path / "site"
    site.mkdir()
    date = format_datetime(datetime.now(UTC) - timedelta(hours=2))
    (site / "feed.xml").write_text(FEED.format(date=date), encoding="utf-8")
    server = serve_folder(site)
    yield server.url + "/feed.xml"
    server.stop()


def run_invoke(env: dict[str, str], *args: str) -> str:
    result = subprocess.run(
        [str(INVOKE), *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    return result.stdout + result.stderr


def task_env(tmp_path: Path, feed_url: str) -> dict[str, str]:
    return {
        "NEWSLETTER_FEED_URL": feed_url,
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(tmp_path),
        "NEWSLETTER_DATABASE": str(tmp_path / "var" / "newsletter.sqlite3"),
        "NEWSLETTER_OUTBOX": str(tmp_path / "var" / "outbox"),
        "NEWSLETTER_SECRET_KEY": "private-files-tests-secret-key-" + "k" * 20,
    }


def test_under_umask_022_every_data_file_is_0600_in_0700_folders(tmp_path, umask_022, feed_url):
    settings = newsletter_settings(tmp_path)
    var = tmp_path / "var"
    admin.add(settings, "ann@example.com")  # the database, its -wal, -shm and writer lock
    admin.add(settings, "bob@example.com", confirmed=True)
    assert admin.send_queued(settings, timeout=5)["sent"] == 1  # the outbox: ann's confirmation
    database = Database(settings.database)
    try:
        with Ledger(database).lock():  # the announce run lock
            pass
        # SQLite made -wal and -shm itself, with the database file's mode (they go at close).
        assert {p.name: mode(p) for p in var.glob("newsletter.sqlite3*")} == {
            "newsletter.sqlite3": 0o600, "newsletter.sqlite3-wal": 0o600,
            "newsletter.sqlite3-shm": 0o600, "newsletter.sqlite3-writer.lock": 0o600,
            "newsletter.sqlite3-announce.lock": 0o600,
        }  # fmt: skip
    finally:
        database.close()
    # The real tasks, under the same umask (a child inherits it).
    env = task_env(tmp_path, feed_url)
    run_invoke(env, "announce", "--dry-run", "--send-existing")
    run_invoke(env, "announce.preview", "--no-open")
    exports = tmp_path / "exports"
    exports.mkdir()
    run_invoke(env, "subscribers.export", "--file", str(exports / "list.csv"))

    files = modes(var)
    assert (var / "outbox" / "preview" / "latest.html").is_file()
    assert len(list((var / "outbox" / "preview").glob("*.eml"))) == 1  # bob's dry-run email
    assert len(list((var / "outbox").glob("*.eml"))) == 1
    assert files == {name: 0o700 if (var / name).is_dir() else 0o600 for name in files}, (
        "readable by others: " + str({name: oct(m) for name, m in files.items() if m & 0o077})
    )
    assert mode(exports / "list.csv") == 0o600
    assert "bob@example.com" in (exports / "list.csv").read_text()
    assert mode(exports) == 0o755  # a folder we did not make: as we found it


def test_an_existing_readable_database_and_outbox_are_tightened(tmp_path, umask_022, feed_url):
    var = tmp_path / "var"
    var.mkdir(mode=0o755)
    database_file = var / "newsletter.sqlite3"
    # Made by an older version, 0644, and still open in an older process: its -wal and -shm too.
    older = sqlite3.connect(database_file, isolation_level=None)
    older.execute("PRAGMA journal_mode = WAL")
    older.execute("CREATE TABLE t (x)")
    (var / "outbox" / "preview").mkdir(parents=True, mode=0o755)
    companions = [var / f"newsletter.sqlite3{end}" for end in ("", "-wal", "-shm")]
    assert [mode(path) for path in companions] == [0o644] * 3
    assert mode(var / "outbox") == 0o755

    settings = newsletter_settings(tmp_path)
    try:
        assert admin.add(settings, "ann@example.com", confirmed=True)[1]
        assert [mode(path) for path in companions] == [0o600] * 3
    finally:
        older.close()
    env = task_env(tmp_path, feed_url)
    run_invoke(env, "announce.preview", "--no-open")
    assert mode(var / "outbox") == 0o700 and mode(var / "outbox" / "preview") == 0o700
    assert mode(var / "outbox" / "preview" / "latest.html") == 0o600
    assert mode(var) == 0o755  # the database's folder is the operator's: left as it was
    # Only regular files are tightened: an export to /dev/stdout (a pipe here) still works.
    result = subprocess.run(
        [str(INVOKE), "subscribers.export", "--file", "/dev/stdout"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert result.returncode == 0 and "ann@example.com,confirmed" in result.stdout


def test_forget_leaves_no_file_naming_the_address_and_says_how_many(tmp_path, feed_url):
    settings = newsletter_settings(tmp_path)
    outbox = settings.outbox
    for address in ("Gone@Example.com", "stays@example.com"):
        admin.add(settings, address)  # a confirmation email each
    assert admin.send_queued(settings, timeout=5)["sent"] == 2
    for address in ("gone@example.com", "stays@example.com"):
        admin.add(settings, address, confirmed=True)
    env = task_env(tmp_path, feed_url)
    run_invoke(env, "announce", "--dry-run", "--send-existing")
    run_invoke(env, "announce.preview", "--no-open")
    # A write cut short, and an address only in the body: found by the bytes, in any case.
    (outbox / "tmpcut.tmp").write_bytes(b"From: news@walkagain.example\r\nTo: GONE@EXAMPLE.COM")
    (outbox / "preview" / "note.eml").write_bytes(b"To: x@example.com\r\n\r\nCc GONE@example.COM.")
    (outbox / "preview" / "other.eml").write_bytes(b"To: x@example.com\r\n\r\nagone@example.com")

    def naming(address: str) -> list[Path]:
        return sorted(
            path for path in outbox.rglob("*")
            if path.is_file() and address.encode() in path.read_bytes().lower()
        )  # fmt: skip

    stays = naming("stays@example.com")
    assert len(stays) == 2  # a confirmation email and a dry-run email
    assert len(naming("gone@example.com")) == 5  # the same two, and the three above
    endpoint = Database(settings.database)  # the endpoint, running: its WAL stays meanwhile
    try:
        endpoint.db.execute("SELECT count(*) FROM subscribers").fetchall()
        output = run_invoke(env, "subscribers.forget", "gone@example.com")
        database_files = sorted(settings.database.parent.glob("newsletter.sqlite3*"))
        assert settings.database.with_name("newsletter.sqlite3-wal") in database_files
        assert [p for p in database_files if b"gone@example.com" in p.read_bytes().lower()] == []
    finally:
        endpoint.close()
    assert "Forgot gone@example.com: subscriber record deleted" in output
    assert "4 file(s) naming it deleted" in output
    assert naming("gone@example.com") == [outbox / "preview" / "other.eml"]  # agone@ is not gone@
    assert naming("stays@example.com") == stays  # the other reader's files remain
    assert (outbox / "preview" / "latest.html").is_file()  # names no one: stays
    assert [s.email for s in admin.list_subscribers(settings)] == ["stays@example.com"]
    assert "Nothing stored for gone@example.com." in run_invoke(
        env, "subscribers.forget", "gone@example.com"
    )
