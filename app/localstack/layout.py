"""Where the local stack lives and which ports it uses, derived once from settings.

The run directory is named after the four ports (``k9092-c9093-n9042-s7000``), so two stacks on
different ports never share data, and the same ports always find their data again.
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from string import Template

from app.errors import StackError
from app.settings import Settings

# The servers bind 127.0.0.1 only; a setting naming another host is not a local stack.
_LOOPBACK = {"127.0.0.1", "localhost"}


def _host_port(address: str, what: str) -> tuple[str, int]:
    host, sep, port = address.strip().rpartition(":")
    if not sep or not port.isdigit():
        raise StackError(f"{what}: {address!r} is not host:port")
    return host, int(port)


@dataclass(frozen=True, slots=True)
class Layout:
    home: Path
    run_dir: Path
    kafka_port: int
    controller_port: int
    cassandra_port: int
    storage_port: int

    @classmethod
    def from_settings(cls, settings: Settings, name: str | None = None) -> Layout:
        first = settings.kafka.bootstrap_servers.split(",")[0]
        kafka_host, kafka_port = _host_port(first, "HOOKSTREAM_KAFKA__BOOTSTRAP_SERVERS")
        if kafka_host not in _LOOPBACK:
            raise StackError(
                f"the local stack listens on 127.0.0.1, but the Kafka bootstrap server is {first}"
            )
        cassandra_host = settings.cassandra.hosts[0] if settings.cassandra.hosts else ""
        if cassandra_host not in _LOOPBACK:
            raise StackError(
                "the local stack listens on 127.0.0.1, "
                f"but the first Cassandra host is {cassandra_host!r}"
            )
        stack = settings.stack
        ports = {
            "Kafka": kafka_port,
            "Kafka controller": stack.kafka_controller_port,
            "Cassandra native": settings.cassandra.port,
            "Cassandra storage": stack.cassandra_storage_port,
        }
        if len(set(ports.values())) != len(ports):
            raise StackError(f"the local stack needs four different ports, got {ports}")
        home = stack.home.expanduser().resolve()
        name = name or (
            f"k{kafka_port}-c{stack.kafka_controller_port}"
            f"-n{settings.cassandra.port}-s{stack.cassandra_storage_port}"
        )
        return cls(
            home=home,
            run_dir=home / "run" / name,
            kafka_port=kafka_port,
            controller_port=stack.kafka_controller_port,
            cassandra_port=settings.cassandra.port,
            storage_port=stack.cassandra_storage_port,
        )

    @property
    def jars_dir(self) -> Path:
        return self.home / "jars"

    @property
    def lock_file(self) -> Path:
        # Beside the run dir, not in it, so ``down(wipe=True)`` can delete the dir while locked.
        return self.run_dir.with_name(self.run_dir.name + ".lock")


def render(template: str, **values: object) -> str:
    """A file of ``app/localstack/templates`` with its ``${name}`` fields filled in."""
    text = resources.files("app.localstack").joinpath("templates", template).read_text()
    # substitute(), not safe_substitute(): a missing value must fail here, not in the JVM.
    return Template(text).substitute({k: str(v) for k, v in values.items()})


def on_ports(
    settings: Settings, *, kafka: int, controller: int, cassandra: int, storage: int
) -> Settings:
    """``settings`` with a local stack on other loopback ports (tests, the bench)."""
    return settings.model_copy(
        update={
            "kafka": settings.kafka.model_copy(update={"bootstrap_servers": f"127.0.0.1:{kafka}"}),
            "cassandra": settings.cassandra.model_copy(
                update={"hosts": ["127.0.0.1"], "port": cassandra}
            ),
            "stack": settings.stack.model_copy(
                update={"kafka_controller_port": controller, "cassandra_storage_port": storage}
            ),
        }
    )
