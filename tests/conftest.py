"""Shared fixtures: real Pelican builds into temporary folders, served over real HTTP; the
newsletter's settings for a test (`newsletter_settings`, fixture `make_settings`); the test
clocks (`clock`, `monotonic_clock`: `tests/clock.py`). The race harness is `tests/race.py`.

One headless Chromium for the whole session (`browser`, fresh contexts per test from
`new_context`) comes from the plugin `tests/browser.py`, which imports Playwright only when a
test asks for it: this file never does, so the tests that need no browser run without the
browser stack.

Markers (`pyproject.toml`, docs/testing.md): `slow` (a second or more: Chromium, servers or
tasks in subprocesses, the Nu HTML Checker, fuzzing; a build of the seed site is quick) and
`browser` (set with `slow` by `tests/browser.py` on every test that uses the browser);
`invoke test --quick` runs `-m "not slow"`. The order is random (pytest-randomly, the seed in
the header; `--randomly-seed=N` repeats a run, `-p no:randomly` keeps the files' order)."""

from __future__ import annotations

import fcntl
import functools
import hashlib
import http.server
import os
import shutil
import tempfile
import threading
import uuid
from dataclasses import dataclass
from pathlib import Path

import pytest

from blog.build import ROOT, build
from newsletter.settings import Settings
from tests import backends
from tests.clock import Clock, MonotonicClock

pytest_plugins = ["tests.browser"]

WORKERS = 2  # pytest-xdist's workers for `-n auto` (addopts): this VM's two cores


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_auto_num_workers(config):
    """How many workers `-n auto` (in addopts) starts: PYTEST_XDIST_AUTO_NUM_WORKERS if set; none
    (the tests run in pytest's own process, `-s` and `breakpoint()` work) when the command line
    names only files or tests; else WORKERS, e.g. for the whole suite (docs/testing.md)."""
    if os.environ.get("PYTEST_XDIST_AUTO_NUM_WORKERS"):
        return int(os.environ["PYTEST_XDIST_AUTO_NUM_WORKERS"])
    named = [Path(arg.split("::", 1)[0]) for arg in config.args]
    if config.args_source == pytest.Config.ArgsSource.ARGS and all(p.is_file() for p in named):
        return 0
    return WORKERS


ARTIFACTS = ROOT / "tests" / "artifacts"
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
    # A short poll: `stop` (shutdown) waits for it, half a second by default.
    threading.Thread(target=httpd.serve_forever, args=(0.05,), daemon=True).start()
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


# The project's own output/, cache/ and var/serve.json: one test at a time -------------------------
PROJECT_LOCK = Path(tempfile.gettempdir()) / (
    "stay-tuned-tests-" + hashlib.sha256(str(ROOT).encode()).hexdigest()[:12] + ".lock"
)


@pytest.fixture
def project_folders():
    """For a test that runs `invoke serve`, `build`, `preview` or `publish` in the project itself:
    they build into its output/ (or output-preview/) and keep serve's cache/, var/serve.json and
    var/isso/, which two pytest-xdist workers (or two test runs of this checkout) would share. Such
    tests take turns: an exclusive lock (flock on PROJECT_LOCK) is held for the test's length."""
    with open(PROJECT_LOCK, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield ROOT
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


@pytest.fixture(scope="session")
def artifacts():
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    return ARTIFACTS


# The newsletter's settings ---------------------------------------------------------------------
def newsletter_settings(
    tmp_path: Path | None = None, *, backend: str | None = None, **changes
) -> Settings:
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
            database=backends.target(tmp_path, backend or backends.CURRENT),
            outbox=tmp_path / "var" / "outbox",
        )
    values.update(changes)
    return Settings(**values)


@pytest.fixture
def make_settings(tmp_path, backend):
    """`make_settings(**changes)`: `newsletter_settings` over this test's tmp_path, on this
    test's database backend."""
    return functools.partial(newsletter_settings, tmp_path, backend=backend)


# The database backends ---------------------------------------------------------------------------
def pytest_generate_tests(metafunc):
    """A test that uses the newsletter's database (through `make_settings`, `database_target`
    or `backend`) runs on SQLite and on PostgreSQL; on SQLite only when marked `sqlite_only`
    (it is about the file itself), `browser` (the page is the same on both), or `slow` without
    `both_backends`."""
    if "backend" not in metafunc.fixturenames:
        return
    marked = metafunc.definition.get_closest_marker
    in_chromium = "browser" in metafunc.fixturenames  # tests/browser.py marks these later
    # A slow test runs on PostgreSQL too only when it is marked `both_backends` (the crash,
    # lock and concurrency tests): the suite stays within its ten minutes.
    slow_once = marked("slow") and not marked("both_backends")
    both = not (marked("sqlite_only") or marked("browser") or in_chromium or slow_once)
    metafunc.parametrize("backend", backends.BACKENDS if both else ("sqlite",), indirect=True)


@pytest.fixture
def backend(request):
    """The database backend of this test: "sqlite" or "postgresql". While it runs,
    `newsletter_settings(tmp_path)` uses it too (a module of helpers that build settings opts
    in with `pytestmark = pytest.mark.usefixtures("backend")`)."""
    if request.param == "postgresql":
        request.getfixturevalue("postgres_server")
    backends.CURRENT = request.param
    yield request.param
    backends.CURRENT = "sqlite"


@pytest.fixture(scope="session")
def postgres_server():
    """The test run's own PostgreSQL server (started at the first test that needs it, stopped
    at the end of the run)."""
    if backends.binaries() is None:
        pytest.skip("PostgreSQL is not installed: bash bin/setup --test installs it")
    folder = Path(tempfile.mkdtemp(prefix="newsletter-postgres-"))
    server = backends.PostgresServer(folder)
    try:
        backends.SERVER = server.start()
        yield server
    finally:
        backends.SERVER = None
        server.stop()
        shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture
def database_target(tmp_path, backend):
    """What NEWSLETTER_DATABASE takes for this test's backend (a file, or a fresh database)."""
    return backends.target(tmp_path, backend)


# The test clocks ------------------------------------------------------------------------------
@pytest.fixture
def clock():
    """A wall clock (aware UTC `datetime`) that stands still until `clock.advance(...)`."""
    return Clock()


@pytest.fixture
def monotonic_clock():
    """Seconds that move only with `advance` or `sleep` (which records each wait)."""
    return MonotonicClock()
