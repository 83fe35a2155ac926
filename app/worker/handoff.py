"""Hand-offs that wait out an outage instead of failing the worker.

A hand-off is the durable part of a step: the attempt messages of a match, the record and
retry message of an attempt. When Kafka or Cassandra refuses it (``HandOffError``), the
message it belongs to stays unacknowledged and the hand-off is tried again with a capped
backoff until it succeeds: an outage of a dependency is a pause, never a crash. Meanwhile
the worker's admission bound stops new work, so memory stays bounded, and ``Health``
reports not-ready (the ``hookstream_worker_ready`` gauge).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import TypeVar

from app import metrics
from app.errors import HandOffError

log = logging.getLogger(__name__)

T = TypeVar("T")

FIRST_BACKOFF_S = 0.2
MAX_BACKOFF_S = 5.0


class Health:
    """Ready when no hand-off is failing and (``outage``, e.g. the producer's "all brokers
    down" flag) no dependency is known to be down. Read at scrape time."""

    def __init__(self, outage: Callable[[], bool] = lambda: False) -> None:
        self.failing = 0
        self._outage = outage
        metrics.WORKER_READY.set_function(lambda: 1.0 if self.ready else 0.0)

    @property
    def ready(self) -> bool:
        return self.failing == 0 and not self._outage()

    def change(self, delta: int, why: str) -> None:
        was_ready = self.failing == 0
        self.failing += delta
        if was_ready and not self.ready:
            log.warning("worker holding: %s; retrying until it is back", why)
        elif self.failing == 0 and not was_ready:
            log.info("worker resumed: hand-offs succeed again")


def backoff(attempt: int) -> float:
    """Seconds before hand-off retry ``attempt`` (1, 2, ...): doubling, capped."""
    return min(MAX_BACKOFF_S, FIRST_BACKOFF_S * 2.0 ** (attempt - 1))


async def hand_off(health: Health, what: Callable[[], Awaitable[T]]) -> T:
    """Run ``what`` until it does not raise ``HandOffError``; any other error propagates."""
    tries = 0
    try:
        while True:
            try:
                return await what()
            except HandOffError as exc:
                tries += 1
                if tries == 1:
                    health.change(+1, str(exc))
                await asyncio.sleep(backoff(tries))
    finally:
        if tries:
            health.change(-1, "")
