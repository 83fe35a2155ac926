"""Per-webhook rate limits: a token bucket per webhook, in the worker that owns its partition.

``rate_limit`` (deliveries per second) fills the bucket continuously up to one second's worth
(the burst). An attempt takes a token before it is signed and sent; without one it **waits**
(never dropped, never failed) for the moment its token is due. Reservations are handed out in
arrival order, so waiting attempts go out evenly spaced at the rate. Attempts are keyed by
webhook id, so one worker sees all of a webhook's traffic and its limit holds overall.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass


@dataclass(slots=True)
class TokenBucket:
    rate: float  # tokens per second; also the capacity (one second of burst)
    tokens: float
    stamp: float  # monotonic time of ``tokens``

    def reserve(self, now: float) -> float:
        """Take one token; return how long to wait until it is due (0: at once). The
        balance may go negative: that is the queue of reservations ahead."""
        self.tokens = min(self.rate, self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now
        self.tokens -= 1
        return 0.0 if self.tokens >= 0 else -self.tokens / self.rate


class RateLimits:
    """The buckets of this worker's webhooks. One event loop; not thread-safe."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._buckets: dict[str, TokenBucket] = {}

    def reserve(self, webhook_id: str, rate: float) -> float:
        now = self._clock()
        bucket = self._buckets.get(webhook_id)
        if bucket is None or bucket.rate != rate:  # new, or the limit changed
            bucket = TokenBucket(rate, rate, now)
            self._buckets[webhook_id] = bucket
        return bucket.reserve(now)

    async def wait(self, webhook_id: str, rate: float) -> None:
        """Return when this attempt of the webhook may go out under ``rate`` per second."""
        delay = self.reserve(webhook_id, rate)
        if delay > 0:
            await asyncio.sleep(delay)
