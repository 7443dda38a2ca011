"""Shared fixtures: real Pelican builds into temporary folders, served over real HTTP; the
newsletter's settings for a test (`newsletter_settings`, fixture `make_settings`); one headless
Chromium for the whole session (`browser`, fresh contexts per test from `new_context`)."""

from __future__ import annotations

import functools
import http.server
import os
import shutil
import threading
import uuid
from dataclasses import dataclass
from pathlib import Path

import pytest
from playwright.sync_api import sync_playwright

from blog.build import ROOT, build
from newsletter.settings import Settings

ARTIFACTS = ROOT / "tests" / "artifacts"
CHROMIUM = os.environ.get("CHROMIUM_PATH", shutil.which("chromium") or "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-default-apps",
    "--disable-features=Translate,OptimizationHints,MediaRouter",
]
ARTICLE_PATH = "2026/the-best-muscle-to-train-for-knee-pain/"
SITE_URL = "https://walkagain.example"
SECRET_KEY = "newsletter-tests-secret-key-" + "k" * 20


class QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


@dataclass
class StaticServer:
    root: Path
    url: str
    httpd: http.server.ThreadingHTTPServer

    def stop(self):
        self.httpd.shutdown()
        self.httpd.server_close()


def serve_folder(root: Path) -> StaticServer:
    """Serve a folder on 127.0.0.1 at a free port (port 0), in a thread."""
    handler = functools.partial(QuietHandler, directory=str(root))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    return StaticServer(root, f"http://127.0.0.1:{httpd.server_address[1]}", httpd)


@dataclass
class Site:
    output: Path
    url: str

    def page(self, path: str) -> str:
        target = self.output / path
        if target.is_dir() or path.endswith("/"):
            target = target / "index.html"
        return target.read_text(encoding="utf-8")


def build_site(output: Path, siteurl: str, **overrides) -> Site:
    build("pelicanconf.py", SITEURL=siteurl, OUTPUT_PATH=output, **overrides)
    return Site(output, siteurl)


@pytest.fixture(scope="session")
def site(tmp_path_factory):
    """The real content, built with the real settings, served on 127.0.0.1."""
    output = tmp_path_factory.mktemp("site")
    server = serve_folder(output)
    yield build_site(output, server.url, ISSO_URL="", NEWSLETTER_URL=server.url + "/subscribe")
    server.stop()


def write_article(folder: Path, name: str, title: str, date: str, *, body="Some text.", **meta):
    """Write a Markdown article with the metadata our build requires (Id is a fresh UUID)."""
    meta.setdefault("id", str(uuid.uuid4()))
    meta.setdefault("category", "Rehab")
    lines = [f"Title: {title}", f"Date: {date}"]
    lines += [f"{key.capitalize()}: {value}" for key, value in meta.items()]
    path = folder / "articles" / f"{name}.md"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n\n" + body + "\n", encoding="utf-8")
    return path


@pytest.fixture
def content_dir(tmp_path):
    """An empty content folder with the layout the settings expect."""
    folder = tmp_path / "content"
    for sub in ("articles", "pages", "images"):
        (folder / sub).mkdir(parents=True)
    return folder


@pytest.fixture(scope="session")
def artifacts():
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    return ARTIFACTS


# The newsletter's settings ---------------------------------------------------------------------
def newsletter_settings(tmp_path: Path | None = None, **changes) -> Settings:
    """`Settings` for a test: the database and the outbox under `tmp_path`/var, a test key, a
    real-looking sender, site and endpoint URLs and postal address, no pause between announcement
    retry passes; `changes` override any of them. Without `tmp_path` (settings that only compose
    or connect, never open the database or the outbox) those two keep Settings' defaults."""
    values = dict(
        secret_key=SECRET_KEY,
        sender="Walk Again <news@walkagain.example>",
        site_url=SITE_URL,
        base_url=f"{SITE_URL}/newsletter",
        postal_address="Walk Again, 2 Mill Lane, Leeds LS1 1AA",
        announce_retry_delay=0.0,
    )
    if tmp_path is not None:
        values.update(
            database=tmp_path / "var" / "newsletter.sqlite3", outbox=tmp_path / "var" / "outbox"
        )
    values.update(changes)
    return Settings(**values)


@pytest.fixture
def make_settings(tmp_path):
    """`make_settings(**changes)`: `newsletter_settings` over this test's tmp_path."""
    return functools.partial(newsletter_settings, tmp_path)


# One Chromium ----------------------------------------------------------------------------------
def pytest_collection_modifyitems(items):
    """Tests that use the browser run last (in their files' order). Between its calls the sync
    Playwright marks its event loop as running in the main thread, so starting the one session
    Playwright after every other test keeps that loop out of their way."""
    items.sort(key=lambda item: "browser" in getattr(item, "fixturenames", ()))


@pytest.fixture(scope="session")
def browser():
    """One headless Chromium for the session. Playwright's sync API: use it from the main thread
    (the tests' own), never from a server's or a worker's thread."""
    playwright = sync_playwright().start()
    try:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()
    finally:
        playwright.stop()


@pytest.fixture
def new_context(browser):
    """`new_context(**options)`: a fresh browser context (its own cookies, storage, viewport,
    permissions), closed after the test with every page in it."""
    contexts = []

    def new(**options):
        contexts.append(browser.new_context(**options))
        return contexts[-1]

    yield new
    for context in contexts:
        context.close()
