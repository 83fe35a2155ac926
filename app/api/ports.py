"""What the API needs from the store and from Kafka, as structural types.

``app.store.Store`` and ``app.kafka.AsyncProducer`` satisfy these; naming the exact methods the
API calls keeps the dependency honest and lets a test pass something smaller.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Protocol, TypeVar

from app.accounts import Account
from app.deliveries import DeliveryStatus
from app.health import WebhookHealth
from app.store.api_keys import StoredKey
from app.store.records import AttemptRecord, DeliveryPage, DeliveryRecord, EventRecord
from app.store.session import Row
from app.webhooks import Webhook

T = TypeVar("T")


class WebhookRepo(Protocol):
    async def create(self, webhook: Webhook) -> None: ...
    async def get(self, webhook_id: str) -> Webhook | None: ...
    async def update(self, webhook: Webhook) -> None: ...
    async def delete(self, webhook_id: str) -> None: ...
    async def list_page(
        self, limit: int, cursor: str | None, account_id: str
    ) -> tuple[list[Webhook], str | None]: ...
    async def count(self, account_id: str, up_to: int) -> int: ...


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
    async def log_page(
        self,
        webhook_id: str,
        item: Callable[[Row], T],
        *,
        status: DeliveryStatus | None,
        event_type: str | None,
        since: datetime | None,
        until: datetime | None,
        limit: int,
        cursor: str | None,
    ) -> tuple[list[T], str | None]: ...
    async def list_by_event(self, event_id: str, account_id: str) -> list[DeliveryRecord]: ...
    async def failed_between(
        self, webhook_id: str, since: datetime, until: datetime
    ) -> list[DeliveryRecord]: ...
    async def save_event(self, event: EventRecord) -> None: ...
    async def get_event(self, event_id: str, account_id: str) -> EventRecord | None: ...


class ApiKeyRepo(Protocol):
    async def create(self, name: str, account_id: str) -> tuple[str, StoredKey]: ...
    async def lookup(self, key: str) -> StoredKey | None: ...
    async def list(self, account_id: str) -> list[StoredKey]: ...
    async def get(self, key_id: str) -> StoredKey | None: ...
    async def revoke(self, key_id: str) -> bool: ...


class AccountRepo(Protocol):
    async def create(self, account: Account) -> None: ...
    async def get(self, account_id: str) -> Account | None: ...
    async def update(self, account: Account) -> None: ...
    async def all(self) -> list[Account]: ...


class HealthRepo(Protocol):
    async def get(self, webhook_id: str) -> WebhookHealth | None: ...


class StorePort(Protocol):
    @property
    def webhooks(self) -> WebhookRepo: ...
    @property
    def deliveries(self) -> DeliveryRepo: ...
    @property
    def api_keys(self) -> ApiKeyRepo: ...
    @property
    def accounts(self) -> AccountRepo: ...
    @property
    def health(self) -> HealthRepo: ...


class ProducerPort(Protocol):
    async def send(
        self,
        topic: str,
        value: bytes | None,
        key: bytes | None = None,
        headers: Sequence[tuple[str, bytes]] = (),
    ) -> None: ...
