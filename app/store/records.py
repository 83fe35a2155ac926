"""⑤ What the store keeps: delivery state, attempts and events, as plain frozen records.

These are storage shapes; the API's public shapes live in ``app.api.schemas``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from app.accounts import DEFAULT_ACCOUNT
from app.deliveries import DeliveryStatus


@dataclass(frozen=True, slots=True)
class AttemptRecord:
    """One HTTP request of a delivery. Keyed by (delivery_id, number): upserts stay exact."""

    delivery_id: str
    number: int
    started_at: datetime
    duration_ms: int
    outcome: str  # "success" | "failed" | "refused"
    status_code: int | None = None
    error: str | None = None
    response_excerpt: str | None = None
    request_headers: dict[str, str] = field(default_factory=dict)  # signatures removed


@dataclass(frozen=True, slots=True)
class DeliveryRecord:
    """A delivery's current state (one event to one webhook)."""

    id: str
    webhook_id: str
    event_id: str
    event_type: str
    status: DeliveryStatus
    attempts: int
    created_at: datetime  # when the event was matched; stable across attempts
    updated_at: datetime
    status_code: int | None = None
    error: str | None = None
    delivered_at: datetime | None = None
    next_attempt_at: datetime | None = None
    account_id: str = DEFAULT_ACCOUNT  # the webhook's (and the event's) account


@dataclass(frozen=True, slots=True)
class EventRecord:
    """An event as received, kept (with the retention TTL) for tests and manual redelivery."""

    id: str
    type: str
    created_at: str
    body: bytes
    received_at: datetime
    account_id: str = DEFAULT_ACCOUNT  # stored under app.accounts.event_key(account, id)


@dataclass(frozen=True, slots=True)
class DeliveryPage:
    deliveries: list[DeliveryRecord]
    next_cursor: str | None
