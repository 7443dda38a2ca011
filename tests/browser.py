"""One headless Chromium for the session (`browser`) and fresh contexts per test (`new_context`):
a pytest plugin that `tests/conftest.py` loads (`pytest_plugins`). Playwright is imported only
when a test asks for the browser, so every other test runs without the browser stack installed.

A test that uses `browser` (directly or through `new_context`) is marked `browser` and `slow`
here, so `-m "not slow"` (`invoke test --quick`) and `-m "not browser"` leave it out."""

from __future__ import annotations

import os
import shutil

import pytest

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


class _Expect:
    """Playwright's `expect`, imported when first used: `from tests.browser import expect`
    keeps a browser test file importable (and its other tests runnable) without Playwright."""

    def __call__(self, *args, **kwargs):
        from playwright.sync_api import expect

        return expect(*args, **kwargs)

    def __getattr__(self, name):  # expect.set_options(...)
        from playwright.sync_api import expect

        return getattr(expect, name)


expect = _Expect()


def uses_browser(item) -> bool:
    return "browser" in getattr(item, "fixturenames", ())


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(items):
    """Mark the browser tests (before `-m` deselects), and run them last, in the order they had
    (pytest-randomly's shuffle, when it is on). Between its calls the sync Playwright marks its
    event loop as running in the main thread, so starting the one session Playwright after every
    other test keeps that loop out of their way. Under pytest-xdist (`--dist load`) each worker
    collects the same order and is handed its tests in it, so browser tests come last on each."""
    for item in items:
        if uses_browser(item):
            item.add_marker(pytest.mark.browser)
            item.add_marker(pytest.mark.slow)
    items.sort(key=uses_browser)  # stable: the order within each group is kept


@pytest.fixture(scope="session")
def browser():
    """One headless Chromium for the session. Playwright's sync API: use it from the main thread
    (the tests' own), never from a server's or a worker's thread."""
    from playwright.sync_api import sync_playwright  # only the browser tests need it

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
