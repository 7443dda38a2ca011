"""The one rate limit: a token bucket, in one vocabulary (`Rate`: `count` per `period` seconds).

Contract:
- `Rate(count, period)` is a value (the settings parse "20/hour" into one); `Rate.per_second(n)`
  is n per second; a rate with `count` 0 means no limit.
- `RateLimiter(rate, burst=None)`: one bucket per key, holding up to `burst` tokens (default:
  `rate.count`), refilled at `count / period` per second. `hit(key)` takes a token and returns
  None, or, when none is left, the seconds until there will be (taking nothing). `wait(key)`
  blocks until it has taken one. Thread-safe; in memory, per process.
- `SharedRateLimiter(database, rate, *, scope, secret, burst=None)`: the same bucket, kept in
  the database's `rate_limits` table (migration 0007), so every worker and every host on the
  same database shares it. `hit(key)` as above, in one statement (one row written) inside the
  caller's write transaction when there is one, else in a short one of its own; `peek(key)`
  says the wait without taking a token (a read). Keys are stored as a keyed hash (HMAC-SHA256
  with `secret`, 16 bytes), never as given; `scope` keeps limits apart in the one table. A
  bucket full again (untouched for `burst / rate` seconds) is the same as none: each process
  deletes those of its scope at most once a minute. The clock is the wall clock (`time.time`),
  the one every process and host shares. `database` is duck-typed (`transaction()`, a context
  manager yielding a sqlite3 connection, and `db`, this thread's connection): this base module
  imports no other.
Used for the subscribe form (shared, scope "subscribe": per client network, 20/hour; the webhooks'
refusal counting takes a scope of its own) and the SMTP pacing (in memory, per process by design:
messages per second across that process's sending workers, burst 1).
"""

from __future__ import annotations

import hashlib
import hmac
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


# One statement takes a token from an existing bucket: refilled for the time since its last
# token, it loses one only when it then holds at least one; RETURNING gives a row exactly when a
# token was taken. Only when none is returned does hit() look further: no bucket yet (a new one
# starts full, less the token taken) or a refusal (the wait). One row, one page written.
# (Two-argument min and max are SQLite's spelling of PostgreSQL's least and greatest.)
_TAKE = """
UPDATE rate_limits SET
    tokens = {least}(:capacity, tokens + {greatest}(0, :now - updated) * :per_second) - 1,
    updated = {greatest}(updated, :now)
WHERE scope = :scope AND key = :key
    AND {least}(:capacity, tokens + {greatest}(0, :now - updated) * :per_second) >= 1
RETURNING tokens
"""
_SPELLING = {
    "sqlite": {"least": "min", "greatest": "max"},
    "postgresql": {"least": "least", "greatest": "greatest"},
}
_NEW = (
    "INSERT INTO rate_limits (scope, key, tokens, updated)"
    " VALUES (:scope, :key, :capacity - 1, :now)"
    " ON CONFLICT (scope, key) DO NOTHING RETURNING tokens"
)
_READ = "SELECT tokens, updated FROM rate_limits WHERE scope = :scope AND key = :key"
_PRUNE = "DELETE FROM rate_limits WHERE scope = :scope AND updated < :full_before"


class SharedRateLimiter:
    """`RateLimiter`'s bucket in the database's `rate_limits` table: one limit for every worker
    and host that uses the database (see the module's contract)."""

    PRUNE_EVERY = 60.0  # seconds between one process's sweeps of its scope's full buckets

    def __init__(self, database, rate: Rate, *, scope: str, secret: str | bytes,
                 burst: float | None = None, clock=time.time):  # fmt: skip
        self.database = database
        self.rate, self.scope, self.clock = rate, scope, clock
        self.capacity = float(rate.count if burst is None else burst)
        self.per_second = rate.count / rate.period if rate.count else 0.0
        if not rate.unlimited and self.capacity < 1:
            raise ValueError(f"a burst of {self.capacity:g} never allows a request: at least 1")
        if not secret:
            raise ValueError("a shared rate limit hashes its keys with a secret: give one")
        self._secret = secret.encode() if isinstance(secret, str) else bytes(secret)
        self._next_prune = 0.0
        self._take = _TAKE.format(**_SPELLING[database.dialect])

    def key(self, client: str) -> bytes:
        """What is stored for `client`: a keyed hash, so the table never holds an address."""
        digest = hmac.new(self._secret, client.encode("utf-8", "surrogatepass"), hashlib.sha256)
        return digest.digest()[:16]

    def hit(self, key: str = "") -> float | None:
        """Take one token; None if allowed, else the seconds until one is available (taking
        nothing). Inside the caller's transaction, if this thread has one open."""
        if self.rate.unlimited:
            return None
        now = self.clock()
        params = {"scope": self.scope, "key": self.key(key), "capacity": self.capacity,
                  "now": now, "per_second": self.per_second}  # fmt: skip
        # Safe side by side (PostgreSQL runs it without the writer lock): the take is one
        # statement on one row. When it takes nothing, there is no bucket yet (the insert makes
        # a full one, less this token) or there is one, perhaps made meanwhile by another
        # first hit (the insert waits for it, then does nothing): then one more take decides.
        with self.database.transaction(concurrent=True) as db:
            wait = None
            if db.execute(self._take, params).fetchone() is None:
                if db.execute(_NEW, params).fetchone() is None:
                    if db.execute(self._take, params).fetchone() is None:
                        wait = self._wait(db.execute(_READ, params).fetchone(), now)
            if now >= self._next_prune:
                self._next_prune = now + self.PRUNE_EVERY
                full_before = now - self.capacity / self.per_second
                db.execute(_PRUNE, {"scope": self.scope, "full_before": full_before})
        return wait

    def peek(self, key: str = "") -> float | None:
        """None if `hit(key)` would take a token now, else the seconds until it would. A read:
        takes nothing, writes nothing."""
        if self.rate.unlimited:
            return None
        now = self.clock()
        row = self.database.db.execute(_READ, {"scope": self.scope, "key": self.key(key)})
        return self._wait(row.fetchone(), now)

    def _wait(self, row, now: float) -> float | None:
        if row is None:  # no bucket: a full one
            return None
        tokens, updated = row[0], row[1]
        tokens = min(self.capacity, tokens + max(0.0, now - updated) * self.per_second)
        return None if tokens >= 1 else (1 - tokens) / self.per_second


__all__ = ["Rate", "RateLimiter", "SharedRateLimiter"]
