"""⑤ The recorder: the records topic into Cassandra, in large batches, committing only what
is written.

One confluent-kafka consumer (group ``settings.recorder.consumer_group``) runs in the calling
thread, as the scheduler's does; the Cassandra writes run on an asyncio loop of the recorder's
own thread (the store is async). One turn of the loop:

1. **take** a batch: block in ``poll()`` for the first message, then ``consume()`` more until
   ``batch_max`` messages or ``batch_wait`` after the first;
2. **decode and collapse** it (``app.recorder.collapse``): one state per delivery, every
   attempt, every event. An undecodable message can never heal: it goes to the dead topic
   with the reason and its source position (acknowledged by Kafka before the batch commits),
   never just dropped;
3. **write** it with ``DeliveryRepository.record_many`` (grouped by partition key, bounded
   concurrency, idempotent upserts stamped with each record's own time);
4. **commit** offset + 1 of the batch's last message per partition — only after step 3 was
   acknowledged, so a crash anywhere re-reads at most the unwritten batch.

A Cassandra outage is not a crash. When a write fails (``StoreUnavailable``) or takes longer
than ``HOLD_AFTER_S``, the recorder **holds**: it pauses every assigned partition (librdkafka
drops their prefetched messages; memory stays bounded to the one batch in hand), keeps
polling so it stays in its group and serves rebalances, reports not-ready, and retries the
same batch with exponential backoff up to ``retry_backoff_max``. Once a write succeeds it
commits, resumes the partitions and catches up by itself, from where it stopped. Exits are
for what cannot heal: a refused statement or a missing schema (``cassandra.InvalidRequest``)
propagates and the process stops non-zero, without committing.

Rebalances: offsets are committed only for partitions assigned at that moment. A batch may
hold messages of a partition revoked meanwhile; writing them is harmless (idempotent) and
committing nothing for it means its new owner writes them again. On assignment every
partition is resumed (librdkafka keeps an application pause across reassignment), or paused
again if the recorder is holding.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import threading
import time
from collections.abc import Coroutine
from dataclasses import dataclass, field
from typing import Any, TypeVar

from confluent_kafka import (
    TIMESTAMP_NOT_AVAILABLE,
    Consumer,
    KafkaError,
    Message,
    Producer,
    TopicPartition,
)

from app.deliveries import dead_letter_headers
from app.kafka import client_config
from app.recorder import metrics
from app.recorder.collapse import Collapsed, collapse
from app.records import InvalidRecord, Record, decode
from app.settings import Settings
from app.store import Store, StoreUnavailable
from app.topics import Topics

log = logging.getLogger(__name__)

T = TypeVar("T")
Partition = tuple[str, int]

SESSION_TIMEOUT_MS = 10_000  # a crashed recorder's partitions move on in ~10 s
HOLD_AFTER_S = 2.0  # a write slower than this pauses the partitions while it goes on
LAG_EVERY_S = 5.0
STOP_WRITE_S = 30.0  # on stop, wait this long for the batch being written
BACKOFF_FIRST_S = 0.25
DEAD_LETTER_TIMEOUT_S = 10.0  # one wait for Kafka's acknowledgement of the dead letters


def consumer_config(settings: Settings) -> dict[str, Any]:
    return {
        **client_config(settings),
        "group.id": settings.recorder.consumer_group,
        "client.id": "hookstream-recorder",
        "enable.auto.commit": False,
        "enable.auto.offset.store": False,
        "auto.offset.reset": "earliest",
        "session.timeout.ms": SESSION_TIMEOUT_MS,
        # Large fetches: the recorder wants thousands of small records per turn. Once it has
        # caught up, a fetch answered at the first byte returned a handful of records, and the
        # broker's CPU per delivery doubled (s7: 0.75 -> 1.5 ms): wait for 64 KiB or 100 ms.
        "fetch.wait.max.ms": 100,
        "fetch.min.bytes": 65536,
        "queued.max.messages.kbytes": 65536,
    }


@dataclass(frozen=True, slots=True)
class Undecodable:
    """A message of the records topic that is no record: its bytes, why, and where."""

    value: bytes | None
    reason: str
    detail: str
    partition: Partition
    offset: int


@dataclass(slots=True)
class Batch:
    """Messages taken and not yet written: their rows and where each partition ends."""

    collapsed: Collapsed
    ends: dict[Partition, int]  # offset of the last message + 1, per partition
    messages: int
    produced_at: list[float] = field(default_factory=list)  # Kafka timestamps (s)
    undecodable: list[Undecodable] = field(default_factory=list)  # for the dead topic


class Recorder:
    """Build once, call ``run(stop)`` in one thread (it blocks until ``stop`` is set).

    Readable from other threads at any time (health and metrics): ``ready``, ``reason``
    (why not ready), ``written_messages``, ``written_rows``.
    """

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._cfg = settings.recorder
        self.topics = Topics.from_settings(settings)
        self.ready = False
        self.reason = "starting"
        self.written_messages = 0
        self.written_rows = 0
        # Touched only by the thread inside run().
        self._consumer: Any = None
        self._producer: Producer | None = None  # dead letters only, made when first needed
        self._store: Store | None = None
        self._loop = asyncio.new_event_loop()
        self._assignment: set[Partition] = set()
        self._paused = False
        self._written: dict[Partition, int] = {}  # committed (written) offsets, for lag
        self._carry: list[Message] = []  # taken while holding: first in the next batch
        self._last_lag = 0.0

    # -- run ----------------------------------------------------------------------------------

    def run(self, stop: threading.Event) -> None:
        """Record until ``stop`` is set, then finish the batch in hand (bounded), commit it
        and leave the group. Raises what cannot heal (see the module docstring)."""
        loop_thread = threading.Thread(
            target=self._loop.run_forever, name="recorder-cassandra", daemon=True
        )
        loop_thread.start()
        try:
            self._store = self._connect(stop)
            if self._store is None:
                return  # stopped before Cassandra ever answered
            self._consumer = Consumer(
                consumer_config(self._settings) | {"error_cb": self._on_error}
            )
            self._consumer.subscribe(
                [self.topics.records],
                on_assign=self._on_assign,
                on_revoke=self._on_revoke,
                on_lost=self._on_lost,
            )
            self._set_ready(True)
            log.info("recorder writing %s to Cassandra", self.topics.records)
            while not stop.is_set():
                batch = self._take()
                if batch is not None:
                    self._write_until_done(batch, stop)
                self._measure_lag()
        finally:
            self._shutdown()
            self._loop.call_soon_threadsafe(self._loop.stop)
            loop_thread.join(10)

    def _connect(self, stop: threading.Event) -> Store | None:
        backoff = BACKOFF_FIRST_S
        while not stop.is_set():
            try:
                return self._call(Store.connect(self._settings), timeout=None)
            except StoreUnavailable as exc:
                self._set_ready(False, f"cannot reach Cassandra: {exc}")
                log.warning("recorder waiting for Cassandra (retry in %.1f s): %s", backoff, exc)
                stop.wait(backoff)
                backoff = min(backoff * 2, self._cfg.retry_backoff_max.total_seconds())
        return None

    # -- take ---------------------------------------------------------------------------------

    def _take(self) -> Batch | None:
        cfg = self._cfg
        messages, self._carry = self._carry, []
        if not messages:
            first = self._consumer.poll(0.5)
            if first is None:
                return None
            messages.append(first)
        deadline = time.monotonic() + cfg.batch_wait.total_seconds()
        while len(messages) < cfg.batch_max:
            remaining = deadline - time.monotonic()
            more = self._consumer.consume(cfg.batch_max - len(messages), max(0.0, remaining))
            messages.extend(more)
            if remaining <= 0 or not more:
                break
        return self._decode(messages)

    def _decode(self, messages: list[Message]) -> Batch | None:
        records: list[Record] = []
        ends: dict[Partition, int] = {}
        produced: list[float] = []
        undecodable: list[Undecodable] = []
        for message in messages:
            error = message.error()
            if error is not None:
                self._on_error(error)
                continue
            partition: Partition = (message.topic(), message.partition())
            offset: int = message.offset()
            ends[partition] = max(ends.get(partition, 0), offset + 1)
            try:
                records.append(decode(message.value()))
            except InvalidRecord as exc:
                # It can never be decoded: to the dead topic before the batch commits.
                log.error(
                    "invalid record %s[%d]@%d to the dead topic: %s", *partition, offset, exc,
                    extra={"reason": exc.reason},
                )  # fmt: skip
                undecodable.append(
                    Undecodable(message.value(), exc.reason, exc.detail, partition, offset)
                )
                continue
            kind, stamp = message.timestamp()
            if kind != TIMESTAMP_NOT_AVAILABLE:
                produced.append(stamp / 1000)
        if undecodable:
            metrics.RECORDS.labels("invalid").inc(len(undecodable))
        if not ends:
            return None
        return Batch(collapse(records), ends, len(records), produced, undecodable)

    # -- write --------------------------------------------------------------------------------

    def _write_until_done(self, batch: Batch, stop: threading.Event) -> None:
        """Write ``batch``, holding and retrying through outages, until it is written (then
        commit) or ``stop`` is set (then commit nothing: the next owner writes it again)."""
        backoff = BACKOFF_FIRST_S
        while True:
            if batch.undecodable and not self._dead_letter(batch.undecodable):
                self._hold("Kafka did not take the dead letters of invalid records")
                if self._wait_polling(backoff, stop):
                    return
                backoff = min(backoff * 2, self._cfg.retry_backoff_max.total_seconds())
                continue
            batch.undecodable = []  # acknowledged: never sent twice by a retried write
            started = time.monotonic()
            try:
                rows = self._write(batch, stop)
            except StoreUnavailable as exc:
                metrics.WRITE_FAILURES.inc()
                self._hold(f"Cassandra did not take a batch: {exc}")
                log.warning(
                    "recorder: Cassandra refused a batch of %d record(s) (retry in %.1f s): %s",
                    batch.messages, backoff, exc,
                )  # fmt: skip
                if self._wait_polling(backoff, stop):
                    return
                backoff = min(backoff * 2, self._cfg.retry_backoff_max.total_seconds())
                continue
            if rows is None:
                return  # stopped mid-write
            self._written_ok(batch, rows, time.monotonic() - started)
            return

    def _dead_letter(self, undecodable: list[Undecodable]) -> bool:
        """Produce every undecodable message to the dead topic and wait for Kafka's
        acknowledgements; False (nothing to commit yet) if any was not acknowledged."""
        if self._producer is None:
            self._producer = Producer(
                {**client_config(self._settings), "acks": "all", "enable.idempotence": True}
            )
        failures: list[str] = []

        def report(err: KafkaError | None, _msg: object) -> None:
            if err is not None:
                failures.append(err.str())

        for bad in undecodable:
            self._producer.produce(
                self.topics.dead,
                bad.value,
                headers=dead_letter_headers(bad.reason, bad.detail, *bad.partition, bad.offset),
                on_delivery=report,
            )
        remaining = self._producer.flush(DEAD_LETTER_TIMEOUT_S)
        if remaining or failures:
            log.warning("recorder: dead letters not acknowledged: %s", failures[:3] or remaining)
            return False
        return True

    def _write(self, batch: Batch, stop: threading.Event) -> int | None:
        assert self._store is not None
        c = batch.collapsed
        future = asyncio.run_coroutine_threadsafe(
            self._store.deliveries.record_many(
                c.deliveries, c.attempts, c.events, concurrency=self._cfg.write_concurrency
            ),
            self._loop,
        )
        begun = time.monotonic()
        stop_deadline: float | None = None
        while True:
            try:
                return future.result(timeout=0.2)
            except concurrent.futures.TimeoutError:
                pass
            now = time.monotonic()
            if now - begun > HOLD_AFTER_S:
                self._hold("a Cassandra write is taking long")
                self._poll_while_holding()
            if stop.is_set():
                stop_deadline = stop_deadline or now + STOP_WRITE_S
                if now > stop_deadline:
                    future.cancel()
                    return None

    def _written_ok(self, batch: Batch, rows: int, seconds: float) -> None:
        now = time.time()
        for produced in batch.produced_at:
            metrics.RECORD_LAG.observe(max(0.0, now - produced))
        metrics.BATCH_SIZE.observe(batch.messages)
        metrics.WRITE_SECONDS.observe(seconds)
        metrics.RECORDS.labels("written").inc(batch.messages)
        metrics.ROWS.inc(rows)
        self.written_messages += batch.messages
        self.written_rows += rows
        self._commit(batch.ends, asynchronous=True)
        if self._paused:
            self._set_paused(False)
            log.info("recorder caught up with Cassandra again: resuming")
        self._set_ready(True)

    def _hold(self, reason: str) -> None:
        self._set_ready(False, reason)
        if not self._paused:
            self._set_paused(True)
            log.warning("recorder holding its partitions: %s", reason)

    def _wait_polling(self, seconds: float, stop: threading.Event) -> bool:
        """Sleep ``seconds`` while serving the consumer; True if ``stop`` was set."""
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            if stop.is_set():
                return True
            self._poll_while_holding()
            stop.wait(min(0.2, max(0.0, deadline - time.monotonic())))
        return stop.is_set()

    def _poll_while_holding(self) -> None:
        # Paused partitions return nothing; this serves heartbeats' companions (rebalance
        # callbacks, max.poll.interval). A message of a partition assigned in between is kept
        # for the next batch (and its partition paused by _on_assign).
        message = self._consumer.poll(0)
        if message is not None:
            self._carry.append(message)

    def _set_paused(self, paused: bool) -> None:
        partitions = [TopicPartition(t, p) for t, p in sorted(self._assignment)]
        if partitions:
            if paused:
                self._consumer.pause(partitions)
            else:
                self._consumer.resume(partitions)
        self._paused = paused

    def _set_ready(self, ready: bool, reason: str = "") -> None:
        self.ready, self.reason = ready, reason
        metrics.READY.set(1 if ready else 0)

    # -- commit and lag -----------------------------------------------------------------------

    def _commit(self, ends: dict[Partition, int], *, asynchronous: bool) -> None:
        owned = {p: o for p, o in ends.items() if p in self._assignment}
        if not owned:
            return
        self._written.update(owned)
        offsets = [TopicPartition(t, p, o) for (t, p), o in owned.items()]
        try:
            self._consumer.commit(offsets=offsets, asynchronous=asynchronous)
        except Exception as exc:  # a failed commit only means rewriting: never lose the loop
            log.warning("recorder commit failed (the rows are written; will rewrite): %s", exc)

    def _measure_lag(self) -> None:
        now = time.monotonic()
        if now - self._last_lag < LAG_EVERY_S:
            return
        self._last_lag = now
        metrics.LAG.clear()
        for topic, number in sorted(self._assignment):
            try:
                _, high = self._consumer.get_watermark_offsets(
                    TopicPartition(topic, number), timeout=1.0, cached=False
                )
            except Exception:  # Kafka unreachable: no figure this time
                continue
            written = self._written.get((topic, number))
            if written is None:
                (position,) = self._consumer.position([TopicPartition(topic, number)])
                written = position.offset if position.offset >= 0 else high
            metrics.LAG.labels(str(number)).set(max(0, high - written))

    # -- rebalances (called from inside poll()/consume()) -----------------------------------------

    def _on_assign(self, consumer: Any, partitions: list[TopicPartition]) -> None:
        consumer.assign(partitions)
        self._assignment |= {(p.topic, p.partition) for p in partitions}
        if self._paused:
            consumer.pause(partitions)
        else:
            consumer.resume(partitions)
        log.info("recorder assigned %s", _names(partitions))

    def _on_revoke(self, _consumer: Any, partitions: list[TopicPartition]) -> None:
        revoked = {(p.topic, p.partition) for p in partitions}
        self._assignment -= revoked
        for partition in revoked:
            self._written.pop(partition, None)
        self._carry = [m for m in self._carry if (m.topic(), m.partition()) not in revoked]
        log.info("recorder revoked %s", _names(partitions))

    def _on_lost(self, consumer: Any, partitions: list[TopicPartition]) -> None:
        self._on_revoke(consumer, partitions)

    def _on_error(self, error: KafkaError) -> None:
        if error.fatal():
            raise RuntimeError(f"fatal Kafka error: {error}")
        log.warning("recorder: Kafka error: %s", error)

    # -- stop ---------------------------------------------------------------------------------

    def _shutdown(self) -> None:
        consumer, self._consumer = self._consumer, None
        if consumer is not None:
            # The asynchronous commits of the last batches may still be in flight: commit
            # what was written once more, synchronously, then leave the group at once.
            owned = [TopicPartition(t, p, o) for (t, p), o in self._written.items()]
            if owned:
                try:
                    consumer.commit(offsets=owned, asynchronous=False)
                except Exception as exc:
                    log.warning("recorder: final commit failed (will rewrite): %s", exc)
            consumer.close()
        if self._store is not None:
            try:
                self._call(self._store.close(), timeout=15)
            except Exception as exc:
                log.warning("recorder: closing the Cassandra session failed: %s", exc)
        self._set_ready(False, "stopped")
        log.info(
            "recorder stopped; wrote %d record(s), %d row(s)",
            self.written_messages,
            self.written_rows,
        )

    def _call(self, coroutine: Coroutine[Any, Any, T], timeout: float | None) -> T:
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop).result(timeout)


def _names(partitions: list[TopicPartition]) -> str:
    return ", ".join(f"{p.topic}[{p.partition}]" for p in partitions) or "nothing"
