"""The local stack against real JVMs: up, idempotent up, status, down, busy port, stale files.

Runs on its own ports (Kafka 29092/29093, Cassandra 29042/27000) and its own run directory
(``<stack.home>/run/test-localstack``), so it never touches a developer's or the session's
stack: if that one runs on these ports, the busy-port check fails this module loudly instead.
One start is shared by the first tests; the stale-file test starts the stack a second time.
"""

from __future__ import annotations

import os
import socket
import subprocess
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field

import pytest

from app.errors import StackError
from app.localstack import LocalStack
from app.localstack.cassandra import connection_class
from app.localstack.layout import on_ports
from app.settings import Settings

pytestmark = pytest.mark.integration

KAFKA, CONTROLLER, CQL, STORAGE = 29092, 29093, 29042, 27000


def _settings() -> Settings:
    return on_ports(Settings(), kafka=KAFKA, controller=CONTROLLER, cassandra=CQL, storage=STORAGE)


@dataclass
class Started:
    stack: LocalStack
    seconds: float
    messages: list[str] = field(default_factory=list)


def _pids(stack: LocalStack) -> dict[str, int | None]:
    return {name: stack.daemon(name).running_pid() for name in ("kafka", "cassandra")}


def _gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


@pytest.fixture(scope="module")
def started() -> Iterator[Started]:
    stack = LocalStack(_settings(), name="test-localstack")
    # Leftovers of an aborted run of this module are ours: start from nothing.
    stack.down(wipe=True)
    messages: list[str] = []
    begin = time.monotonic()
    stack.up(messages.append)
    result = Started(stack, time.monotonic() - begin, messages)
    yield result
    stack.down(wipe=True)
    assert stack.daemon("kafka").strays() == []
    assert stack.daemon("cassandra").strays() == []


def test_up_serves_kafka_and_cql(started: Started) -> None:
    from cassandra.cluster import Cluster
    from confluent_kafka import KafkaError, Message, Producer
    from confluent_kafka.admin import AdminClient, NewTopic

    assert any(m.startswith("kafka ready") for m in started.messages), started.messages
    assert any(m.startswith("cassandra ready") for m in started.messages), started.messages

    topic = f"t{uuid.uuid4().hex[:10]}"
    admin = AdminClient({"bootstrap.servers": f"127.0.0.1:{KAFKA}"})
    admin.create_topics([NewTopic(topic, num_partitions=2, replication_factor=1)])[topic].result(30)
    # The controller acknowledges the creation once committed; the broker's metadata cache
    # follows a moment later (on a loaded machine a metadata request in between answered
    # UNKNOWN_TOPIC_OR_PART in a CI run). Wait for it, bounded.
    deadline = time.monotonic() + 30
    while True:
        partitions = admin.list_topics(topic=topic, timeout=10).topics[topic].partitions
        if partitions or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert len(partitions) == 2
    delivered: list[KafkaError | None] = []

    def on_delivery(error: KafkaError | None, _: Message) -> None:
        delivered.append(error)

    producer = Producer({"bootstrap.servers": f"127.0.0.1:{KAFKA}", "acks": "all"})
    producer.produce(topic, b"hello", on_delivery=on_delivery)
    assert producer.flush(30) == 0
    assert delivered == [None]

    options = {"connection_class": c} if (c := connection_class()) else {}
    cluster = Cluster(["127.0.0.1"], port=CQL, protocol_version=5, **options)
    try:
        session = cluster.connect()
        keyspace = f"t{uuid.uuid4().hex[:10]}"
        session.execute(
            f"CREATE KEYSPACE {keyspace} WITH replication = "
            "{'class': 'SimpleStrategy', 'replication_factor': 1}"
        )
        session.execute(f"CREATE TABLE {keyspace}.kv (k text PRIMARY KEY, v int)")
        session.execute(f"INSERT INTO {keyspace}.kv (k, v) VALUES ('a', 1)")
        assert session.execute(f"SELECT v FROM {keyspace}.kv WHERE k = 'a'").one().v == 1
        assert session.execute("SELECT release_version FROM system.local").one().release_version
    finally:
        cluster.shutdown()


def test_cassandra_acknowledges_only_synced_writes(started: Started) -> None:
    """The commit log settings that keep acknowledged writes through a SIGKILL are the ones the
    node runs with (the kill itself: tests/faults/test_cassandra_durability.py)."""
    from cassandra.cluster import Cluster

    options = {"connection_class": c} if (c := connection_class()) else {}
    cluster = Cluster(["127.0.0.1"], port=CQL, protocol_version=5, **options)
    try:
        session = cluster.connect()
        settings = {r.name: r.value for r in session.execute("SELECT * FROM system_views.settings")}
        properties = {
            r.name: r.value for r in session.execute("SELECT * FROM system_views.system_properties")
        }
    finally:
        cluster.shutdown()
    assert settings["commitlog_sync"] == "batch"
    assert settings["commitlog_disk_access_mode"] == "mmap"
    # Unset is Cassandra's default: a schema change is flushed to disk before it is acknowledged.
    assert properties.get("cassandra.test.flush_local_schema_changes") in (None, "true")


def test_second_up_is_a_noop(started: Started) -> None:
    before = _pids(started.stack)
    messages: list[str] = []
    begin = time.monotonic()
    started.stack.up(messages.append)
    assert time.monotonic() - begin < 20
    assert _pids(started.stack) == before
    assert sum("already running" in m for m in messages) == 2, messages
    assert not any("starting" in m for m in messages), messages
    # Exactly one JVM per server: up did not spawn a second one.
    assert started.stack.daemon("kafka").strays() == [before["kafka"]]
    assert started.stack.daemon("cassandra").strays() == [before["cassandra"]]


def test_status_shows_both_ready(started: Started) -> None:
    status = started.stack.status()
    assert status.ready, str(status)
    assert started.stack.is_ready()
    assert status.kafka.pid == started.stack.daemon("kafka").running_pid() is not None
    assert status.cassandra.pid == started.stack.daemon("cassandra").running_pid() is not None
    assert status.kafka.ports == {"kafka": KAFKA, "controller": CONTROLLER}
    assert status.cassandra.ports == {"native": CQL, "storage": STORAGE}
    assert status.cassandra.detail.startswith("Cassandra 5.0")


def test_down_leaves_no_process(started: Started) -> None:
    pids = _pids(started.stack)
    assert all(pids.values())
    started.stack.down()
    assert all(_gone(pid) for pid in pids.values() if pid), pids
    assert started.stack.daemon("kafka").strays() == []
    assert started.stack.daemon("cassandra").strays() == []
    status = started.stack.status()
    assert (status.kafka.pid, status.cassandra.pid) == (None, None)
    assert not status.kafka.ready and not status.cassandra.ready


def test_busy_port_is_named_before_java_starts(started: Started) -> None:
    with socket.socket() as holder:
        holder.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        holder.bind(("127.0.0.1", CONTROLLER))
        holder.listen()
        with pytest.raises(StackError, match=str(CONTROLLER)):
            started.stack.up()
    assert _pids(started.stack) == {"kafka": None, "cassandra": None}
    assert started.stack.daemon("cassandra").strays() == []


def test_kafka_data_of_another_cluster_is_refused(started: Started) -> None:
    cluster_id = started.stack.kafka.dir / "cluster.id"
    original = cluster_id.read_text()
    cluster_id.write_text("AAAAAAAAAAAAAAAAAAAAAA\n")
    try:
        with pytest.raises(StackError, match="stack down --wipe"):
            started.stack.up()
    finally:
        cluster_id.write_text(original)
    assert _pids(started.stack) == {"kafka": None, "cassandra": None}


def test_stale_pid_files_are_cleared_and_the_stack_starts(started: Started) -> None:
    dead = subprocess.Popen(["true"])
    dead.wait()
    for name in ("kafka", "cassandra"):
        started.stack.daemon(name).pid_file.write_text(f"{dead.pid}\n")
    (started.stack.kafka.data_dir / ".lock").touch()  # what a SIGKILLed broker leaves
    messages: list[str] = []
    started.stack.up(messages.append)
    assert sum("stale pid file" in m for m in messages) == 2, messages
    status = started.stack.status()
    assert status.ready, str(status)
    assert dead.pid not in (status.kafka.pid, status.cassandra.pid)
