"""The tests' own harness: conftest loads no browser stack, the race harness reports every
failure and every straggler, the clocks move only when told."""

import subprocess
import sys
import threading
from datetime import timedelta

import pytest

from blog.build import ROOT
from tests.clock import Clock, MonotonicClock
from tests.race import race, race_each


def test_conftest_imports_no_browser_stack():
    """Only the browser tests need Playwright: the `browser` fixture imports it when asked."""
    code = (
        "import sys, tests.conftest, tests.browser\n"
        "loaded = [m for m in sys.modules if m.split('.')[0] in"
        " ('playwright', 'axe_playwright_python', 'greenlet')]\n"
        "assert not loaded, loaded\n"
    )
    subprocess.run([sys.executable, "-c", code], cwd=ROOT, check=True, timeout=60)


def test_race_runs_each_worker_once_and_returns_the_results_in_order():
    assert race(lambda: "a", lambda: "b", lambda: "c") == ["a", "b", "c"]
    assert race_each(lambda n: n * n, 5) == [0, 1, 4, 9, 16]
    assert race_each(lambda n: threading.current_thread().name, 2) == ["racer-0", "racer-1"]


def test_race_raises_every_failure_together_after_all_finished():
    finished = []

    def fine():
        finished.append(1)

    def boom(n):
        raise ValueError(f"racer {n}")

    with pytest.raises(ExceptionGroup) as caught:
        race(fine, lambda: boom(1), fine, lambda: boom(2))
    assert sorted(str(e) for e in caught.value.exceptions) == ["racer 1", "racer 2"]
    assert "2 of 4 racers failed" in str(caught.value) and finished == [1, 1]


def test_race_names_the_racers_still_running_after_the_timeout():
    release = threading.Event()
    try:
        with pytest.raises(AssertionError, match="racer-1"):
            race(lambda: None, lambda: release.wait(10), timeout=0.2)
    finally:
        release.set()


def test_the_clocks_move_only_when_told():
    clock = Clock()
    start = clock()
    assert clock() == start and clock.advance(minutes=10, seconds=1) == clock()
    assert clock() - start == timedelta(minutes=10, seconds=1) and start.tzinfo is not None
    seconds = MonotonicClock()
    seconds.sleep(2.5)
    assert seconds() == 1002.5 and seconds.slept == [2.5]
    assert seconds.advance(1) == 1003.5 and seconds.slept == [2.5]
