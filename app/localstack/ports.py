"""Is a loopback TCP port taken, and waiting for one to open."""

from __future__ import annotations

import errno
import socket
import time


def port_busy(port: int) -> bool:
    """True when something accepts on 127.0.0.1:``port`` or holds it bound.

    A connect alone misses a bound socket that is not listening yet; a bind alone misses nothing
    but needs SO_REUSEADDR, as the JVM uses, so a port in TIME_WAIT does not count as busy.
    """
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.settimeout(0.5)
        if probe.connect_ex(("127.0.0.1", port)) == 0:
            return True
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(("127.0.0.1", port))
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                return True
            raise
    return False


def port_open(port: int, timeout: float = 0.5) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout):
            return True
    except OSError:
        return False


def poll_interval(started: float) -> float:
    """Short polls while a server is probably still booting, then gentler ones."""
    return 0.2 if time.monotonic() - started < 10 else 0.5
