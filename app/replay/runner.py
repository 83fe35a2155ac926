"""Run one replay: re-read the events topic over [since, until] and deliver one webhook's
matches to it, at a bounded rate, reporting progress, honouring a cancel between batches.

The range, per partition: from the first offset whose timestamp is at or after ``since``
(``offsets_for_times``) to the first at or after ``until`` — or the end of the partition
when the replay starts, so a replay always ends. Messages outside [since, until] by their own
timestamp are read but never matched.

An event is a match when it parses (invalid events are the match step's business, never
replayed), belongs to the webhook's account (``app.accounts.event_account``: an event of
another account is never replayed into a webhook), has a type the webhook subscribes to and
passes its filter. Its delivery state decides the rest (``decide``). Each enqueued attempt
goes to the deliveries topic like a manual retry (one more attempt of the same delivery id,
origin ``replay``); the event itself goes to the records topic first, so the delivery log
and later manual retries find it.

Retention: when a partition's oldest kept offset is past the start of the range (older
events were deleted), the replay carries ``earliest``: the timestamp of the oldest event the
topic still had, i.e. how far back it could go.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime

from confluent_kafka import TIMESTAMP_NOT_AVAILABLE, Consumer, Message, TopicPartition

from app.accounts import event_account
from app.deliveries import AttemptMessage, DeliveryStatus, Origin, delivery_id
from app.errors import InvalidEvent
from app.events import Event, parse_event
from app.kafka import AsyncProducer, client_config
from app.records import RecordLog
from app.replay import metrics
from app.replay.jobs import Counts, Replay, ReplayMode, ReplayStatus, progress
from app.settings import Settings
from app.store import Store
from app.store.records import DeliveryRecord, EventRecord
from app.store.timeline import from_ms, to_ms
from app.topics import Topics
from app.webhooks import Webhook

log = logging.getLogger(__name__)

LOOKUP_CONCURRENCY = 64  # delivery-state reads in flight per batch
KAFKA_TIMEOUT_S = 15.0


def decide(mode: ReplayMode, state: DeliveryRecord | None) -> int | None:
    """The attempt number to enqueue for a matching event, or None to skip it.

    Never beside an attempt chain still in progress (pending: its own retries finish it, and
    a second chain would reuse its attempt numbers). ``missing`` also skips a delivery that
    succeeded; ``all`` sends it once more. A new delivery starts at attempt 1; an existing
    one continues its numbering, like a manual retry, so no attempt record is overwritten.
    """
    if state is None:
        return 1
    if state.status is DeliveryStatus.PENDING:
        return None
    if mode is ReplayMode.MISSING and state.status is DeliveryStatus.SUCCESS:
        return None
    return state.attempts + 1


class RateLimit:
    """At most ``rate`` permits a second, smoothly (a token bucket of one second's worth)."""

    def __init__(self, rate: float) -> None:
        self._rate = rate
        self._tokens = min(rate, 1.0)
        self._at = time.monotonic()

    async def take(self) -> None:
        while True:
            now = time.monotonic()
            self._tokens = min(self._rate, self._tokens + (now - self._at) * self._rate)
            self._at = now
            if self._tokens >= 1.0:
                self._tokens -= 1.0
                return
            await asyncio.sleep((1.0 - self._tokens) / self._rate)


@dataclass
class _Range:
    starts: dict[int, int] = field(default_factory=dict)
    ends: dict[int, int] = field(default_factory=dict)
    lows: dict[int, int] = field(default_factory=dict)  # oldest offset the topic still holds


class Interrupted(Exception):
    """The replayer is stopping or lost the job's partition: leave the job to be re-run."""


class ReplayRunner:
    """Runs replays one at a time on this event loop. ``interrupted()`` is asked between
    batches: True means stop without finishing (the job message stays uncommitted)."""

    def __init__(
        self, settings: Settings, store: Store, producer: AsyncProducer, topics: Topics
    ) -> None:
        self._settings = settings
        self._store = store
        self._producer = producer
        self._topics = topics
        self._records = RecordLog(producer, topics)

    async def run(self, replay: Replay, interrupted: Callable[[], bool]) -> Replay:
        """Run ``replay`` to its end and return it finished (done, cancelled or failed).
        Raises ``Interrupted`` (job left to re-run) or ``HandOffError`` (Kafka/Cassandra
        refused; the job is re-run after the restart)."""
        context = {"replay_id": replay.id, "webhook_id": replay.webhook_id}
        webhook = await self._store.webhooks.get(replay.webhook_id)
        if webhook is None or webhook.account_id != replay.account_id:
            return await self._finish(replay, ReplayStatus.FAILED, "the webhook was deleted")
        if not webhook.active:
            return await self._finish(replay, ReplayStatus.FAILED, "the webhook is paused")
        await self._store.replays.set_status(replay.id, ReplayStatus.RUNNING)
        log.info("replay started (%s)", replay.mode.value, extra=context)
        consumer = Consumer(
            {
                **client_config(self._settings),
                "group.id": f"{self._settings.replay.consumer_group}-reader",  # never commits
                "enable.auto.commit": False,
                "enable.auto.offset.store": False,
                "enable.partition.eof": False,
                "fetch.max.bytes": 8 * 1024 * 1024,
            }
        )
        try:
            return await self._scan(replay, webhook, consumer, interrupted)
        finally:
            await asyncio.to_thread(consumer.close)

    async def _scan(
        self,
        replay: Replay,
        webhook: Webhook,
        consumer: Consumer,
        interrupted: Callable[[], bool],
    ) -> Replay:
        topic = self._topics.events
        since_ms, until_ms = to_ms(replay.since), to_ms(replay.until)
        span = await asyncio.to_thread(_find_range, consumer, topic, since_ms, until_ms)
        # A job taken over from a replayer that stopped resumes where that one had enqueued
        # everything before (saved after each batch): at most one batch is sent twice.
        resumed = replay.status is ReplayStatus.RUNNING and bool(replay.positions)
        positions = {
            p: max(start, replay.positions.get(p, start)) if resumed else start
            for p, start in span.starts.items()
        }
        open_partitions = {p for p in span.starts if positions[p] < span.ends[p]}
        consumer.assign([TopicPartition(topic, p, positions[p]) for p in open_partitions])
        counts = replay.counts if resumed else Counts()
        earliest = replay.earliest if resumed else None
        if resumed:
            log.info("replay resumed", extra={"replay_id": replay.id})
        limit = RateLimit(self._settings.replay.rate)
        batch = self._settings.replay.batch
        while open_partitions:
            if interrupted():
                raise Interrupted
            if await self._store.replays.cancel_requested(replay.id):
                await self._progress(replay, counts, span, positions, earliest)
                return await self._finish(replay, ReplayStatus.CANCELLED, None, counts)
            messages = await asyncio.to_thread(consumer.consume, batch, 1.0)
            matches: list[tuple[Event, str]] = []
            for message in messages:
                if message.error() is not None:
                    continue
                p, offset = message.partition(), message.offset()
                if p not in open_partitions or offset >= span.ends[p]:
                    continue
                if offset == span.starts[p] and offset == span.lows[p] and offset > 0:
                    # The partition's first kept event: older ones were deleted (retention).
                    kind, ts = message.timestamp()
                    if kind != TIMESTAMP_NOT_AVAILABLE and ts > since_ms:
                        seen = from_ms(ts)
                        earliest = seen if earliest is None else min(earliest, seen)
                positions[p] = offset + 1
                if positions[p] >= span.ends[p]:
                    open_partitions.discard(p)
                    consumer.pause([TopicPartition(topic, p)])
                counts = replace(counts, scanned=counts.scanned + 1)
                found = _match(message, webhook, since_ms, until_ms, self._settings)
                if found is not None:
                    matches.append(found)
            if not messages:
                # Nothing came: a partition may end on offsets that hold no message (for
                # example transaction markers); close those the consumer has moved past.
                for tp in await asyncio.to_thread(
                    consumer.position, [TopicPartition(topic, p) for p in open_partitions]
                ):
                    if tp.offset >= 0 and tp.offset >= span.ends[tp.partition]:
                        open_partitions.discard(tp.partition)
                        positions[tp.partition] = span.ends[tp.partition]
            counts = replace(counts, matched=counts.matched + len(matches))
            enqueued = await self._deliver(replay, webhook, matches, limit)
            counts = replace(
                counts,
                enqueued=counts.enqueued + enqueued,
                skipped=counts.skipped + len(matches) - enqueued,
            )
            metrics.EVENTS.labels("scanned").inc(len(messages))
            metrics.EVENTS.labels("matched").inc(len(matches))
            metrics.EVENTS.labels("enqueued").inc(enqueued)
            await self._progress(replay, counts, span, positions, earliest)
        return await self._finish(replay, ReplayStatus.DONE, None, counts)

    async def _deliver(
        self,
        replay: Replay,
        webhook: Webhook,
        matches: list[tuple[Event, str]],
        limit: RateLimit,
    ) -> int:
        """Look up the matches' delivery states, enqueue what ``decide`` says; the count."""
        gate = asyncio.Semaphore(LOOKUP_CONCURRENCY)

        async def one(event: Event, account: str) -> bool:
            did = delivery_id(event.id, webhook.id)
            async with gate:
                state = await self._store.deliveries.get(did)
            attempt = decide(replay.mode, state)
            if attempt is None:
                return False
            await limit.take()
            now = datetime.now(UTC)
            # An existing delivery keeps its created_at (the worker derives it from
            # enqueued_at): the log shows one row per delivery, moved to its new state.
            first_ms = to_ms(state.created_at) if state is not None else to_ms(now)
            await self._records.save_event(
                EventRecord(
                    event.id, event.type, event.created_at, event.body, now, account_id=account
                )
            )
            message = AttemptMessage(
                delivery_id=did,
                webhook_id=webhook.id,
                event_id=event.id,
                event_type=event.type,
                attempt=attempt,
                body=event.body,
                enqueued_at_ms=first_ms,
                origin=Origin.REPLAY,
                account_id=account,
            )
            await self._producer.send(
                self._topics.deliveries, message.body, key=message.key(), headers=message.headers()
            )
            return True

        results = await asyncio.gather(*(one(event, account) for event, account in matches))
        return sum(results)

    async def _progress(
        self,
        replay: Replay,
        counts: Counts,
        span: _Range,
        positions: dict[int, int],
        earliest: datetime | None,
    ) -> None:
        share = progress(span.starts, span.ends, positions)
        await self._store.replays.set_progress(replay.id, counts, share, earliest, positions)

    async def _finish(
        self,
        replay: Replay,
        status: ReplayStatus,
        error: str | None,
        counts: Counts | None = None,
    ) -> Replay:
        await self._store.replays.set_status(replay.id, status, error)
        metrics.REPLAYS.labels(status.value).inc()
        log.info(
            "replay %s: %s",
            status.value,
            counts or error,
            extra={"replay_id": replay.id, "webhook_id": replay.webhook_id},
        )
        final = await self._store.replays.get(replay.id)
        return final or replace(replay, status=status, error=error)


def _match(
    message: Message, webhook: Webhook, since_ms: int, until_ms: int, settings: Settings
) -> tuple[Event, str] | None:
    """The event and its account if it is one of ``webhook``'s, in the range; else None."""
    kind, ts = message.timestamp()
    if kind != TIMESTAMP_NOT_AVAILABLE and not since_ms <= ts <= until_ms:
        return None
    try:
        account = event_account(message.headers() or [])
        if account != webhook.account_id:
            return None  # never another account's event
        event = parse_event(
            message.value(),
            max_bytes=settings.delivery.event_max_bytes,
            kafka_timestamp_ms=ts if kind != TIMESTAMP_NOT_AVAILABLE else None,
        )
    except InvalidEvent:
        return None
    if not webhook.subscribes_to(event.type):
        return None
    if webhook.filter is not None and not webhook.filter.matches(event.data):
        return None
    return event, account


def _find_range(consumer: Consumer, topic: str, since_ms: int, until_ms: int) -> _Range:
    """Per partition: [first offset at or after since, first at or after until) and the
    partition's oldest kept offset. Blocking (Kafka metadata and offset look-ups)."""
    meta = consumer.list_topics(topic, timeout=KAFKA_TIMEOUT_S).topics[topic]
    partitions = sorted(meta.partitions)
    span = _Range()
    marks: dict[int, tuple[int, int]] = {}
    for p in partitions:
        marks[p] = consumer.get_watermark_offsets(
            TopicPartition(topic, p), timeout=KAFKA_TIMEOUT_S, cached=False
        )
    starts = consumer.offsets_for_times(
        [TopicPartition(topic, p, since_ms) for p in partitions], timeout=KAFKA_TIMEOUT_S
    )
    ends = consumer.offsets_for_times(
        [TopicPartition(topic, p, until_ms + 1) for p in partitions], timeout=KAFKA_TIMEOUT_S
    )
    for start, end in zip(starts, ends, strict=True):
        low, high = marks[start.partition]
        # -1: no message at or after the time; the range starts (or ends) at the end.
        span.starts[start.partition] = start.offset if start.offset >= 0 else high
        span.ends[start.partition] = end.offset if end.offset >= 0 else high
        span.lows[start.partition] = low
    return span
