"""The one backoff: base for the first retry, doubling, never above the cap."""

import pytest

from newsletter.backoff import delay


def test_the_first_retry_waits_the_base():
    assert delay(1, 30.0) == 30.0
    assert delay(1, 0.05) == 0.05


def test_each_retry_doubles_the_wait():
    assert [delay(attempt, 5.0) for attempt in range(1, 6)] == [5.0, 10.0, 20.0, 40.0, 80.0]


def test_the_wait_never_exceeds_the_cap():
    assert delay(7, 30.0, cap=3600.0) == 1920.0  # 30 * 2**6, under the cap
    assert delay(8, 30.0, cap=3600.0) == 3600.0  # 3840 would be over it
    assert delay(60, 30.0, cap=3600.0) == 3600.0


@pytest.mark.parametrize("attempt", [0, -1, -100])
def test_before_the_first_retry_there_is_no_wait(attempt):
    assert delay(attempt, 30.0) == 0.0
    assert delay(attempt, 30.0, cap=10.0) == 0.0


def test_a_huge_attempt_number_waits_the_cap_and_never_overflows():
    assert delay(5000, 30.0, cap=3600.0) == 3600.0
    assert delay(10**9, 0.05, cap=60.0) == 60.0
