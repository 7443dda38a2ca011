"""The one rate limit, a token bucket, on a fake clock: `count` at once, then the wait; refill;
one at a time (burst 1) for pacing; `wait()` sleeps just long enough; a zero rate never limits.
The shared one, on a real SQLite file: the same answers, one bucket for every connection (so
every worker), keys stored hashed, full buckets pruned, a hit undone with its transaction."""

import pytest

from newsletter.database import Database
from newsletter.ratelimit import Rate, RateLimiter, SharedRateLimiter
from tests import backends
from tests.race import race, race_each


@pytest.fixture
def clock(monotonic_clock):
    """The limits count seconds: here `clock` is the shared monotonic one (tests/clock.py)."""
    return monotonic_clock


def test_count_hits_are_allowed_then_the_wait_for_the_next_token(clock):
    limiter = RateLimiter(Rate(3, 60), clock=clock)
    assert [limiter.hit("1.2.3.4") for _ in range(3)] == [None, None, None]
    assert limiter.hit("1.2.3.4") == pytest.approx(20.0)  # one token per 60/3 seconds
    assert limiter.hit("1.2.3.4") == pytest.approx(20.0)  # a refused hit takes nothing
    assert limiter.hit("5.6.7.8") is None  # each key has its own bucket


def test_tokens_refill_at_count_per_period(clock):
    limiter = RateLimiter(Rate(3, 60), clock=clock)
    for _ in range(3):
        limiter.hit()
    clock.now += 10
    assert limiter.hit() == pytest.approx(10.0)  # half a token so far
    clock.now += 10
    assert limiter.hit() is None
    assert limiter.hit() == pytest.approx(20.0)
    clock.now += 3600  # a long pause refills the bucket, but no further than `count`
    assert [limiter.hit() for _ in range(4)] == [None, None, None, pytest.approx(20.0)]


def test_burst_1_paces_the_hits_evenly(clock):
    limiter = RateLimiter(Rate.per_second(8), burst=1, clock=clock)
    assert limiter.hit() is None
    assert limiter.hit() == 0.125  # no burst of 8 at once: one every 1/8 s
    clock.now += 0.0625
    assert limiter.hit() == 0.0625
    clock.now += 0.0625
    assert limiter.hit() is None
    assert limiter.hit() == 0.125


def test_wait_sleeps_until_a_token_is_taken(clock):
    limiter = RateLimiter(Rate.per_second(4), burst=1, clock=clock, sleep=clock.sleep)
    for _ in range(3):
        limiter.wait()
    assert clock.slept == [0.25, 0.25]  # the first at once, then one every quarter second
    assert clock.now == 1000.5


def test_wait_after_a_pause_does_not_sleep(clock):
    limiter = RateLimiter(Rate(2, 10), clock=clock, sleep=clock.sleep)
    limiter.wait()
    limiter.wait()
    limiter.wait()
    assert clock.slept == [pytest.approx(5.0)]
    clock.now += 10
    limiter.wait()
    assert clock.slept == [pytest.approx(5.0)]


def test_a_zero_rate_never_limits(clock):
    rate = Rate.per_second(0)
    assert rate.unlimited and not Rate(1, 3600).unlimited
    limiter = RateLimiter(rate, clock=clock, sleep=clock.sleep)
    assert all(limiter.hit("k") is None for _ in range(10_000))
    limiter.wait("k")
    assert clock.slept == []


def test_rate_is_a_value():
    assert Rate.per_second(5) == Rate(5, 1.0)
    assert str(Rate(20, 3600)) == "20/3600s"
    assert hash(Rate(20, 3600)) == hash(Rate(20, 3600))


def test_threads_share_a_bucket_without_losing_or_inventing_tokens(clock):
    limiter = RateLimiter(Rate(100, 3600), clock=clock)

    def hammer():
        return sum(limiter.hit("same") is None for _ in range(50))

    allowed = race(*[hammer] * 8)
    assert sum(allowed) == 100  # 400 tries on a clock that stands still: exactly `count`


# The shared limiter: buckets in the database -----------------------------------------------------
SECRET = "rate-limit-tests-secret"


@pytest.fixture
def database(database_target):
    database = Database(database_target)
    yield database
    database.close()


def shared(database, rate, clock, *, scope="subscribe", secret=SECRET):
    return SharedRateLimiter(database, rate, scope=scope, secret=secret, clock=clock)


def rows(database):
    return backends.query(database.target, "SELECT scope, key, tokens, updated FROM rate_limits")


def test_shared_count_hits_then_the_wait_then_the_refill(database, clock):
    limiter = shared(database, Rate(3, 60), clock)
    assert [limiter.hit("1.2.3.4") for _ in range(3)] == [None, None, None]
    assert limiter.hit("1.2.3.4") == pytest.approx(20.0)
    assert limiter.hit("1.2.3.4") == pytest.approx(20.0)  # a refused hit takes nothing
    assert limiter.hit("5.6.7.8") is None  # each key has its own bucket
    clock.now += 10
    assert limiter.hit("1.2.3.4") == pytest.approx(10.0)
    clock.now += 10
    assert limiter.hit("1.2.3.4") is None
    assert limiter.hit("1.2.3.4") == pytest.approx(20.0)


def test_every_connection_shares_one_bucket(database, clock, tmp_path):
    """Two Database objects (as two workers have), four threads: exactly `count` get through."""
    other = Database(database.target)
    limiters = [shared(database, Rate(20, 3600), clock), shared(other, Rate(20, 3600), clock)]

    def hammer(n):
        return sum(limiters[n % 2].hit("203.0.113.1") is None for _ in range(25))

    try:
        allowed = race_each(hammer, 4)
    finally:
        other.close()
    assert sum(allowed) == 20  # 100 tries over two connections, a clock that stands still


def test_peek_says_the_wait_and_takes_nothing(database, clock):
    limiter = shared(database, Rate(2, 60), clock)
    assert limiter.peek("k") is None
    assert rows(database) == []  # a peek writes nothing
    assert [limiter.hit("k"), limiter.peek("k"), limiter.hit("k")] == [None, None, None]
    assert limiter.peek("k") == pytest.approx(30.0)
    database.read_only(True)  # a read: it works on a read-only connection
    try:
        assert limiter.peek("k") == pytest.approx(30.0)
    finally:
        database.read_only(False)
    assert limiter.hit("k") == pytest.approx(30.0)


def test_scopes_keep_limits_apart(database, clock):
    form = shared(database, Rate(1, 60), clock, scope="subscribe")
    hooks = shared(database, Rate(1, 60), clock, scope="webhooks")
    assert form.hit("198.51.100.7") is None
    assert form.hit("198.51.100.7") is not None
    assert hooks.hit("198.51.100.7") is None


def test_keys_are_stored_as_a_keyed_hash_never_the_address(database, clock):
    limiter = shared(database, Rate(1, 60), clock)
    assert limiter.hit("198.51.100.7") is None
    assert limiter.hit("2001:db8:1:2::/64") is None
    stored = rows(database)
    assert len(stored) == 2
    for scope, key, _tokens, _updated in stored:
        assert scope == "subscribe" and isinstance(key, bytes) and len(key) == 16
        assert b"198.51.100" not in key and b"2001:db8" not in key
    dumped = repr(backends.contents(database.target))
    assert "198.51.100" not in dumped and "2001:db8" not in dumped
    other_secret = shared(database, Rate(1, 60), clock, secret="another secret")
    assert other_secret.hit("198.51.100.7") is None  # another key: the hash is keyed


def test_full_buckets_are_pruned_the_others_kept(database, clock):
    limiter = shared(database, Rate(2, 60), clock)  # a bucket is full again 60 s after its hit
    assert limiter.hit("old") is None
    clock.now += 30
    assert limiter.hit("recent") is None and limiter.hit("recent") is None
    clock.now += 31  # "old" is full again: the same as no bucket
    assert limiter.hit("new") is None
    assert len(rows(database)) == 2
    assert limiter.hit("recent") is None  # 1.03 tokens back in 31 s ...
    assert limiter.hit("recent") is not None  # ... not 2: its bucket was kept
    assert limiter.hit("old") is None and limiter.hit("old") is None  # a full bucket again


def test_a_hit_inside_a_transaction_is_undone_with_it(database, clock):
    limiter = shared(database, Rate(1, 60), clock)
    with pytest.raises(RuntimeError):
        with database.transaction():
            assert limiter.hit("k") is None
            raise RuntimeError("the insert beside it failed")
    assert rows(database) == []
    assert limiter.hit("k") is None
    assert limiter.hit("k") is not None


def test_a_shared_zero_rate_never_limits_and_stores_nothing(database, clock):
    limiter = shared(database, Rate(0), clock)
    assert all(limiter.hit("k") is None for _ in range(100))
    assert limiter.peek("k") is None and rows(database) == []


def test_a_shared_limiter_needs_a_secret_and_a_usable_burst(database, clock):
    with pytest.raises(ValueError):
        shared(database, Rate(5, 60), clock, secret="")
    with pytest.raises(ValueError):
        SharedRateLimiter(database, Rate(5, 60), scope="s", secret=SECRET, burst=0.5)
