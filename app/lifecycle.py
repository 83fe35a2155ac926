"""Operator events: what happens to webhooks and deliveries, on a Kafka topic of their own.

Hookstream produces these to ``hookstream.lifecycle`` (``Topics.lifecycle``) in the seed's
standard event format ``{id, type, created_at, data}``, so a platform consumes them with the
Kafka tools it already has. Each carries its account twice: the ``hookstream-account`` header
(as events do, ``app.accounts``) and ``data.account_id``. Keyed by webhook id, so the events
about one webhook stay in order in one partition.

=========================  ==================================  ===========================
type                       when                                produced by
=========================  ==================================  ===========================
``webhook.disabled``       auto-disable (410 Gone, or every    the worker that owns the
                           attempt failed for                  webhook's partition
                           ``lifecycle.disable_after``), or    (``app.worker.health``); the
                           ``PATCH active: false``             API
``webhook.enabled``        ``PATCH active: true`` of an        the API
                           inactive webhook
``webhook.secret_rotated`` ``POST …/secret/rotate``            the API
``delivery.exhausted``     the last attempt failed (or the     the worker, in the attempt's
                           receiver answered 410, or the       hand-off (before its offset
                           destination was refused)            is acknowledged)
``delivery.recovered``     a manual retry or recover of a      the worker, in the attempt's
                           delivery succeeded                  hand-off
=========================  ==================================  ===========================

Ids are derived from what the event is about (``lifecycle_id``), so the copy a crashed worker
produces again has the same id: consumers dedupe by id as receivers do. Secrets never appear.

Delivered as webhooks too: each event is also produced to the events topic typed
``hookstream.<type>`` (``hookstream.webhook.disabled``…), with the same id and account, so a
webhook subscribed to those reserved types (or ``hookstream.*``) — an operator URL — gets
them through the ordinary pipeline, signed and retried. ``*`` never matches them
(``Webhook.subscribes_to``), and events about deliveries of operator events get no copy, so
a failing operator URL cannot feed itself.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

import orjson

from app.accounts import ACCOUNT_HEADER
from app.events import format_timestamp
from app.topics import Topics

WEBHOOK_DISABLED = "webhook.disabled"
WEBHOOK_ENABLED = "webhook.enabled"
WEBHOOK_SECRET_ROTATED = "webhook.secret_rotated"
DELIVERY_EXHAUSTED = "delivery.exhausted"
DELIVERY_RECOVERED = "delivery.recovered"
log = logging.getLogger(__name__)

# The prefix of their copies on the events topic (app.webhooks subscribes by it).
OPERATOR_PREFIX = "hookstream."
LIFECYCLE_EVENT_TYPES = (
    WEBHOOK_DISABLED,
    WEBHOOK_ENABLED,
    WEBHOOK_SECRET_ROTATED,
    DELIVERY_EXHAUSTED,
    DELIVERY_RECOVERED,
)


class _Producer(Protocol):
    async def send(
        self,
        topic: str,
        value: bytes | None,
        key: bytes | None = None,
        headers: Any = (),
    ) -> None: ...


def lifecycle_id(event_type: str, *about: str) -> str:
    """``evt_hs_`` + 24 hex of SHA-256(type, subjects): the same fact, the same id."""
    digest = hashlib.sha256("\x00".join((event_type, *about)).encode()).hexdigest()
    return "evt_hs_" + digest[:24]


@dataclass(frozen=True, slots=True)
class LifecycleEvent:
    id: str
    type: str
    created_at: datetime
    account_id: str
    webhook_id: str  # the key
    data: Mapping[str, Any] = field(default_factory=dict)

    def value(self) -> bytes:
        return orjson.dumps(
            {
                "id": self.id,
                "type": self.type,
                "created_at": format_timestamp(self.created_at),
                "data": {**self.data, "webhook_id": self.webhook_id, "account_id": self.account_id},
            }
        )

    def headers(self) -> list[tuple[str, bytes]]:
        return [(ACCOUNT_HEADER, self.account_id.encode())]

    def key(self) -> bytes:
        return self.webhook_id.encode()


def lifecycle_event(
    event_type: str,
    *,
    account_id: str,
    webhook_id: str,
    about: tuple[str, ...],
    data: Mapping[str, Any],
    now: datetime | None = None,
) -> LifecycleEvent:
    """An event of ``event_type`` about ``webhook_id``; ``about`` makes its id (with the type)."""
    return LifecycleEvent(
        id=lifecycle_id(event_type, webhook_id, *about),
        type=event_type,
        created_at=now or datetime.now(UTC),
        account_id=account_id,
        webhook_id=webhook_id,
        data=data,
    )


def operator_copy(event: LifecycleEvent) -> bytes | None:
    """The copy of ``event`` for the events topic, typed ``hookstream.<type>`` so webhooks
    subscribed to it (an operator URL) get it like any event of their account; None for an
    event about the delivery of an operator event (a failing operator URL must not feed
    itself a new event per failure)."""
    if str(event.data.get("event_type", "")).startswith(OPERATOR_PREFIX):
        return None
    copy = orjson.loads(event.value())
    copy["type"] = OPERATOR_PREFIX + event.type
    return orjson.dumps(copy)


async def emit(producer: _Producer, topics: Topics, event: LifecycleEvent) -> None:
    """Produce ``event`` to the lifecycle topic, and its operator copy to the events topic,
    and wait for Kafka; raises what the producer raises (``HandOffError``) — callers decide
    whether that is best effort or a hand-off."""
    sends = [
        producer.send(topics.lifecycle, event.value(), key=event.key(), headers=event.headers())
    ]
    copy = operator_copy(event)
    if copy is not None:
        sends.append(producer.send(topics.events, copy, key=event.key(), headers=event.headers()))
    await asyncio.gather(*sends)


ANNOUNCE_TIMEOUT_S = 5.0


async def announce(producer: _Producer, topics: Topics, event: LifecycleEvent) -> bool:
    """``emit`` as best effort, for the API: what the event reports is already written, so a
    Kafka refusal only logs (False). At most ``ANNOUNCE_TIMEOUT_S`` of the response."""
    try:
        await asyncio.wait_for(emit(producer, topics, event), ANNOUNCE_TIMEOUT_S)
    except Exception as exc:  # best effort by design
        log.warning(
            "operator event %s not produced: %s",
            event.type,
            exc or type(exc).__name__,
            extra={"webhook_id": event.webhook_id},
        )
        return False
    return True
