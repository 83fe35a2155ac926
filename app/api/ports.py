"""What the API needs from the store and from Kafka, as structural types.

``app.store.Store`` and ``app.kafka.AsyncProducer`` satisfy these; naming the exact methods the
API calls keeps the dependency honest and lets a test pass something smaller.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Protocol

from app.deliveries import DeliveryStatus
from app.store.records import AttemptRecord, DeliveryPage, DeliveryRecord, EventRecord
from app.webhooks import Webhook


class WebhookRepo(Protocol):
    async def create(self, webhook: Webhook) -> None: ...
    async def get(self, webhook_id: str) -> Webhook | None: ...
    async def update(self, webhook: Webhook) -> None: ...
    async def delete(self, webhook_id: str) -> None: ...
    async def list_page(
        self, limit: int, cursor: str | None
    ) -> tuple[list[Webhook], str | None]: ...


class DeliveryRepo(Protocol):
    async def record(self, delivery: DeliveryRecord, attempt: AttemptRecord | None) -> None: ...
    async def get(self, delivery_id: str) -> DeliveryRecord | None: ...
    async def attempts(self, delivery_id: str) -> list[AttemptRecord]: ...
    async def list_by_webhook(
        self,
        webhook_id: str,
        *,
        status: DeliveryStatus | None,
        event_type: str | None,
        since: datetime | None,
        until: datetime | None,
        limit: int,
        cursor: str | None,
    ) -> DeliveryPage: ...
    async def list_by_event(self, event_id: str) -> list[DeliveryRecord]: ...
    async def failed_between(
        self, webhook_id: str, since: datetime, until: datetime
    ) -> list[DeliveryRecord]: ...
    async def save_event(self, event: EventRecord) -> None: ...
    async def get_event(self, event_id: str) -> EventRecord | None: ...


class ApiKeyRepo(Protocol):
    async def exists(self, key: str) -> bool: ...


class StorePort(Protocol):
    @property
    def webhooks(self) -> WebhookRepo: ...
    @property
    def deliveries(self) -> DeliveryRepo: ...
    @property
    def api_keys(self) -> ApiKeyRepo: ...


class ProducerPort(Protocol):
    async def send(
        self,
        topic: str,
        value: bytes | None,
        key: bytes | None = None,
        headers: Sequence[tuple[str, bytes]] = (),
    ) -> None: ...
