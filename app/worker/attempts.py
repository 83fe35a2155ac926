"""④ The attempt consumer: reads the deliveries and redeliver topics and runs one task per
attempt message, acknowledging in offset order per partition.

Why not a Faust agent: at a thousand deliveries a second Faust's per-message path (stream,
event, ack bookkeeping, its own commit loop) cost more CPU than the HTTP request itself
(BENCHMARKS.md), and it cannot pause a partition while still polling. So this is a plain
confluent-kafka consumer, the idiom of the scheduler:

- One thread polls (``poll`` for the first message, then ``consume`` what else is already
  fetched) and hands each batch to the event loop with one wake-up (``app.inbox``). It also
  does every other consumer call (offset store, pause, resume, commit), so the consumer is
  only ever touched from that thread.
- The loop admits every message as a task and records it in ``OrderedAcks``; when a task
  ends, the contiguous finished prefix of its partition is handed back to the thread, which
  stores the offset (``enable.auto.offset.store`` off); librdkafka commits stored offsets
  every ``worker.commit_interval``. The committed offset never passes unfinished work, and
  a kill repeats at most what was in flight plus one commit interval of finished work.
- Back-pressure: at ``limit`` messages outstanding the thread waits for room. When that
  lasts (``PAUSE_AFTER_S``) it pauses every assigned partition and keeps polling, so the
  consumer stays in its group. An outage of Kafka or Cassandra therefore holds a bounded
  number of attempts in memory.
- Rebalances (cooperative-sticky, so only moved partitions stop): on revoke the thread waits
  (up to ``REVOKE_DRAIN_S``) for the revoked partitions' tasks, then commits their offsets
  synchronously before the partitions move. Tasks still running after that are abandoned:
  their late acks are ignored (a generation per partition), and the new owner repeats them.
- Static membership (``group.instance.id`` from ``worker.instance_id``) and a short session
  timeout make a restarted or killed worker's partitions move in seconds, not a minute.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from collections.abc import Awaitable, Callable
from functools import partial
from typing import Any

from confluent_kafka import Consumer, KafkaError, Message, TopicPartition

from app import metrics
from app.inbox import inbox
from app.kafka import client_config
from app.settings import Settings
from app.worker.acks import OrderedAcks

log = logging.getLogger(__name__)

Partition = tuple[str, int]
Handler = Callable[[Message], Awaitable[None]]

BATCH = 500  # messages per consume() call at most
POLL_S = 0.05  # consume() timeout: how soon a stored offset or a stop is seen
REVOKE_DRAIN_S = 20.0  # > the attempt deadline: a revoked partition's attempts can finish
LAG_EVERY_S = 5.0
# Full for this long (not just a burst): pause and poll, or a long outage would outlast
# max.poll.interval.ms; also how long a rebalance may wait for a saturated worker.
PAUSE_AFTER_S = 2.0
STOP_DRAIN_S = 30.0  # SIGTERM: in-flight attempts get this long to finish and be recorded


def _take(consumer: Any, most: int) -> list[Any]:
    """Up to ``most`` messages, as soon as there is one. ``consume(n, timeout)`` waits for
    ``n`` messages or the whole timeout, which held every attempt of a quiet topic for up to
    ``POLL_S`` (measured: 38 ms of a 52 ms event → attempt median at 200 events/s). So block
    in ``poll()`` for the first and take what else is already fetched without waiting."""
    first = consumer.poll(POLL_S)
    if first is None:
        return []
    return [first, *consumer.consume(most - 1, 0)] if most > 1 else [first]


def deliver_group(settings: Settings) -> str:
    """The attempt consumers' group: apart from the match agent's (Faust's own protocol)."""
    return f"{settings.kafka.consumer_group}-deliver"


def consumer_config(settings: Settings) -> dict[str, Any]:
    worker = settings.worker
    config: dict[str, Any] = {
        **client_config(settings),
        "group.id": deliver_group(settings),
        "client.id": "hookstream-worker-deliver",
        "enable.auto.commit": True,
        "enable.auto.offset.store": False,
        "auto.commit.interval.ms": max(1, int(worker.commit_interval.total_seconds() * 1000)),
        "auto.offset.reset": "earliest",
        "partition.assignment.strategy": "cooperative-sticky",
        "session.timeout.ms": int(worker.session_timeout.total_seconds() * 1000),
        "heartbeat.interval.ms": max(500, int(worker.session_timeout.total_seconds() * 1000) // 5),
        "fetch.wait.max.ms": 50,
    }
    if worker.instance_id:
        config["group.instance.id"] = f"{worker.instance_id}-deliver"
    return config


class AttemptConsumer:
    """Build on the event loop, ``await start()``, ``await stop()`` to drain and leave.

    ``handler`` runs once per message, as a task; it must complete its own hand-off (or keep
    retrying it) and raise only for a bug. A raising handler calls ``on_bug`` (which exits
    the process: the message stays unacknowledged and is re-read after the restart).
    """

    def __init__(
        self,
        settings: Settings,
        topics: list[str],
        handler: Handler,
        *,
        limit: int,
        on_bug: Callable[[BaseException], None],
    ) -> None:
        self._settings = settings
        self._topics = topics
        self._handler = handler
        self._limit = limit
        self._on_bug = on_bug
        self._acks: OrderedAcks[int] = OrderedAcks()
        self._generation: dict[Partition, int] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._busy: dict[Partition, set[asyncio.Task[None]]] = {}  # tasks per partition
        # Single-writer counters: the thread counts what it handed over, the loop what ended.
        self._handed = 0
        self._ended = 0
        # Offsets to store (partition -> next offset), written by the loop, taken by the thread.
        self._to_store: dict[Partition, int] = {}
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._consumer: Any = None
        self._in_flight = metrics.IN_FLIGHT.labels("deliver")
        self.assignment: frozenset[Partition] = frozenset()
        self.paused = False
        self._full_since: float | None = None
        self._room = threading.Event()  # set by the loop whenever an attempt ends

    @property
    def outstanding(self) -> int:
        return self._handed - self._ended

    # ── the loop's side ───────────────────────────────────────────────────────────────────

    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._consumer = Consumer(consumer_config(self._settings))
        self._consumer.subscribe(
            self._topics, on_assign=self._on_assign, on_revoke=self._on_revoke,
            on_lost=self._on_lost,
        )  # fmt: skip
        self._thread = threading.Thread(target=self._poll, name="deliver-consumer", daemon=True)
        self._thread.start()

    async def stop(self) -> None:
        """Stop taking messages, let in-flight attempts finish (up to ``STOP_DRAIN_S``), commit
        what finished and close the consumer (a static member keeps its place until its
        session times out, so a restart takes its partitions straight back)."""
        self._stopping.set()
        if self._tasks:
            log.info("deliver: draining %d in-flight attempts", len(self._tasks))
            await asyncio.wait(list(self._tasks), timeout=STOP_DRAIN_S)
        if self._thread is not None:
            await asyncio.to_thread(self._thread.join)

    def _admit(self, messages: list[Message]) -> None:
        loop = self._loop
        assert loop is not None
        for message in messages:
            partition = (message.topic(), message.partition())
            generation = self._generation.setdefault(partition, 0)
            ticket = self._acks.admit(partition, message.offset())
            task = loop.create_task(self._run(message, partition, ticket, generation))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
            busy = self._busy.setdefault(partition, set())
            busy.add(task)
            task.add_done_callback(busy.discard)
        self._in_flight.set(self._acks.in_flight)

    async def _run(
        self, message: Message, partition: Partition, ticket: object, generation: int
    ) -> None:
        try:
            await self._handler(message)
        except asyncio.CancelledError:
            raise
        except BaseException as exc:  # a bug: never ack, let the restart re-read it
            log.critical(
                "deliver: unexpected error on %s[%d]@%d; stopping without ack",
                *partition, message.offset(), exc_info=exc,
            )  # fmt: skip
            self._on_bug(exc)
            return
        finally:
            self._ended += 1
            self._room.set()
        if self._generation.get(partition) != generation:
            return  # revoked (and maybe re-assigned) meanwhile: the new owner repeats it
        done = self._acks.finish(partition, ticket)
        if done:
            with self._lock:
                self._to_store[partition] = done[-1] + 1
            self._in_flight.set(self._acks.in_flight)

    def _drain(self, partitions: list[Partition], finished: threading.Event) -> None:
        """On the loop: set ``finished`` once no task of ``partitions`` is in flight."""

        async def wait() -> None:
            pending = [t for p in partitions for t in self._busy.get(p, ())]
            if pending:
                await asyncio.wait(pending, timeout=REVOKE_DRAIN_S)
            finished.set()

        task = asyncio.get_running_loop().create_task(wait())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _forget(self, partitions: list[Partition]) -> None:
        """On the loop: drop the partitions' bookkeeping; their running tasks are abandoned."""
        for partition in partitions:
            self._generation[partition] = self._generation.get(partition, 0) + 1
            abandoned = self._acks.forget(partition)
            if abandoned:
                log.warning(
                    "deliver: %s[%d] moved with %d attempts unfinished (its new owner repeats "
                    "them)", *partition, abandoned,
                )  # fmt: skip
        with self._lock:
            for partition in partitions:
                self._to_store.pop(partition, None)
        self._in_flight.set(self._acks.in_flight)

    def _on_loop(self, callback: Callable[[], None]) -> None:
        assert self._loop is not None
        inbox(self._loop).put(callback)

    # ── the polling thread's side ─────────────────────────────────────────────────────────

    def _poll(self) -> None:
        consumer = self._consumer
        next_lag = time.monotonic() + LAG_EVERY_S
        try:
            while not self._stopping.is_set():
                self._store_finished()
                room = self._limit - self.outstanding
                if not self._back_pressure(room):
                    continue
                messages = _take(consumer, max(1, min(BATCH, room)))
                if messages:
                    fatal = next((m.error() for m in messages if _fatal(m)), None)
                    if fatal is not None:
                        # E.g. fenced by another member with our group.instance.id: nothing
                        # this consumer does will heal it. Exit; the supervisor restarts us.
                        log.critical("deliver: fatal consumer error: %s", fatal)
                        self._on_loop(partial(self._on_bug, RuntimeError(str(fatal))))
                        return
                    good = [m for m in messages if _usable(m)]
                    if good:
                        self._handed += len(good)
                        self._on_loop(partial(self._admit, good))
                if time.monotonic() >= next_lag:
                    next_lag = time.monotonic() + LAG_EVERY_S
                    self._measure_lag()
            self._finish()
        except Exception:
            # Never let the polling thread die silently: the worker would stop consuming
            # while looking alive. A bug here is a reason to restart.
            log.critical("deliver: the consumer thread failed", exc_info=True)
            self._on_loop(lambda: self._on_bug(RuntimeError("deliver consumer thread failed")))

    def _finish(self) -> None:
        """After stop: wait for the loop's last acks, commit them, close (leave the group)."""
        deadline = time.monotonic() + REVOKE_DRAIN_S
        while self.outstanding > 0 and time.monotonic() < deadline:
            time.sleep(0.01)
        self._store_finished()
        with contextlib.suppress(Exception):  # nothing stored yet: "no offset" is fine
            self._consumer.commit(asynchronous=False)
        self._consumer.close()

    def _store_finished(self) -> None:
        with self._lock:
            if not self._to_store:
                return
            finished, self._to_store = self._to_store, {}
        offsets = [
            TopicPartition(topic, partition, offset)
            for (topic, partition), offset in finished.items()
            if (topic, partition) in self.assignment
        ]
        if offsets:
            try:
                self._consumer.store_offsets(offsets=offsets)
            except Exception as exc:  # a partition revoked in between: its new owner repeats
                log.debug("deliver: offsets not stored: %s", exc)

    def _back_pressure(self, room: int) -> bool:
        """At the bound, wait for room without polling (the prefetched messages stay
        queued); only when it lasts (an outage, hung receivers) pause the partitions and
        poll, so the consumer stays in its group. True: consume now.

        Pausing at every brief saturation was measured to cap a backlog drain at exactly
        ``limit`` messages a second: ``pause()`` drops the prefetched messages and a resumed
        partition is fetched again only after librdkafka's fetch backoff (about 1 s).
        """
        if room > 0:
            self._full_since = None
            if self.paused:
                self._set_paused(False)
            return True
        now = time.monotonic()
        if self._full_since is None:
            self._full_since = now
        if not self.paused and now - self._full_since >= PAUSE_AFTER_S:
            self._set_paused(True)
        if self.paused:
            return True  # consume() on paused partitions: serves callbacks, returns nothing
        self._room.wait(POLL_S)
        self._room.clear()
        return False

    def _set_paused(self, paused: bool) -> None:
        parts = [TopicPartition(t, p) for t, p in self.assignment]
        if parts:
            (self._consumer.pause if paused else self._consumer.resume)(parts)
        self.paused = paused

    def _on_assign(self, _consumer: Any, partitions: list[TopicPartition]) -> None:
        added = {(tp.topic, tp.partition) for tp in partitions}
        self.assignment = self.assignment | added
        if self.paused and partitions:
            # Assigned after the pause: they would read past the bound otherwise. Pausing
            # before librdkafka's own incremental assign is fine: the flag is kept.
            self._consumer.pause(partitions)
        log.info("deliver: assigned %s", _names(added))

    def _on_revoke(self, consumer: Any, partitions: list[TopicPartition]) -> None:
        revoked = [(tp.topic, tp.partition) for tp in partitions]
        finished = threading.Event()
        self._on_loop(lambda: self._drain(revoked, finished))
        if not finished.wait(REVOKE_DRAIN_S + 1):
            log.warning("deliver: revoked partitions still busy after %.0fs", REVOKE_DRAIN_S)
        # The loop's acks for the drained tasks are queued behind the drain; give it a beat
        # to run them, then commit exactly what finished before the partitions move.
        settled = threading.Event()
        self._on_loop(settled.set)
        settled.wait(1.0)
        self._store_finished()
        with contextlib.suppress(Exception):  # nothing stored for them: nothing to commit
            consumer.commit(asynchronous=False)
        self.assignment = self.assignment - set(revoked)
        self._on_loop(lambda: self._forget(revoked))
        log.info("deliver: revoked %s", _names(set(revoked)))

    def _on_lost(self, _consumer: Any, partitions: list[TopicPartition]) -> None:
        lost = [(tp.topic, tp.partition) for tp in partitions]
        self.assignment = self.assignment - set(lost)
        self._on_loop(lambda: self._forget(lost))
        log.warning("deliver: lost %s (session expired); their new owner repeats them", lost)

    def _measure_lag(self) -> None:
        # Cached watermarks come with every fetch; the position is local state. Any error
        # here (a partition just assigned, not fetched yet) is a missing sample, never a crash.
        try:
            parts = [TopicPartition(t, p) for t, p in self.assignment]
            for tp in self._consumer.position(parts):
                _low, high = self._consumer.get_watermark_offsets(tp, cached=True)
                if tp.offset >= 0 and high >= 0:
                    metrics.CONSUMER_LAG.labels(tp.topic, str(tp.partition)).set(
                        max(0, high - tp.offset)
                    )
        except Exception as exc:
            log.debug("deliver: lag not measured: %s", exc)


def _fatal(message: Message) -> bool:
    error = message.error()
    return error is not None and bool(error.fatal())


def _usable(message: Message) -> bool:
    error = message.error()
    if error is None:
        return True
    if error.code() != KafkaError._PARTITION_EOF:
        log.warning("deliver: consumer error: %s", error)
    return False


def _names(partitions: set[Partition]) -> str:
    return ", ".join(f"{t}[{p}]" for t, p in sorted(partitions)) or "nothing"
