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
from collections.abc import Callable, Iterable
from socketserver import ThreadingMixIn
from types import FrameType
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from prometheus_client import make_wsgi_app

from app.kafka import wait_for_topics
from app.recorder.recorder import Recorder
from app.settings import Settings

log = logging.getLogger(__name__)

StartResponse = Callable[..., Any]


def main(settings: Settings) -> None:
    """Run the recorder in this (main) thread until signalled, then stop cleanly.

    SIGTERM/SIGINT: finish the batch being written (bounded), commit it, leave the group.
    """
    stop = threading.Event()

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        log.info("received %s: stopping the recorder", signal.Signals(signum).name)
        stop.set()

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGTERM, signal.SIGINT)}
    recorder = Recorder(settings)
    # A group that joins before the broker lists its topic is assigned nothing for minutes.
    wait_for_topics(settings, [recorder.topics.records])
    server = serve_health(recorder, settings.recorder.metrics_port)
    try:
        recorder.run(stop)
    finally:
        if server is not None:
            server.shutdown()
        for sig, handler in previous.items():
            signal.signal(sig, handler)


class _Server(ThreadingMixIn, WSGIServer):
    daemon_threads = True


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        """Scrapes and probes every few seconds are not log lines."""


def health_app(recorder: Recorder) -> Callable[[dict[str, Any], StartResponse], Iterable[bytes]]:
    """The WSGI app: ``/healthz``, ``/readyz``, and Prometheus on every other path."""
    metrics = make_wsgi_app()

    def app(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "")
        if path == "/healthz":
            start_response("200 OK", [("Content-Type", "text/plain")])
            return [b"ok\n"]
        if path == "/readyz":
            if recorder.ready:
                start_response("200 OK", [("Content-Type", "text/plain")])
                return [b"ready\n"]
            start_response("503 Service Unavailable", [("Content-Type", "text/plain")])
            return [f"not ready: {recorder.reason}\n".encode()]
        return metrics(environ, start_response)  # type: ignore[no-any-return]

    return app


def serve_health(recorder: Recorder, port: int) -> _Server | None:
    """Serve ``health_app`` on all interfaces in a daemon thread (0: off)."""
    if not port:
        return None
    server = make_server(
        "0.0.0.0", port, health_app(recorder), server_class=_Server, handler_class=_QuietHandler
    )
    threading.Thread(target=server.serve_forever, name="recorder-health", daemon=True).start()
    return server  # type: ignore[return-value]
