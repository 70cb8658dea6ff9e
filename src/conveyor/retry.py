"""Retry policy: exponential backoff with jitter, capped."""

from __future__ import annotations

import random

MAX_BACKOFF_SECONDS = 3600.0
JITTER = 0.2


def backoff_delay(
    attempt: int,
    base: float,
    *,
    cap: float = MAX_BACKOFF_SECONDS,
    rng: random.Random | None = None,
) -> float:
    """Seconds to wait before the retry that follows failed attempt number `attempt` (1-based).

    About `base * 2**(attempt-1)`, within +/- 20 % so that jobs failing together do not
    retry together, and never more than `cap`.
    """
    if attempt < 1:
        raise ValueError(f"attempt must be >= 1, got {attempt}")
    exponent = min(attempt - 1, 62)
    delay = min(cap, base * (2.0**exponent))
    spread = (rng or random).uniform(1.0 - JITTER, 1.0 + JITTER)
    return min(cap, delay * spread)


def should_retry(attempt: int, max_attempts: int) -> bool:
    return attempt < max_attempts
