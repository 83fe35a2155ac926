"""The ``scheduler`` role: run the delay forwarder until SIGTERM or SIGINT."""

from __future__ import annotations

import logging
import signal
import threading
from collections.abc import Iterator
from types import FrameType

from prometheus_client.core import REGISTRY, CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from app.scheduler.forwarder import Scheduler
from app.settings import Settings

log = logging.getLogger(__name__)


def main(settings: Settings) -> None:
    """Run the scheduler in this (main) thread until signalled, then stop cleanly.

    SIGTERM/SIGINT stop consuming, forward nothing more, commit what Kafka acknowledged and
    leave the group. Raises ``HandOffError`` if a forward failed (exit non-zero, restart).
    """
    stop = threading.Event()

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        log.info("received %s: stopping the scheduler", signal.Signals(signum).name)
        stop.set()

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGTERM, signal.SIGINT)}
    scheduler = Scheduler(settings)
    REGISTRY.register(SchedulerCollector(scheduler))
    try:
        scheduler.run(stop)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


class SchedulerCollector(Collector):
    """Reads the scheduler's own counters at scrape time (no bookkeeping on the hot loop)."""

    def __init__(self, scheduler: Scheduler) -> None:
        self._scheduler = scheduler

    def collect(self) -> Iterator[CounterMetricFamily | GaugeMetricFamily]:
        held = GaugeMetricFamily(
            "hookstream_retries_held", "Retry messages held until due, per retry topic.",
            labels=["topic"],
        )  # fmt: skip
        for topic, count in dict(self._scheduler.held).items():
            held.add_metric([topic], count)
        yield held
        yield CounterMetricFamily(
            "hookstream_retries_forwarded",
            "Retry messages forwarded to the redeliver topic and acknowledged.",
            value=self._scheduler.forwarded_total,
        )
        yield CounterMetricFamily(
            "hookstream_retries_hopped",
            "Retry messages due later than their tier holds, re-produced to the retry topic of "
            "the tier that fits what is left, and acknowledged.",
            value=self._scheduler.hopped_total,
        )
        lateness = self._scheduler.last_lateness_ms
        yield GaugeMetricFamily(
            "hookstream_retry_last_lateness_seconds",
            "Forward time minus due time of the latest forwarded retry.",
            value=(lateness or 0.0) / 1000,
        )
