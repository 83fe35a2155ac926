"""What the worker's handlers share: built once per process in ``app.worker.main``."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from app.kafka import AsyncProducer
from app.matching import WebhookIndex
from app.settings import Settings
from app.topics import Topics

if TYPE_CHECKING:
    from app.delivery import Sender
    from app.store import Store


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
    store: Store
    producer: AsyncProducer
    sender: Sender
