"""The management API's rate limit: a token bucket per API key, per API replica.

Each key may make ``api.rate_limit`` requests per second on average, with bursts up to
``api.rate_burst``; past that a request gets 429 with ``Retry-After`` (whole seconds, at least
1) and the one error shape. The buckets live in each replica's memory, so behind N replicas a
key's ceiling is N times the setting: the limit protects Cassandra and the replicas from one
runaway client, it is not a billing meter. 0 turns it off.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable

from app.api.errors import ApiError


class RateLimited(ApiError):
    def __init__(self, retry_after_s: int) -> None:
        super().__init__(
            429,
            f"too many requests for this API key; retry in {retry_after_s} s",
            headers={"Retry-After": str(retry_after_s)},
        )
        self.retry_after_s = retry_after_s


class RateLimiter:
    """Token buckets by key. Not thread-safe: one event loop owns it."""

    MAX_KEYS = 100_000  # buckets kept; beyond, the fullest (idle) ones are forgotten

    def __init__(
        self, rate: float, burst: int, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.rate = rate
        self.burst = max(1, burst)
        self._clock = clock
        self._buckets: dict[str, tuple[float, float]] = {}  # key -> (tokens, at)

    def take(self, key: str) -> None:
        """Spend one token of ``key``'s bucket, or raise RateLimited."""
        if self.rate <= 0:
            return
        now = self._clock()
        tokens, at = self._buckets.get(key, (float(self.burst), now))
        tokens = min(float(self.burst), tokens + (now - at) * self.rate)
        if tokens < 1.0:
            self._buckets[key] = (tokens, now)
            raise RateLimited(max(1, math.ceil((1.0 - tokens) / self.rate)))
        if len(self._buckets) >= self.MAX_KEYS and key not in self._buckets:
            self._buckets.clear()  # only idle keys lose anything: a full bucket again
        self._buckets[key] = (tokens - 1.0, now)
