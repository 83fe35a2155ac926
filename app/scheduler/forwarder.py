"""③ The delay forwarder: holds retry-topic messages until they are due, then forwards them
unchanged (value, key, every header) to the redeliver topic.

A message due later than its retry topic's tier holds it (a receiver's ``Retry-After``) is
not held to its due time: by its write time + the tier's delay it *hops*, re-produced
unchanged to the retry topic of the tier that fits what is left (``policy.plan``). So no
partition's head waits longer than its tier's delay, and no retry waits behind another
webhook's far later one. A hop is handed off exactly like a forward: tracked in the
``AckTracker``, committed past only once Kafka acknowledged the copy.

One confluent-kafka consumer reads every retry topic; one idempotent producer writes the
redeliver topic. Per assigned partition the scheduler keeps:

- a ``HoldQueue``: messages handed to it and not yet forwarded, in offset order. While its
  head is not due the partition is ``pause()``-d, so the queue stays small; the loop keeps
  polling so the consumer stays in its group. The partition is resumed ``RESUME_LEAD_S``
  before the head is due (librdkafka refetches a resumed partition lazily, see
  ``policy.RESUME_LEAD_S``), and paused again if ``HOLD_CAP`` messages pile up.
- an ``AckTracker``: forwarded messages awaiting their delivery reports. The committed offset
  only ever advances over the acknowledged prefix (offset + 1 of the last one).

librdkafka behaviour this relies on: ``pause()`` drops the partition's prefetched messages and
``resume()`` fetches again after the last message handed to the application, so nothing is
skipped or repeated while the partition stays assigned. A partition's *application* pause
flag, however, survives a revoke and re-assignment (only the library's own pause is reset),
so every assigned partition is resumed on assignment; see ``_on_assign``.

Failure model: a delivery report error (e.g. the broker down for longer than
``message.timeout.ms``) stops the scheduler with ``HandOffError`` after committing only what
was acknowledged before it; the restart re-reads from there. Duplicates are possible for
forwarded-but-uncommitted messages (at-least-once), loss is not; a hop acknowledged but not
committed is hopped again after a restart, so its retry may be redelivered twice, with the
same delivery id (receivers dedupe on it).
"""

from __future__ import annotations

import logging
import threading
import time
from functools import partial
from typing import Any

from confluent_kafka import (
    TIMESTAMP_NOT_AVAILABLE,
    Consumer,
    KafkaError,
    KafkaException,
    Message,
    Producer,
    TopicPartition,
)

from app.errors import HandOffError
from app.kafka import client_config
from app.scheduler.policy import (
    AckTracker,
    Forward,
    Held,
    HoldQueue,
    Hop,
    Sent,
    lateness_ms,
    next_wake,
    parse_due,
    plan,
    poll_timeout,
    ready_at,
    should_pause,
)
from app.settings import Settings
from app.topics import Topics

log = logging.getLogger(__name__)

Partition = tuple[str, int]

BATCH = 500  # messages per consume() call
REVOKE_FLUSH_S = 10.0  # on revoke, wait this long for in-flight forwards before committing
STOP_FLUSH_S = 30.0  # on stop, wait this long for in-flight forwards before committing
# Heartbeats come from librdkafka's own thread, so holding a message never needs a long
# session; a short one lets a replacement take over a crashed scheduler's partitions in ~10 s
# instead of the 45 s default (the broker's minimum is 6 s).
SESSION_TIMEOUT_MS = 10_000
FETCH_WAIT_MS = 100


def wall_ms() -> int:
    """The wall clock in UTC epoch ms, floored (see ``policy.ready_at``)."""
    return time.time_ns() // 1_000_000


def consumer_config(settings: Settings) -> dict[str, Any]:
    return {
        **client_config(settings),
        "group.id": settings.kafka.scheduler_group,
        "client.id": "hookstream-scheduler",
        "enable.auto.commit": False,
        "enable.auto.offset.store": False,
        "auto.offset.reset": "earliest",
        "session.timeout.ms": SESSION_TIMEOUT_MS,
        # librdkafka keeps one fetch in flight per broker: a partition resumed while a long-poll
        # fetch waits is only fetched when that returns. A short long-poll bounds this lateness.
        "fetch.wait.max.ms": FETCH_WAIT_MS,
    }


def producer_config(settings: Settings) -> dict[str, Any]:
    return {
        **client_config(settings),
        "client.id": "hookstream-scheduler",
        "enable.idempotence": True,
        "acks": "all",
        "linger.ms": 5,
        # The Java client's key hashing, as aiokafka (Faust) uses: a webhook's redeliveries land
        # on the partition its other messages would, whichever client wrote them.
        "partitioner": "murmur2_random",
    }


class Scheduler:
    """The delay forwarder. Build it once, call ``run(stop)`` in one thread (it blocks).

    The counters below are for metrics; other threads may read them at any time:

    - ``forwarded_total``: messages forwarded and acknowledged by Kafka since start.
    - ``hopped_total``: messages re-produced to a retry topic (due later than their tier holds)
      and acknowledged since start.
    - ``held``: retry topic → messages held right now (taken in, not yet forwarded).
    - ``last_lateness_ms``: lateness (forward time - due time) of the latest forward.
    - ``assignment``: the partitions this scheduler owns right now.
    """

    def __init__(self, settings: Settings) -> None:
        self.topics = Topics.from_settings(settings)
        self._settings = settings
        self.forwarded_total = 0
        self.hopped_total = 0
        self.held: dict[str, int] = dict.fromkeys(self.topics.retries.values(), 0)
        self.last_lateness_ms: float | None = None
        self.assignment: frozenset[Partition] = frozenset()
        # Everything below is touched only by the thread inside run().
        self._consumer: Any = None
        self._producer: Any = None
        self._queues: dict[Partition, HoldQueue[Any]] = {}
        self._acks: dict[Partition, AckTracker] = {}
        self._to_commit: dict[Partition, int] = {}
        self._paused: set[Partition] = set()
        self._last_taken: dict[Partition, int] = {}
        self._failure: str | None = None
        self._tiers = tuple(self.topics.retries)

    def run(self, stop: threading.Event) -> None:
        """Forward due messages until ``stop`` is set; then stop cleanly and return.

        Raises ``HandOffError`` if Kafka refused a forward (nothing past it is committed).
        """
        topics = list(self.topics.retries.values())
        if not topics:
            log.warning("the retry schedule has no retries: the scheduler has nothing to do")
            stop.wait()
            return
        self._consumer = Consumer({**consumer_config(self._settings), "error_cb": self._on_error})
        self._producer = Producer({**producer_config(self._settings), "error_cb": self._on_error})
        self._consumer.subscribe(
            topics, on_assign=self._on_assign, on_revoke=self._on_revoke, on_lost=self._on_lost
        )
        log.info("scheduler forwarding %s to %s", ", ".join(topics), self.topics.redeliver)
        try:
            while not stop.is_set():
                self._step()
        finally:
            self._shutdown()
        self._raise_if_failed()

    # -- one turn of the loop ---------------------------------------------------------------

    def _step(self) -> None:
        heads = [
            (ready, partition in self._paused)
            for partition, queue in self._queues.items()
            if (ready := queue.next_ready()) is not None
        ]
        awaiting_acks = any(self._acks.values())
        timeout = poll_timeout(time.monotonic(), next_wake(heads), awaiting_acks)
        # consume(n, timeout) waits for n messages or the whole timeout, so block in poll(),
        # which returns at the first message, then take whatever else is already fetched.
        first = self._consumer.poll(timeout)
        messages = [] if first is None else [first, *self._consumer.consume(BATCH - 1, 0)]
        # The wall clock is read once per batch, when its messages are taken in.
        now_wall, now_mono = wall_ms(), time.monotonic()
        for message in messages:
            error = message.error()
            if error is not None:
                self._on_error(error)
            else:
                self._take_in(message, now_wall, now_mono)
        self._forward_ready()
        self._producer.poll(0)  # serve delivery reports
        self._raise_if_failed()
        self._commit()
        self._pause_or_resume()
        self._count_held()

    def _take_in(self, message: Message, now_wall: int, now_mono: float) -> None:
        partition: Partition = (message.topic(), message.partition())
        offset: int = message.offset()
        if partition not in self.assignment:
            # Fetched before a revoke completed: the new owner reads it from the committed
            # offset, so ignoring it here loses nothing.
            log.debug("ignoring %s[%d]@%d: partition not assigned", *partition, offset)
            return
        last = self._last_taken.get(partition)
        if last is not None and offset <= last:
            log.warning("ignoring %s[%d]@%d: already taken (up to %d)", *partition, offset, last)
            return
        self._last_taken[partition] = offset
        due = parse_due(message.headers())
        if due is None:
            log.warning(
                "%s[%d]@%d has no parsable hs-due-at header: forwarding it at once",
                *partition,
                offset,
            )
        held = self._held(message, offset, due, now_wall, now_mono)
        self._queues.setdefault(partition, HoldQueue()).add(held)

    def _held(
        self, message: Message, offset: int, due: int | None, now_wall: int, now_mono: float
    ) -> Held[Any]:
        tier = self.topics.retry_tier(message.topic())
        kind, written = message.timestamp()
        if tier is None:  # not a retry topic: cannot happen, subscribed only to those
            return Held(message, offset, due, ready_at(due, now_wall, now_mono))
        step = plan(
            due_ms=due,
            # Without a timestamp, the take-in time: the hold then ends no earlier than it would.
            written_ms=written if kind != TIMESTAMP_NOT_AVAILABLE else now_wall,
            tier=tier,
            tiers=self._tiers,
            now_ms=now_wall,
        )
        at = ready_at(step.at_ms, now_wall, now_mono)
        match step:
            case Forward():
                return Held(message, offset, due, at)
            case Hop(tier=target):
                return Held(message, offset, due, at, hop=target)

    def _forward_ready(self) -> None:
        now_mono = time.monotonic()
        for partition, queue in self._queues.items():
            while (held := queue.head_ready(now_mono)) is not None:
                if not self._forward(partition, held):
                    return  # the producer's queue is full: try again next turn
                queue.pop()

    def _forward(self, partition: Partition, held: Held[Any]) -> bool:
        message = held.item
        sent = Sent(held.offset)
        hop = held.hop is not None
        # A hop goes by its key, like the worker's retries, so the copy's partition is the one
        # the worker would have picked; its headers (the due time among them) travel unchanged.
        target = self.topics.redeliver if held.hop is None else self.topics.retries[held.hop]
        try:
            self._producer.produce(
                target,
                value=message.value(),
                key=message.key(),
                headers=message.headers(),
                on_delivery=partial(self._on_delivery, partition, sent, hop),
            )
        except BufferError:
            return False
        except KafkaException as exc:
            raise HandOffError(
                f"cannot forward {partition[0]}[{partition[1]}]@{held.offset}: {exc}"
            ) from exc
        self._acks.setdefault(partition, AckTracker()).track(sent)
        if hop:
            log.debug(
                "hopped %s[%d]@%d to %s: due in %.0f ms",
                *partition,
                held.offset,
                target,
                (held.due_ms or 0) - time.time_ns() / 1e6,
            )
        elif held.due_ms is not None:
            self.last_lateness_ms = lateness_ms(time.time_ns() / 1e6, held.due_ms)
            log.debug(
                "forwarded %s[%d]@%d %.1f ms late", *partition, held.offset, self.last_lateness_ms
            )
        return True

    def _on_delivery(
        self, partition: Partition, sent: Sent, hop: bool, err: Any, _msg: Any
    ) -> None:
        sent.done = True
        if err is None:
            if hop:
                self.hopped_total += 1
            else:
                self.forwarded_total += 1
            return
        sent.error = str(err)
        log.error(
            "%s of %s[%d]@%d failed: %s", "hop" if hop else "forward", *partition, sent.offset, err
        )
        if self._failure is None:
            self._failure = f"forward of {partition[0]}[{partition[1]}]@{sent.offset} failed: {err}"

    def _commit(self, partitions: set[Partition] | None = None) -> None:
        """Commit the acknowledged prefix of each partition (of ``partitions`` if given)."""
        for partition, acks in self._acks.items():
            offset = acks.commit_offset()
            if offset is not None:
                self._to_commit[partition] = offset
        pending = {
            p: o for p, o in self._to_commit.items() if partitions is None or p in partitions
        }
        if not pending:
            return
        offsets = [TopicPartition(t, p, o) for (t, p), o in pending.items()]
        try:
            results = self._consumer.commit(offsets=offsets, asynchronous=False)
        except KafkaException as exc:
            log.warning("commit failed, will retry: %s", exc)
            return
        for result in results or ():
            key = (result.topic, result.partition)
            if result.error is not None:
                log.warning("commit of %s[%d] failed, will retry: %s", *key, result.error)
            elif self._to_commit.get(key) == pending.get(key):
                del self._to_commit[key]

    def _pause_or_resume(self) -> None:
        now_mono = time.monotonic()
        for partition in self.assignment:
            queue = self._queues.get(partition)
            held, head_ready = (len(queue), queue.next_ready()) if queue else (0, None)
            pause = should_pause(held, head_ready, now_mono)
            if pause and partition not in self._paused:
                self._consumer.pause([TopicPartition(*partition)])
                self._paused.add(partition)
                head = queue.head() if queue else None
                assert head is not None
                log.info(
                    "holding %s[%d] from offset %d: %d message(s), head leaves in %.0f ms",
                    *partition,
                    head.offset,
                    held,
                    max(0.0, head.ready_at - now_mono) * 1000,
                )
            elif not pause and partition in self._paused:
                self._consumer.resume([TopicPartition(*partition)])
                self._paused.discard(partition)
                log.debug("resumed %s[%d]", *partition)

    def _count_held(self) -> None:
        held = dict.fromkeys(self.topics.retries.values(), 0)
        for (topic, _), queue in self._queues.items():
            held[topic] = held.get(topic, 0) + len(queue)
        self.held = held

    def _raise_if_failed(self) -> None:
        if self._failure is not None:
            raise HandOffError(self._failure)

    def _on_error(self, error: KafkaError) -> None:
        if error.fatal():
            log.error("fatal Kafka error: %s", error)
            if self._failure is None:
                self._failure = f"fatal Kafka error: {error}"
        else:
            # Transient (broker down, all brokers down, ...): librdkafka retries by itself;
            # a produce that never succeeds ends in a delivery report error.
            log.warning("Kafka error: %s", error)

    # -- rebalances (called from inside consume()) ---------------------------------------------

    def _on_assign(self, consumer: Any, partitions: list[TopicPartition]) -> None:
        consumer.assign(partitions)
        # librdkafka keeps an application pause across revoke and re-assignment: a partition
        # paused while we held it would come back paused and never be read again.
        consumer.resume(partitions)
        self.assignment = self.assignment | {(p.topic, p.partition) for p in partitions}
        log.info("assigned %s", _names(partitions))

    def _on_revoke(self, _consumer: Any, partitions: list[TopicPartition]) -> None:
        revoked = {(p.topic, p.partition) for p in partitions}
        if any(self._acks.get(p) for p in revoked):
            self._producer.flush(REVOKE_FLUSH_S)
        self._commit(revoked)
        self._forget(revoked)
        log.info("revoked %s", _names(partitions))

    def _on_lost(self, _consumer: Any, partitions: list[TopicPartition]) -> None:
        # Lost partitions may already belong to another member: committing could move its
        # position, so only drop our state; the new owner re-reads from the committed offset.
        self._forget({(p.topic, p.partition) for p in partitions})
        log.warning("lost %s", _names(partitions))

    def _forget(self, partitions: set[Partition]) -> None:
        for partition in partitions:
            self._queues.pop(partition, None)
            self._acks.pop(partition, None)
            self._to_commit.pop(partition, None)
            self._last_taken.pop(partition, None)
            self._paused.discard(partition)
        self.assignment = self.assignment - partitions
        self._count_held()

    # -- stop -------------------------------------------------------------------------------

    def _shutdown(self) -> None:
        """Forward nothing more; commit what Kafka acknowledged; leave the group."""
        consumer, producer = self._consumer, self._producer
        try:
            remaining = producer.flush(STOP_FLUSH_S)
            if remaining:
                log.warning("%d forward(s) unacknowledged at stop: not committed", remaining)
            self._commit()
        finally:
            consumer.close()  # leaves the group now, no session timeout to wait for
            producer.flush(0)
            self._queues.clear()
            self._count_held()
            self._consumer = self._producer = None  # break the callback cycles: free librdkafka
            log.info("scheduler stopped; forwarded %d message(s)", self.forwarded_total)


def _names(partitions: list[TopicPartition]) -> str:
    return ", ".join(f"{p.topic}[{p.partition}]" for p in partitions) or "nothing"
