"""The health port of a background role (recorder, replayer): ``/healthz`` (200 while the
process runs: the liveness probe), ``/readyz`` (200 while the role works, 503 with its reason
otherwise: the readiness probe) and Prometheus on every other path.

A small WSGI server in a daemon thread: the roles run their own loops in the main thread, and
probes and scrapes must answer whatever that loop is doing.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from socketserver import ThreadingMixIn
from typing import Any, Protocol
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from prometheus_client import make_wsgi_app

StartResponse = Callable[..., Any]


class Ready(Protocol):
    """What the port asks the role; both are read from the server's thread."""

    @property
    def ready(self) -> bool: ...

    @property
    def reason(self) -> str: ...


class HealthServer(ThreadingMixIn, WSGIServer):
    daemon_threads = True


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        """Scrapes and probes every few seconds are not log lines."""


def health_app(role: Ready) -> Callable[[dict[str, Any], StartResponse], Iterable[bytes]]:
    """The WSGI app: ``/healthz``, ``/readyz``, and Prometheus on every other path."""
    prometheus = make_wsgi_app()

    def app(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "")
        if path == "/healthz":
            start_response("200 OK", [("Content-Type", "text/plain")])
            return [b"ok\n"]
        if path == "/readyz":
            if role.ready:
                start_response("200 OK", [("Content-Type", "text/plain")])
                return [b"ready\n"]
            start_response("503 Service Unavailable", [("Content-Type", "text/plain")])
            return [f"not ready: {role.reason}\n".encode()]
        return prometheus(environ, start_response)  # type: ignore[no-any-return]

    return app


def serve_health(role: Ready, port: int, name: str) -> HealthServer | None:
    """Serve ``health_app`` on all interfaces in a daemon thread named ``<name>-health``
    (port 0: off)."""
    if not port:
        return None
    server = make_server(
        "0.0.0.0", port, health_app(role), server_class=HealthServer, handler_class=_QuietHandler
    )
    threading.Thread(target=server.serve_forever, name=f"{name}-health", daemon=True).start()
    return server  # type: ignore[return-value]
