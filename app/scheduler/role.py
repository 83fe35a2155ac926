"""The ``scheduler`` role: run the delay forwarder until SIGTERM or SIGINT."""

from __future__ import annotations

import logging
import signal
import threading
from types import FrameType

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
    try:
        Scheduler(settings).run(stop)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
