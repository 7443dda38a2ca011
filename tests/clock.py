"""The test clocks: time that moves only when a test says so.

`Clock` is a wall clock (aware UTC `datetime`, as `newsletter.database.utcnow`), for what takes
`clock=` to stamp rows (subscribers, queues, ledgers). `MonotonicClock` counts seconds (a
float, as `time.monotonic` or `time.time`), for what takes `clock=` and `sleep=` (the rate
limits): its `sleep` moves it on and records the wait instead of waiting. The fixtures
`clock` and `monotonic_clock` (`tests/conftest.py`) give a fresh one to each test."""

from __future__ import annotations

from datetime import datetime, timedelta

from newsletter.database import utcnow


class Clock:
    """A wall clock standing at `start` (now by default) until `advance` moves it."""

    def __init__(self, start: datetime | None = None):
        self.now = start or utcnow()

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **kwargs) -> datetime:
        """Move on by `timedelta(**kwargs)` (e.g. `advance(seconds=61)`); the new time."""
        self.now += timedelta(**kwargs)
        return self.now


class MonotonicClock:
    """Seconds that move only with `advance` or `sleep` (which also records each wait)."""

    def __init__(self, start: float = 1000.0):
        self.now = start
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> float:
        self.now += seconds
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds
