"""What the worker's handlers share: built once per process in ``app.worker.main``."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

from app.accounts import AccountDirectory
from app.kafka import AsyncProducer
from app.matching import WebhookIndex
from app.settings import Settings
from app.signing import KeyCache
from app.topics import Topics
from app.worker.handoff import Health
from app.worker.ratelimit import RateLimits
from app.worker.recent import RecentEvents

if TYPE_CHECKING:
    from app.delivery import Sender
    from app.store import Store
    from app.store.records import AttemptRecord, DeliveryRecord, EventRecord
    from app.worker.health import HealthTracker


class RecordSink(Protocol):
    """Where the worker hands its records (``app.records.RecordLog``: the records topic).
    Each call returns once the record is durable; raises ``HandOffError`` otherwise."""

    async def record(
        self,
        delivery: DeliveryRecord,
        attempt: AttemptRecord | None,
        *,
        first: bool = False,
        event: EventRecord | None = None,
    ) -> None: ...

    async def save_event(self, event: EventRecord) -> None: ...


@dataclass(frozen=True, slots=True)
class Received:
    """One Kafka message as the handlers see it, with where it came from (for dead letters)."""

    value: bytes | None
    headers: dict[str, bytes]
    topic: str
    partition: int
    offset: int
    timestamp_ms: int | None


@dataclass(slots=True)
class WorkerContext:
    settings: Settings
    topics: Topics
    index: WebhookIndex
    accounts: AccountDirectory  # who may send events (fed with the index)
    store: Store  # webhooks only: the index's source of truth (never on the per-delivery path)
    producer: AsyncProducer
    sender: Sender
    records: RecordSink
    health: Health
    recent: RecentEvents  # event ids matched lately (the match step's dedupe)
    # Attempts this worker made lately or is making now, "<delivery id>:<attempt>": a copy of
    # an attempt message (an event re-matched after a crash) is not sent a second time.
    attempted: RecentEvents
    attempting: set[str]
    # Each webhook's signing keys, prepared once per webhook version (not per attempt).
    keys: KeyCache = field(default_factory=KeyCache)
    # Endpoint health and auto-disable (app.worker.health); None: not tracked (tests).
    webhook_health: HealthTracker | None = None
    # Per-webhook token buckets (app.worker.ratelimit): excess attempts wait their turn.
    rate_limits: RateLimits = field(default_factory=RateLimits)
