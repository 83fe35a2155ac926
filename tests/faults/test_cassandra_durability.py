"""The local Cassandra keeps what it acknowledged when its JVM is SIGKILLed (issue 9, item 7).

Two ways the old local config lost data, both reproduced by this test against it:
- the schema: with local schema changes left unflushed, a keyspace created since the last flush
  lived only in the commit log, and Cassandra loads the schema *before* it replays that log, so
  every row of the new tables was skipped as "unknown CF" on restart (the whole keyspace gone);
- the tail: under ``commitlog_sync: periodic`` a write is acknowledged before the commit log
  section holding it is marked synced, and replay stops at the last marker, so the writes of the
  last moments before the kill were dropped.
"""

from __future__ import annotations

import re
import threading
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from cassandra import InvalidRequest
from cassandra.concurrent import execute_concurrent_with_args

from app.localstack.ports import port_busy
from app.settings import Settings
from app.store.schema import TABLES, migrate
from app.store.session import CassandraSession, connect
from tests.faults.conftest import FaultStack
from tests.support import isolated

pytestmark = [pytest.mark.faults, pytest.mark.integration]

ROWS = 2_000  # acknowledged before the kill, all at rest in the commit log only
IN_FLIGHT_ACKS = 300  # acknowledged by writers still writing when the kill lands
WRITERS = 4
BODY = b"{" + b"x" * 998 + b"}"  # about an event's size


def _kill(fault_stack: FaultStack) -> None:
    """SIGKILL Cassandra and wait until its ports are free for the restart.

    The kill returns once the process's command line is gone, which the kernel clears before it
    closes the process's sockets: a 1 GB JVM can hold its ports a while longer.
    """
    fault_stack.kill("cassandra")
    ports = fault_stack.stack.cassandra.ports.values()
    deadline = time.monotonic() + 30
    while any(port_busy(port) for port in ports):
        assert time.monotonic() < deadline, f"Cassandra's ports {list(ports)} still held 30 s on"
        time.sleep(0.1)


def _running_setting(session: CassandraSession, name: str) -> str | None:
    row = session.execute("SELECT value FROM system_views.settings WHERE name = %s", (name,)).one()
    return None if row is None else str(row["value"])


@pytest.fixture
def durable_node(fault_stack: FaultStack) -> Iterator[FaultStack]:
    """The fault stack's Cassandra, running the config this checkout writes.

    A node keeps the cassandra.yaml it started with: one started by an older checkout is killed
    and started again, so the test checks today's config and not a leftover.
    """
    written = re.search(r"^commitlog_sync: *(\w+)", fault_stack.stack.cassandra.config(), re.M)
    assert written is not None, "cassandra.yaml names no commitlog_sync"
    session = connect(fault_stack.settings)
    try:
        running = _running_setting(session, "commitlog_sync")
    finally:
        session.cluster.shutdown()
    if running != written.group(1):
        _kill(fault_stack)
        fault_stack.start()
    yield fault_stack
    fault_stack.start()  # whatever a failed test left stopped


def _insert(session: CassandraSession, settings: Settings) -> Any:
    return session.prepare(
        f"INSERT INTO {settings.cassandra.keyspace}.events (id, type, created_at, body, "
        "received_at) VALUES (?, 'durability.check', '2026-01-01T00:00:00Z', ?, "
        "toTimestamp(now()))"
    )


class Writers:
    """Threads writing distinct rows one at a time, recording each id Cassandra acknowledged."""

    def __init__(self, session: CassandraSession, insert: Any) -> None:
        self.acked: list[str] = []
        self.enough = threading.Event()
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._threads = [
            threading.Thread(target=self._run, args=(session, insert, n), daemon=True)
            for n in range(WRITERS)
        ]

    def _run(self, session: CassandraSession, insert: Any, n: int) -> None:
        i = 0
        while not self._stop.is_set():
            row_id = f"live-{n}-{i}"
            i += 1
            try:
                session.execute(insert, (row_id, BODY), timeout=5)
            except Exception:  # the node is gone: this write was never acknowledged
                continue
            with self._lock:
                self.acked.append(row_id)
                if len(self.acked) >= IN_FLIGHT_ACKS:
                    self.enough.set()

    def __enter__(self) -> Writers:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=30)


def test_acknowledged_rows_and_a_new_schema_survive_sigkill(durable_node: FaultStack) -> None:
    settings = isolated(durable_node.settings, uuid.uuid4().hex[:10])
    keyspace = settings.cassandra.keyspace
    # The real schema, created just now: before the fix its tables existed only in the commit
    # log, which is exactly what a developer has after `hookstream migrate` and some use.
    migrate(settings)
    session = connect(settings)
    try:
        insert = _insert(session, settings)
        quiet = [(f"row-{i}", BODY) for i in range(ROWS)]
        results = execute_concurrent_with_args(session, insert, quiet, concurrency=32)
        assert all(ok for ok, _ in results)
        with Writers(session, insert) as writers:
            assert writers.enough.wait(60), f"writers got {len(writers.acked)} acks in 60 s"
            killed_at = time.monotonic()
            _kill(durable_node)  # while the writers still have writes in flight
        acked = {row_id for row_id, _ in quiet} | set(writers.acked)
    finally:
        session.cluster.shutdown()
    assert len(writers.acked) >= IN_FLIGHT_ACKS

    durable_node.start()
    restarted_s = time.monotonic() - killed_at
    session = connect(settings)
    try:
        # The server's own schema, not the driver's view of system_schema: after the old
        # replay the rows were back in system_schema while the node answered "keyspace does not
        # exist". A query on every table proves the node knows it.
        unknown = []
        for table in TABLES:
            try:
                session.execute(f"SELECT * FROM {keyspace}.{table} LIMIT 1", timeout=30)
            except InvalidRequest as exc:
                unknown.append(f"{table}: {exc}")
        assert not unknown, f"the schema did not survive the kill: {unknown}"
        found = {row["id"] for row in session.execute(f"SELECT id FROM {keyspace}.events")}
    finally:
        session.cluster.shutdown()
    lost = acked - found
    assert not lost, (
        f"{len(lost)} of {len(acked)} acknowledged rows lost after SIGKILL and restart "
        f"({restarted_s:.0f} s), e.g. {sorted(lost)[:5]}"
    )
