"""The ``recorder`` role: run the recorder until SIGTERM or SIGINT, with its health and
metrics endpoint.

One port (``HOOKSTREAM_RECORDER__METRICS_PORT``) serves ``/metrics`` (Prometheus),
``/healthz`` (200 while the process runs: the liveness probe) and ``/readyz`` (200 while the
recorder writes or idles connected, 503 with the reason while it holds through a Cassandra
outage or starts: the readiness probe and the operator's question "is the log behind?").
"""

from __future__ import annotations

import logging
import signal
import threading
from types import FrameType

from app import heap, priority
from app.kafka import wait_for_topics
from app.probes import serve_health
from app.recorder.recorder import Recorder
from app.settings import Settings

log = logging.getLogger(__name__)


def main(settings: Settings) -> None:
    """Run the recorder in this (main) thread until signalled, then stop cleanly.

    SIGTERM/SIGINT: finish the batch being written (bounded), commit it, leave the group.
    """
    priority.lower(settings.recorder.nice)  # before its threads start: they inherit it
    stop = threading.Event()

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        log.info("received %s: stopping the recorder", signal.Signals(signum).name)
        stop.set()

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGTERM, signal.SIGINT)}
    recorder = Recorder(settings)
    # A group that joins before the broker lists its topic is assigned nothing for minutes.
    wait_for_topics(settings, [recorder.topics.records])
    server = serve_health(recorder, settings.recorder.metrics_port, "recorder")
    heap.settle()  # start-up's objects frozen; young collections every 7,000 (app.heap)
    try:
        recorder.run(stop)
    finally:
        if server is not None:
            server.shutdown()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
