"""The open-loop producer: events at a fixed rate, whatever the pipeline does.

Event i of a run is due at ``start + i / rate``; the producer sends every event that is due,
then sleeps until the next one. The send time stamped into the event (``data.sent_at``) and
kept in ``sent`` is that *intended* time, so a producer that falls behind adds its delay to
the measured latency instead of hiding it (no coordinated omission). Each event is serialized
to ``size`` bytes (1 KB by default) with a padding field.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import orjson
from confluent_kafka import Producer

TypeOf = Callable[[int], str]


def _always_user_created(_: int) -> str:
    return "user.created"


def build_value(event_id: str, event_type: str, sent_at: float, seq: int, pad: str) -> bytes:
    return orjson.dumps(
        {
            "id": event_id,
            "type": event_type,
            "created_at": "2026-01-15T12:30:00Z",
            "data": {"sent_at": sent_at, "seq": seq, "pad": pad},
        }
    )


def padding_for(size: int, prefix: str = "evt_s0_r0_000000") -> str:
    """The pad that makes a serialized event about ``size`` bytes long."""
    base = len(build_value(prefix + "000", "user.created", time.time(), 1_000_000, ""))
    return "x" * max(0, size - base)


@dataclass
class Run:
    """What one fixed-rate run sent: event id -> (intended send time, event type)."""

    rate: float
    seconds: float
    sent: dict[str, tuple[float, str]] = field(default_factory=dict)
    behind_max: float = 0.0  # how far the producer fell behind its schedule, seconds
    started_at: float = 0.0
    ended_at: float = 0.0
    aborted: bool = False


class OpenLoopProducer:
    def __init__(self, bootstrap: str, topic: str, *, size: int = 1024) -> None:
        self.topic = topic
        self.size = size
        self.pad = padding_for(size)
        self._producer = Producer(
            {
                "bootstrap.servers": bootstrap,
                "acks": "all",
                "linger.ms": 2,
                "batch.num.messages": 2000,
                "queue.buffering.max.messages": 1_000_000,
                "queue.buffering.max.kbytes": 1_048_576,
            }
        )
        self._thread: threading.Thread | None = None
        self._abort = threading.Event()

    def start(self, rate: float, seconds: float, label: str, type_of: TypeOf | None = None) -> Run:
        """Begin a run in a background thread; ``wait()`` for it."""
        run = Run(rate, seconds)
        self._abort.clear()
        self._thread = threading.Thread(
            target=self._run, args=(run, label, type_of or _always_user_created), daemon=True
        )
        self._thread.start()
        return run

    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def abort(self) -> None:
        self._abort.set()

    def wait(self) -> None:
        if self._thread is not None:
            self._thread.join()
            self._thread = None

    def _run(self, run: Run, label: str, type_of: TypeOf) -> None:
        total = max(1, int(run.rate * run.seconds))
        interval = 1.0 / run.rate
        wall0, mono0 = time.time(), time.monotonic()
        run.started_at = wall0
        produce, poll, pad, topic = (
            self._producer.produce,
            self._producer.poll,
            self.pad,
            self.topic,
        )
        i = 0
        while i < total:
            if self._abort.is_set():
                run.aborted = True
                break
            now = time.monotonic() - mono0
            due = min(total, int(now / interval) + 1)
            if due > i + 1:
                run.behind_max = max(run.behind_max, now - i * interval)
            while i < due:
                event_id = f"evt_{label}_{i:06d}"
                kind = type_of(i)
                sent_at = wall0 + i * interval
                value = build_value(event_id, kind, sent_at, i, pad)
                while True:
                    try:
                        produce(topic, value)
                        break
                    except BufferError:
                        poll(0.01)
                run.sent[event_id] = (sent_at, kind)
                i += 1
            poll(0)
            pause = i * interval - (time.monotonic() - mono0)
            if pause > 0:
                time.sleep(min(pause, 0.05))
        self._producer.flush(30)
        run.ended_at = time.time()

    def close(self) -> None:
        self._producer.flush(30)


def prefill(bootstrap: str, topic: str, count: int, size: int = 1024) -> float:
    """Write ``count`` events of ``size`` bytes as fast as possible; returns msg/s."""
    producer = Producer(
        {"bootstrap.servers": bootstrap, "linger.ms": 20, "batch.num.messages": 10000, "acks": 1}
    )
    pad = padding_for(size)
    started = time.monotonic()
    for i in range(count):
        value = build_value(f"evt_fill_{i:08d}", "user.created", time.time(), i, pad)
        while True:
            try:
                producer.produce(topic, value)
                break
            except BufferError:
                producer.poll(0.05)
        if i % 1000 == 0:
            producer.poll(0)
    producer.flush(60)
    return count / (time.monotonic() - started)
