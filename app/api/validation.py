"""Webhook fields checked against the settings: the URL policy, the event type catalogue and
the secret format. Each refusal is ``InvalidWebhook(field, reason)``, which the API turns into
a 422 naming the field. The shape checks (types, lengths) already happened in ``schemas``.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

from app.api.schemas import WebhookCreate, WebhookUpdate
from app.delivery.urls import validate_url
from app.errors import InvalidWebhook
from app.filters import Filter, compile_filter
from app.settings import Settings
from app.webhooks import (
    Webhook,
    generate_secret,
    new_webhook_id,
    validate_events,
    validate_headers,
    validate_secret,
)

# Fields of WebhookUpdate that may be set but never set to null.
_NOT_NULL = ("url", "events", "active", "metadata", "secret", "headers")


def check_url(url: str, settings: Settings) -> str:
    return validate_url(url, settings.api.allow_http, settings.allowed_networks)


def check_events(events: list[str], settings: Settings) -> tuple[str, ...]:
    return tuple(validate_events(events, settings.event_types))


def check_filter(source: dict[str, Any] | None) -> Filter | None:
    """The compiled filter; ``{}`` (matches everything) is stored as no filter."""
    return compile_filter(source) if source else None


def check_metadata(metadata: dict[str, str]) -> dict[str, str]:
    for key in metadata:
        if not key.strip():
            raise InvalidWebhook("metadata", "keys must not be blank")
    return dict(metadata)


def stamp() -> datetime:
    # Millisecond precision, as Cassandra keeps it: the copy published to Kafka and the one
    # the workers reload from Cassandra are then equal.
    now = datetime.now(UTC)
    return now.replace(microsecond=now.microsecond // 1000 * 1000)


def new_webhook(body: WebhookCreate, settings: Settings) -> Webhook:
    """A webhook from a create request; a secret is generated when none is given."""
    now = stamp()
    return Webhook(
        id=new_webhook_id(),
        url=check_url(body.url, settings),
        events=check_events(body.events, settings),
        secret=validate_secret(body.secret) if body.secret is not None else generate_secret(),
        active=body.active,
        created_at=now,
        updated_at=now,
        description=body.description,
        metadata=check_metadata(body.metadata),
        filter=check_filter(body.filter),
        headers=validate_headers(body.headers),
        rate_limit=body.rate_limit,
    )


def updated_webhook(webhook: Webhook, body: WebhookUpdate, settings: Settings) -> Webhook:
    """``webhook`` with the fields present in ``body`` changed (and validated)."""
    present = body.model_fields_set
    for name in _NOT_NULL:
        if name in present and getattr(body, name) is None:
            raise InvalidWebhook(name, "must not be null")
    changes: dict[str, object] = {}
    if body.url is not None:
        changes["url"] = check_url(body.url, settings)
    if body.events is not None:
        changes["events"] = check_events(body.events, settings)
    if body.active is not None:
        changes["active"] = body.active
    if "description" in present:
        changes["description"] = body.description
    if body.metadata is not None:
        changes["metadata"] = check_metadata(body.metadata)
    if body.secret is not None:
        changes["secret"] = validate_secret(body.secret)
    if "filter" in present:
        changes["filter"] = check_filter(body.filter)
    if body.headers is not None:
        changes["headers"] = validate_headers(body.headers)
    if "rate_limit" in present:
        changes["rate_limit"] = body.rate_limit
    if not changes:
        return webhook
    return replace(webhook, **changes, updated_at=stamp())  # type: ignore[arg-type]
