"""The race harness: run functions at the same moment, each in its own thread.

`race(*workers)` starts one thread per worker, holds them all at a barrier so they start
together (not one after the other as threads are created), waits for each (`timeout` seconds
in all, then fails naming the stragglers) and returns their results in order. An exception
in any worker is raised after all have finished, every one of them together in an
`ExceptionGroup`, so a test asserts only what the race left behind."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from functools import partial
from typing import Any


def race(*workers: Callable[[], Any], timeout: float = 60.0) -> list[Any]:
    if not workers:
        raise ValueError("race() needs at least one worker")
    barrier = threading.Barrier(len(workers))
    results: list[Any] = [None] * len(workers)
    errors: list[BaseException | None] = [None] * len(workers)

    def run(index: int, worker: Callable[[], Any]) -> None:
        try:
            barrier.wait(timeout)
            results[index] = worker()
        except BaseException as error:  # noqa: BLE001 - raised in the test's thread below
            errors[index] = error

    threads = [
        threading.Thread(target=run, args=(n, w), name=f"racer-{n}", daemon=True)
        for n, w in enumerate(workers)
    ]
    for thread in threads:
        thread.start()
    deadline = time.monotonic() + timeout
    for thread in threads:
        thread.join(max(0.0, deadline - time.monotonic()))
    stuck = [thread.name for thread in threads if thread.is_alive()]
    if stuck:
        raise AssertionError(f"still running after {timeout} s: {', '.join(stuck)}")
    failed = [error for error in errors if error is not None]
    if failed:
        raise BaseExceptionGroup(f"{len(failed)} of {len(workers)} racers failed", failed)
    return results


def race_each(work: Callable[[int], Any], count: int, *, timeout: float = 60.0) -> list[Any]:
    """`work(0)`, `work(1)` ... `work(count - 1)` at once: `race` with a worker number."""
    return race(*(partial(work, n) for n in range(count)), timeout=timeout)
