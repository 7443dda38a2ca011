"""The one rate limit: a token bucket, in one vocabulary (`Rate`: `count` per `period` seconds).

Contract:
- `Rate(count, period)` is a value (the settings parse "20/hour" into one); `Rate.per_second(n)`
  is n per second; a rate with `count` 0 means no limit.
- `RateLimiter(rate, burst=None)`: one bucket per key, holding up to `burst` tokens (default:
  `rate.count`), refilled at `count / period` per second. `hit(key)` takes a token and returns
  None, or, when none is left, the seconds until there will be (taking nothing). `wait(key)`
  blocks until it has taken one. Thread-safe; in memory, per process.
Used for the subscribe form (per client network: 20/hour) and the SMTP pacing (messages per
second across the sending workers, burst 1).
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass


@dataclass(frozen=True)
class Rate:
    """At most `count` per `period` seconds."""

    count: float
    period: float = 1.0

    @classmethod
    def per_second(cls, count: float) -> Rate:
        return cls(count, 1.0)

    @property
    def unlimited(self) -> bool:
        return not self.count

    def __str__(self) -> str:
        return f"{self.count:g}/{self.period:g}s"


class RateLimiter:
    MAX_KEYS = 50_000

    def __init__(self, rate: Rate, *, burst: float | None = None, clock=time.monotonic,
                 sleep=time.sleep):  # fmt: skip
        self.rate = rate
        self.capacity = float(rate.count if burst is None else burst)
        self.per_second = rate.count / rate.period if rate.count else 0.0
        self.clock, self.sleep = clock, sleep
        self._buckets: dict[str, tuple[float, float]] = {}
        self._lock = threading.Lock()

    def hit(self, key: str = "") -> float | None:
        """Take one token; None if allowed, else the seconds until one is available."""
        if self.rate.unlimited:
            return None
        now = self.clock()
        with self._lock:
            tokens, last = self._buckets.get(key, (self.capacity, now))
            tokens = min(self.capacity, tokens + (now - last) * self.per_second)
            if tokens < 1:
                self._buckets[key] = (tokens, now)
                return (1 - tokens) / self.per_second
            self._buckets[key] = (tokens - 1, now)
            if len(self._buckets) > self.MAX_KEYS:
                refill = self.capacity / self.per_second
                self._buckets = {k: v for k, v in self._buckets.items() if now - v[1] < refill}
        return None

    def wait(self, key: str = "") -> None:
        """Block until a token is taken."""
        while (seconds := self.hit(key)) is not None:
            self.sleep(seconds)


__all__ = ["Rate", "RateLimiter"]
