"""The one backoff: how long to wait before attempt number `attempt` (1 = the first retry).

`delay(attempt, base, cap)` is `base * 2 ** (attempt - 1)`, at most `cap` seconds. Used by the
confirmation queue (retries of one email), the announcer's retry passes, and nothing else:
feed fetching retries through urllib3's `Retry`, which has its own backoff_factor.
"""

from __future__ import annotations


def delay(attempt: int, base: float, cap: float = float("inf")) -> float:
    if attempt < 1:
        return 0.0
    return min(base * 2.0 ** min(attempt - 1, 60), cap)  # 2^60: past any cap, never overflows


__all__ = ["delay"]
