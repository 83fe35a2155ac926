"""``python -m bench.record_cost [--deliveries N] [--batch N] [--rounds N]``: what recording a
delivery costs, the recorder's Python and Cassandra apart, without Kafka or a worker.

It builds the records a drain of N successful first attempts produces (per delivery: its
success with its attempt, carrying its event as the worker's first records do, 1 KB bodies,
one webhook), encoded exactly as the worker encodes them, then hands them to the recorder's
own decode and write steps (``Recorder._decode`` and ``Recorder._write``) in batches of
``--batch`` messages, as the recorder does after consuming them. Reported per delivery: this
process's CPU (the recorder's decode, collapse, packing, binding and the driver's I/O
thread) and the Cassandra server's CPU (``/proc``), both from the first decode to the last
acknowledged write, and the rate. Cassandra's later flushes and compactions are not in the
figure.

On the bench stack's ports (``bench.stack``; it must be up: ``python -m bench --keep-stack``
leaves it so), in a keyspace of its own, dropped at the end. ``BENCH_APP_DIR`` measures
another tree's recorder the same way.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import threading
import time
import uuid
from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import bench  # noqa: F401  (puts BENCH_APP_DIR first on sys.path before app is imported)

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


@dataclass
class FakeMessage:
    """What the recorder reads of a confluent-kafka message."""

    _value: bytes
    _offset: int
    _partition: int = 0

    def value(self) -> bytes:
        return self._value

    def error(self) -> None:
        return None

    def topic(self) -> str:
        return "records"

    def partition(self) -> int:
        return self._partition

    def offset(self) -> int:
        return self._offset

    def timestamp(self) -> tuple[int, int]:
        return 1, int(time.time() * 1000)


class IdleConsumer:
    """What the recorder calls on its consumer while a write takes long: nothing to give."""

    def poll(self, _timeout: float) -> None:
        return None

    def pause(self, _partitions: object) -> None: ...

    def resume(self, _partitions: object) -> None: ...


def messages(n: int, partitions: int = 12) -> list[FakeMessage]:
    from app.deliveries import DeliveryStatus, delivery_id
    from app.records import encode_delivery
    from app.signing import attempt_headers, loggable_headers
    from app.store.records import AttemptRecord, DeliveryRecord, EventRecord

    webhook = "hook_" + uuid.uuid4().hex[:12]
    body = b'{"data":"' + b"x" * 1000 + b'"}'
    out: list[FakeMessage] = []
    offsets = [0] * partitions
    now = datetime.now(UTC)
    for i in range(n):
        event_id = f"evt_{uuid.uuid4().hex}"
        did = delivery_id(event_id, webhook)
        created = now + timedelta(microseconds=i * 300)
        started = created + timedelta(milliseconds=2)
        # The headers an attempt record keeps, as the worker builds them (signatures removed).
        headers = loggable_headers(
            attempt_headers(
                body=body, event_id=event_id, event_type="user.created", delivery_id=did,
                attempt=1, timestamp=int(started.timestamp()), secret="whsec_bench",
            )
        )  # fmt: skip
        event = EventRecord(event_id, "user.created", created.isoformat(), body, created)
        attempt = AttemptRecord(did, 1, started, 1, "success", 204, None, "", headers)
        state = DeliveryRecord(
            did, webhook, event_id, "user.created", DeliveryStatus.SUCCESS, 1, created,
            started + timedelta(milliseconds=1), 204, None, started + timedelta(milliseconds=1),
        )  # fmt: skip
        # As the worker sends them: the first record carries its event (records format 3).
        value = encode_delivery(state, attempt, event)
        p = (hash(value[:40]) & 0xFFFF) % partitions
        out.append(FakeMessage(value, offsets[p], p))
        offsets[p] += 1
    return out


def thread_cpu(pid: int | None) -> dict[str, float]:
    """CPU seconds of a process per thread name (digits stripped: a pool is one name)."""
    out: dict[str, float] = defaultdict(float)
    if pid is None:
        return out
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            stat = (task / "stat").read_text()
        except OSError:
            continue  # the thread ended
        name = re.sub(r"[\d:#]+", "", stat[stat.index("(") + 1 : stat.rindex(")")]).strip("-_ ")
        fields = stat.rsplit(")", 1)[1].split()
        out[name] += (int(fields[11]) + int(fields[12])) / CLOCK_TICKS
    return out


def run(deliveries: int, batch: int, rounds: int) -> dict[str, Any]:
    from app.localstack import LocalStack
    from app.recorder.recorder import Recorder
    from app.store import Store
    from app.store.schema import drop, migrate
    from bench.stack import bench_settings, server_cpu

    base = bench_settings()
    token = uuid.uuid4().hex[:8]
    settings = base.model_copy(
        update={
            "cassandra": base.cassandra.model_copy(update={"keyspace": f"brc{token}"}),
        }
    )
    migrate(settings)
    recorder = Recorder(settings)
    loop_thread = threading.Thread(target=recorder._loop.run_forever, daemon=True)
    loop_thread.start()
    recorder._store = recorder._call(Store.connect(settings), timeout=None)
    recorder._consumer = IdleConsumer()
    stop = threading.Event()
    cassandra_pid = LocalStack(base).daemon("cassandra").running_pid()
    results = []
    try:
        for round_ in range(rounds + 1):  # the first warms Cassandra's JIT up: not reported
            taken = messages(deliveries)
            batches = [taken[i : i + batch] for i in range(0, len(taken), batch)]
            threads0 = thread_cpu(cassandra_pid)
            cpu0, server0, wall0 = time.process_time(), server_cpu(settings), time.monotonic()
            rows = 0
            for chunk in batches:
                decoded = recorder._decode(chunk)  # type: ignore[arg-type]
                assert decoded is not None
                written = recorder._write(decoded, stop)
                assert written is not None
                rows += written
            cpu1, server1, wall1 = time.process_time(), server_cpu(settings), time.monotonic()
            threads1 = thread_cpu(cassandra_pid)
            threads = {k: v - threads0.get(k, 0.0) for k, v in threads1.items()}
            cassandra = (
                sum(server1["cassandra"]) - sum(server0["cassandra"])
                if "cassandra" in server0 and "cassandra" in server1
                else None
            )
            if round_ == 0:
                continue
            results.append(
                {
                    "deliveries": deliveries,
                    "rows": rows,
                    "seconds": round(wall1 - wall0, 2),
                    "deliveries_per_s": round(deliveries / (wall1 - wall0)),
                    "recorder_us_per_delivery": round((cpu1 - cpu0) / deliveries * 1e6),
                    "cassandra_us_per_delivery": None
                    if cassandra is None
                    else round(cassandra / deliveries * 1e6),
                    # Where Cassandra's share went, by thread pool (µs per delivery).
                    "cassandra_threads_us_per_delivery": {
                        name: round(seconds / deliveries * 1e6)
                        for name, seconds in sorted(threads.items(), key=lambda kv: -kv[1])[:12]
                        if seconds > 0
                    },
                }
            )
            print(json.dumps(results[-1]), flush=True)
    finally:
        recorder._call(recorder._store.close(), timeout=15)
        recorder._loop.call_soon_threadsafe(recorder._loop.stop)
        drop(settings)
    return {"batch": batch, "runs": results}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--deliveries", type=int, default=10_000)
    parser.add_argument("--batch", type=int, default=2000, help="messages per recorder batch")
    parser.add_argument("--rounds", type=int, default=3)
    a = parser.parse_args()
    print(json.dumps(run(a.deliveries, a.batch, a.rounds)))


if __name__ == "__main__":
    main()
