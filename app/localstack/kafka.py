"""Apache Kafka 4.x as one KRaft node (broker + controller): config, storage format, command, probe.

Readiness is a real protocol answer, not a log line: the broker serves metadata and the
controller creates (or has created) the tiny topic ``__hookstream_ready``.
"""

from __future__ import annotations

import base64
import subprocess
import uuid
from pathlib import Path
from typing import Any

from app.errors import StackError
from app.localstack.java import server_env
from app.localstack.layout import Layout, render
from app.localstack.secure import SecureProfile, override_properties

READY_TOPIC = "__hookstream_ready"
READY_TIMEOUT = 120.0
STOP_GRACE = 30.0
# kafka-run-class.sh's KAFKA_JVM_PERFORMANCE_OPTS (MaxInlineLevel=15 is the default since JDK 14).
_JVM_FLAGS = [
    "-server", "-XX:+UseG1GC", "-XX:MaxGCPauseMillis=20",
    "-XX:InitiatingHeapOccupancyPercent=35", "-XX:+ExplicitGCInvokesConcurrent",
    "-Djava.awt.headless=true",
]  # fmt: skip


def _new_cluster_id() -> str:
    # Kafka's Uuid.randomUuid().toString(): 16 bytes, base64url, no padding. A leading '-'
    # would read as an option on StorageTool's command line.
    while True:
        candidate = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        if not candidate.startswith("-"):
            return candidate


def _read_properties(path: Path) -> dict[str, str]:
    pairs = {}
    for line in path.read_text().splitlines():
        key, sep, value = line.partition("=")
        if sep and not line.lstrip().startswith("#"):
            pairs[key.strip()] = value.strip()
    return pairs


class KafkaServer:
    name = "kafka"
    ready_timeout = READY_TIMEOUT
    stop_grace = STOP_GRACE

    def __init__(
        self,
        layout: Layout,
        heap: str,
        secure: SecureProfile | None = None,
        client: dict[str, Any] | None = None,
    ) -> None:
        """``secure``: a SASL_SSL listener instead of PLAINTEXT; ``client``: the
        confluent-kafka config the readiness probe connects with (``app.kafka.client_config``)."""
        self.dir = layout.run_dir / "kafka"
        self.secure = secure
        self._client = client or {"bootstrap.servers": f"127.0.0.1:{layout.kafka_port}"}
        self.data_dir = self.dir / "data"
        self.port = layout.kafka_port
        self.controller_port = layout.controller_port
        self.ports = {"kafka": layout.kafka_port, "controller": layout.controller_port}
        self.heap = heap
        self._config = self.dir / "server.properties"
        self._log4j = self.dir / "log4j2.properties"
        # Persisted beside the data, so a re-format after a wipe of data/ only gets a new id.
        self._cluster_id_file = self.dir / "cluster.id"

    def clear_stale_files(self) -> None:
        """Called only when no Kafka of ours runs: a crash leaves ``.lock`` in the log dir."""
        (self.data_dir / ".lock").unlink(missing_ok=True)

    def check_data(self) -> None:
        """Refuse a data dir formatted for another cluster or node, or data without identity.

        Not wiped automatically: the data may hold someone's topics, and a wipe is one command
        away (the message names it).
        """
        meta = self.data_dir / "meta.properties"
        wipe_hint = "run `hookstream stack down --wipe` to start from empty data"
        if meta.is_file():
            props = _read_properties(meta)
            expected = (
                self._cluster_id_file.read_text().strip()
                if self._cluster_id_file.is_file()
                else props.get("cluster.id", "")
            )
            if props.get("node.id") != "1" or props.get("cluster.id") != expected:
                raise StackError(
                    f"Kafka data in {self.data_dir} belongs to another cluster "
                    f"(cluster.id={props.get('cluster.id')}, node.id={props.get('node.id')}; "
                    f"expected {expected}, node 1); {wipe_hint}"
                )
            self._cluster_id_file.write_text(expected + "\n")
        # Data without meta.properties: formatting over it would pair old metadata with a new
        # cluster id.
        elif self.data_dir.is_dir() and any(p.name != ".lock" for p in self.data_dir.iterdir()):
            raise StackError(f"Kafka data in {self.data_dir} has no meta.properties; {wipe_hint}")

    def prepare(self, java: str, lib: Path, log_file: Path) -> None:
        """Write the config and format the storage once; refuse data of another cluster."""
        self.data_dir.mkdir(parents=True, exist_ok=True)
        config = render(
            "server.properties",
            kafka_port=self.port,
            controller_port=self.controller_port,
            data_dir=self.data_dir,
        )
        if self.secure is not None:
            config = override_properties(
                config, self.secure.kafka_properties(self.port, self.controller_port)
            )
        self._config.write_text(config)
        self._config.chmod(0o600)  # it holds the broker's SCRAM and keystore passwords
        self._log4j.write_text(render("log4j2.properties"))
        self.check_data()
        if (self.data_dir / "meta.properties").is_file():
            return
        cluster_id = _new_cluster_id()
        self._cluster_id_file.write_text(cluster_id + "\n")
        with log_file.open("ab") as log:
            # Static quorum (controller.quorum.voters): format WITHOUT --standalone.
            done = subprocess.run(
                [
                    java, "-Xmx256m", *self._jvm_flags(), "-cp", f"{lib}/*",
                    "kafka.tools.StorageTool", "format", "--config", str(self._config),
                    f"--cluster-id={cluster_id}", "--ignore-formatted",
                    *(self.secure.kafka_format_args() if self.secure else []),
                ],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=server_env(),
                timeout=120,
                check=False,
            )  # fmt: skip
        if done.returncode != 0 or not (self.data_dir / "meta.properties").is_file():
            tail = "".join(log_file.read_text(errors="replace").splitlines(True)[-40:])
            raise StackError(
                f"Kafka storage format failed (exit {done.returncode}); "
                f"last lines of {log_file}:\n{tail.rstrip()}"
            )

    def _jvm_flags(self) -> list[str]:
        return [
            *_JVM_FLAGS,
            f"-Dlog4j2.configurationFile={self._log4j}",
            f"-Dkafka.logs.dir={self.dir}",
        ]

    def command(self, java: str, lib: Path) -> list[str]:
        return [
            java, f"-Xms{self.heap}", f"-Xmx{self.heap}", *self._jvm_flags(),
            "-cp", f"{lib}/*", "kafka.Kafka", str(self._config),
        ]  # fmt: skip

    def probe(self, timeout: float) -> str:
        """A description of the ready broker; raises when it does not answer within ``timeout``."""
        from confluent_kafka import KafkaException
        from confluent_kafka.admin import AdminClient, NewTopic

        admin = AdminClient(
            {
                **self._client,
                "socket.timeout.ms": int(timeout * 1000),
                # librdkafka logs every refused connection to stderr; the caller reports instead.
                "log_level": 0,
            }
        )
        metadata = admin.list_topics(timeout=timeout)
        if not metadata.brokers:
            raise StackError("Kafka answered metadata without brokers")
        if READY_TOPIC not in metadata.topics:
            # The create goes through the KRaft controller: proof that both roles work.
            future = admin.create_topics(
                [NewTopic(READY_TOPIC, num_partitions=1, replication_factor=1)],
                operation_timeout=timeout,
                request_timeout=timeout,
            )[READY_TOPIC]
            try:
                future.result(timeout)
            except KafkaException as exc:
                if "TOPIC_ALREADY_EXISTS" not in str(exc):
                    raise
            metadata = admin.list_topics(topic=READY_TOPIC, timeout=timeout)
        partitions = metadata.topics[READY_TOPIC].partitions
        if not partitions or any(p.leader < 0 for p in partitions.values()):
            raise StackError(f"{READY_TOPIC} has no leader yet")
        return f"{len(metadata.brokers)} broker, {READY_TOPIC} led by broker 1"
