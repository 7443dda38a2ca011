"""The one rate limit, a token bucket, on a fake clock: `count` at once, then the wait; refill;
one at a time (burst 1) for pacing; `wait()` sleeps just long enough; a zero rate never limits."""

import threading

import pytest

from newsletter.ratelimit import Rate, RateLimiter


class FakeClock:
    """A monotonic clock that moves only when told to, or when `sleep` is called."""

    def __init__(self):
        self.now = 1000.0
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


@pytest.fixture
def clock():
    return FakeClock()


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
    allowed = []
    lock = threading.Lock()

    def hammer():
        for _ in range(50):
            if limiter.hit("same") is None:
                with lock:
                    allowed.append(1)

    threads = [threading.Thread(target=hammer) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(allowed) == 100  # 400 tries on a clock that stands still: exactly `count`
