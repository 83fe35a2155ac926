"""The local stack on the bench's own ports (Kafka 39092, controller 39093, Cassandra 39042,
storage 37000), apart from the test suite's (19092/19042) and the dev stack's (9092/9042).

Reused when it already answers; started otherwise, and then stopped at the end of the run.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass

from app.localstack import LocalStack
from app.localstack.layout import on_ports
from app.settings import Settings

KAFKA_PORT = int(os.environ.get("BENCH_KAFKA_PORT", "39092"))
CONTROLLER_PORT = int(os.environ.get("BENCH_KAFKA_CONTROLLER_PORT", "39093"))
CASSANDRA_PORT = int(os.environ.get("BENCH_CASSANDRA_PORT", "39042"))
STORAGE_PORT = int(os.environ.get("BENCH_CASSANDRA_STORAGE_PORT", "37000"))


def bench_settings() -> Settings:
    return on_ports(
        Settings(),
        kafka=KAFKA_PORT,
        controller=CONTROLLER_PORT,
        cassandra=CASSANDRA_PORT,
        storage=STORAGE_PORT,
    )


@dataclass
class BenchStack:
    settings: Settings
    started_here: bool = False

    @classmethod
    def up(cls, say: Callable[[str], None] = print) -> BenchStack:
        settings = bench_settings()
        stack = LocalStack(settings)
        if stack.is_ready():
            say(f"reusing the local stack on {settings.kafka.bootstrap_servers}")
            return cls(settings, started_here=False)
        say(f"starting the local stack on {settings.kafka.bootstrap_servers} (about a minute)")
        stack.up(say)
        return cls(settings, started_here=True)

    def down(self, say: Callable[[str], None] = print) -> None:
        if self.started_here:
            say("stopping the local stack the bench started")
            LocalStack(self.settings).down(progress=say)


def server_cpu(settings: Settings) -> dict[str, tuple[float, float]]:
    """(utime, stime) of the stack's Kafka and Cassandra processes, from ``/proc``: the
    servers' share of a delivery's CPU (the roles' own is ``Pipeline.cpu_roles``). A server
    not found (not ours, or stopped) is left out."""
    from bench.pipeline import cpu_times

    stack = LocalStack(settings)
    out: dict[str, tuple[float, float]] = {}
    for name in ("cassandra", "kafka"):
        pid = stack.daemon(name).running_pid()
        if pid is not None:
            try:
                out[name] = cpu_times(pid)
            except OSError:
                continue
    return out
