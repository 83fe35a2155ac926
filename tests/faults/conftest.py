"""The fault group: tests that stop, pause or kill the real servers.

They run against a stack of their own (Kafka 25092, Cassandra 25042; below the ephemeral
port range, apart from the localstack tests' 29xxx), never the session's
shared one, so a paused Cassandra here cannot fail an unrelated test. The stack starts once
for the group, on first use, and stops when the group ends (package scope: the rest of the
suite never shares the machine with it), or is reused when one already answers there.
``FaultStack`` gives the tests the verbs they need: pause/resume (SIGSTOP/SIGCONT: the
process and its sockets stay, nothing answers), kill (SIGKILL) and start again.
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from app.localstack.layout import on_ports
from app.localstack.ports import port_open
from app.localstack.stack import LocalStack
from app.localstack.testing import ensure_stack
from app.settings import Settings

FAULT_PORTS = {"kafka": 25092, "controller": 25093, "cassandra": 25042, "storage": 25000}
# Another fault stack beside this one (two people running fault tests on one machine):
# HOOKSTREAM_TEST_FAULT_PORTS=kafka,controller,cassandra,storage, e.g. 39092,39093,39042,37000.
_OVERRIDE = os.environ.get("HOOKSTREAM_TEST_FAULT_PORTS")
if _OVERRIDE:
    FAULT_PORTS = dict(zip(FAULT_PORTS, map(int, _OVERRIDE.split(",")), strict=True))

pytestmark = [pytest.mark.faults, pytest.mark.integration]


@dataclass
class FaultStack:
    settings: Settings
    stack: LocalStack

    def pid(self, server: str) -> int:
        pid = self.stack.daemon(server).running_pid()
        if pid is None:
            raise AssertionError(f"{server} of the fault stack is not running")
        return pid

    def pause(self, server: str) -> None:
        """SIGSTOP the server's process group: connections stay open, nothing answers."""
        os.killpg(self.pid(server), signal.SIGSTOP)

    def resume(self, server: str) -> None:
        os.killpg(self.pid(server), signal.SIGCONT)

    def kill(self, server: str, timeout: float = 30.0) -> None:
        """SIGKILL the server (no SIGTERM first: no shutdown hook runs), wait until it is gone
        and its ports are free, so a ``start`` right after cannot find them busy."""
        daemon = self.stack.daemon(server)
        os.killpg(self.pid(server), signal.SIGKILL)
        ports = getattr(self.stack, server).ports.values()
        deadline = time.monotonic() + timeout
        while daemon.running_pid() is not None or any(port_open(p) for p in ports):
            if time.monotonic() > deadline:
                raise AssertionError(f"{server} still up {timeout}s after SIGKILL")
            time.sleep(0.1)
        daemon.stop(grace=0)  # reap the child and forget its pid file

    def start(self) -> None:
        """Start whatever is not running; returns once both servers answer their protocol."""
        self.stack.up()


@pytest.fixture(scope="package")
def fault_stack(request: pytest.FixtureRequest) -> Iterator[FaultStack]:
    settings = on_ports(Settings(), **FAULT_PORTS)
    stack = ensure_stack(settings, request.addfinalizer, fresh=True)
    fault = FaultStack(settings, stack)
    yield fault
    # Whatever a failed test left paused or stopped, leave the stack answering (or stopped by
    # ensure_stack's finalizer), never frozen.
    for server in ("kafka", "cassandra"):
        pid = stack.daemon(server).running_pid()
        if pid is not None:
            os.killpg(pid, signal.SIGCONT)
