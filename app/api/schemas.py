"""⑥ The API's public shapes (what the seed documents), separate from storage records.

Create / Update / Public per noun, as in full-stack-fastapi-template. Request shapes are strict
(no type coercion, unknown fields refused); validation that needs settings (the URL policy, the
event type catalogue, the secret format) happens in ``app.api.service`` and raises
``InvalidWebhook`` naming the field.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, Literal

import orjson
from pydantic import BaseModel, ConfigDict, Field

from app.deliveries import DeliveryStatus
from app.events import format_timestamp
from app.health import WebhookHealth
from app.store.records import AttemptRecord, DeliveryRecord
from app.webhooks import Webhook

MAX_URL_LENGTH = 2048
MAX_DESCRIPTION_LENGTH = 1000
MAX_METADATA_KEYS = 50
MAX_METADATA_KEY_LENGTH = 128
MAX_METADATA_VALUE_LENGTH = 1000

Timestamp = Annotated[
    str, Field(json_schema_extra={"format": "date-time"}, examples=["2026-01-15T12:00:00Z"])
]
Url = Annotated[
    str,
    Field(
        max_length=MAX_URL_LENGTH,
        description="Absolute https URL (http only where the server allows it), without "
        "user info, fragment, whitespace or a private/loopback address.",
        examples=["https://yourapp.com/webhook"],
    ),
]
Events = Annotated[
    list[str],
    Field(
        min_length=1,
        max_length=100,
        description="Event types (see GET /v1/event-types) or wildcards such as `user.*` or `*`.",
        examples=[["user.created", "user.updated", "project.created"]],
    ),
]
Secret = Annotated[
    str,
    Field(
        max_length=200,
        description="8 to 128 visible ASCII characters, no whitespace (`whsec_…` or any "
        "string you already use); generated as `whsec_` + base64 of 32 bytes when omitted at "
        "creation. Given in an update it replaces the signing secret at once (read it back "
        "with GET /v1/webhooks/{id}/secret); to keep the old one valid for a grace period, "
        "use POST /v1/webhooks/{id}/secret/rotate.",
        examples=["whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"],
    ),
]
Description = Annotated[str, Field(max_length=MAX_DESCRIPTION_LENGTH)]
RateLimit = Annotated[
    int,
    Field(
        ge=1,
        le=100_000,
        description="Deliveries per second at most (a token bucket with one second of burst); "
        "excess deliveries wait their turn, none is dropped. Omitted or null: no limit.",
        examples=[50],
    ),
]
CustomHeaders = Annotated[
    dict[str, str],
    Field(
        description="Headers added to every request (e.g. an `Authorization` your endpoint "
        "checks): at most 20, token names, visible-ASCII values; Hookstream's own headers "
        "(`X-Webhook-*`, `webhook-*`, `Content-Type`, `User-Agent`, …) cannot be set. Their "
        "values are redacted in the attempt log.",
        examples=[{"Authorization": "Bearer my-endpoint-token"}],
    ),
]
MetadataKey = Annotated[str, Field(min_length=1, max_length=MAX_METADATA_KEY_LENGTH)]
MetadataValue = Annotated[str, Field(max_length=MAX_METADATA_VALUE_LENGTH)]
Metadata = Annotated[
    dict[MetadataKey, MetadataValue],
    Field(
        max_length=MAX_METADATA_KEYS,
        description=f"A flat map of strings to strings, at most {MAX_METADATA_KEYS} keys.",
    ),
]

PayloadFilter = Annotated[
    dict[str, Any],
    Field(
        description="A condition on the event's `data`, besides `events`: keys are dotted "
        "paths from `data` (`data.amount`) or `$and`/`$or`; values are JSON to equal or "
        "operators `$eq`, `$ne`, `$in`, `$nin`, `$gt`, `$gte`, `$lt`, `$lte`, `$exists`. "
        "Only matching events are delivered.",
        examples=[{"data.amount": {"$gte": 100}, "data.currency": {"$in": ["EUR", "USD"]}}],
    ),
]


def _no_headers(value: object) -> bool:
    """Custom headers and a rate limit appear only when set: the seed's shape stays as it is
    otherwise."""
    return not value


def _filter_absent(value: object) -> bool:
    return value is None


class _Request(BaseModel):
    model_config = ConfigDict(strict=True, extra="forbid")


# --- webhooks -------------------------------------------------------------------------------


class WebhookCreate(_Request):
    url: Url
    events: Events
    secret: Secret | None = None
    active: bool = True
    description: Description | None = None
    metadata: Metadata = Field(default_factory=dict)
    filter: PayloadFilter | None = None
    headers: CustomHeaders = Field(default_factory=dict)
    rate_limit: RateLimit | None = None


def _not_null(schema: dict[str, Any]) -> None:
    """Document an optional field as "may be omitted" but not "may be null"."""
    branches = schema.pop("anyOf", None)
    if branches is None:
        return
    rest = [b for b in branches if b.get("type") != "null"]
    if len(rest) == 1:
        schema.update(rest[0])
    else:
        schema["anyOf"] = rest
    schema.pop("default", None)


class WebhookUpdate(_Request):
    """Only the fields present change. ``description: null`` clears it; ``secret`` rotates.
    The other fields may be omitted but not null (``app.api.validation`` refuses null)."""

    url: Url | None = Field(default=None, json_schema_extra=_not_null)
    events: Events | None = Field(default=None, json_schema_extra=_not_null)
    active: bool | None = Field(default=None, json_schema_extra=_not_null)
    description: Description | None = None
    metadata: Metadata | None = Field(default=None, json_schema_extra=_not_null)
    filter: PayloadFilter | None = Field(
        default=None, description="Replaces the filter; `null` removes it."
    )
    secret: Secret | None = Field(default=None, json_schema_extra=_not_null)
    headers: CustomHeaders | None = Field(default=None, json_schema_extra=_not_null)
    rate_limit: RateLimit | None = Field(default=None, description="null removes the limit.")


def _none(value: object) -> bool:
    return value is None


class WebhookHealthPublic(BaseModel):
    """A webhook's endpoint health, from its attempts (``app.health``)."""

    success_rate: float | None = Field(
        description="Successful attempts / attempts over the current and previous health "
        "window (`HOOKSTREAM_LIFECYCLE__HEALTH_WINDOW`); null without recent attempts."
    )
    recent_attempts: int
    recent_failures: int
    consecutive_failures: int = Field(description="Failed attempts since the last success.")
    last_success_at: Timestamp | None
    last_failure_at: Timestamp | None
    failing_since: Timestamp | None = Field(
        description="The first failure after the last success (null while succeeding)."
    )
    last_status_code: int | None
    last_error: str | None

    @classmethod
    def of(
        cls, health: WebhookHealth | None, now: datetime, window: timedelta
    ) -> WebhookHealthPublic:
        if health is None:
            return cls(
                success_rate=None, recent_attempts=0, recent_failures=0, consecutive_failures=0,
                last_success_at=None, last_failure_at=None, failing_since=None,
                last_status_code=None, last_error=None,
            )  # fmt: skip
        ok, failed = health.recent(now, window)
        return cls(
            success_rate=health.success_rate(now, window),
            recent_attempts=ok + failed,
            recent_failures=failed,
            consecutive_failures=health.consecutive_failures,
            last_success_at=_ts(health.last_success_at),
            last_failure_at=_ts(health.last_failure_at),
            failing_since=_ts(health.failing_since),
            last_status_code=health.last_status_code,
            last_error=health.last_error,
        )


class RecoverHint(BaseModel):
    method: Literal["POST"] = "POST"
    path: str = Field(examples=["/v1/webhooks/hook_123/recover"])
    body: dict[str, str] = Field(
        description="The time range since the webhook was disabled.",
        examples=[{"since": "2026-01-15T12:00:00Z"}],
    )


class WebhookPublic(BaseModel):
    """A webhook as every read shows it: without its secret."""

    id: str = Field(examples=["hook_123"])
    url: str
    events: list[str]
    active: bool
    created_at: Timestamp
    updated_at: Timestamp
    description: str | None
    metadata: dict[str, str]
    filter: dict[str, Any] | None = Field(None, exclude_if=_filter_absent)
    headers: dict[str, str] = Field(default_factory=dict, exclude_if=_no_headers)
    rate_limit: int | None = Field(None, exclude_if=_no_headers)
    disabled_reason: str | None = Field(
        None,
        exclude_if=_none,
        description="Why Hookstream disabled the webhook (410 Gone, or every attempt failed "
        "for the disable period); shown while it stays disabled.",
    )
    disabled_at: Timestamp | None = Field(None, exclude_if=_none)
    health: WebhookHealthPublic | None = Field(
        None, exclude_if=_none, description="Endpoint health (GET of one webhook only)."
    )
    recover: RecoverHint | None = Field(
        None,
        exclude_if=_none,
        description="In the answer that re-enables an auto-disabled webhook: how to redeliver "
        "what failed meanwhile.",
    )

    @classmethod
    def of(
        cls,
        webhook: Webhook,
        health: WebhookHealthPublic | None = None,
        recover: RecoverHint | None = None,
    ) -> WebhookPublic:
        return cls.model_validate(
            {
                **_webhook_fields(webhook),
                "disabled_reason": webhook.disabled_reason,
                "disabled_at": _ts(webhook.disabled_at),
                "health": health,
                "recover": recover,
            }
        )


class WebhookCreated(BaseModel):
    """A webhook as the create response shows it: the seed's shape, secret included."""

    id: str = Field(examples=["hook_123"])
    url: str
    events: list[str]
    secret: str
    active: bool
    created_at: Timestamp
    updated_at: Timestamp
    description: str | None
    metadata: dict[str, str]
    filter: dict[str, Any] | None = Field(None, exclude_if=_filter_absent)
    headers: dict[str, str] = Field(default_factory=dict, exclude_if=_no_headers)
    rate_limit: int | None = Field(None, exclude_if=_no_headers)

    @classmethod
    def of(cls, webhook: Webhook) -> WebhookCreated:
        return cls.model_validate({**_webhook_fields(webhook), "secret": webhook.secret})


class WebhookSecret(BaseModel):
    secret: str = Field(examples=["whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"])


class SecretRotate(_Request):
    secret: Secret | None = Field(
        default=None, description="The new secret; generated (`whsec_…`) when omitted."
    )


class SecretRotated(BaseModel):
    secret: str = Field(description="The new current secret.")
    previous_secrets_expire_at: list[Timestamp] = Field(
        description="When each older secret stops signing (newest first); until then "
        "`webhook-signature` carries one `v1,` entry per secret and "
        "`X-Webhook-Signature-Previous` the older secrets' hex signatures."
    )


class WebhookList(BaseModel):
    webhooks: list[WebhookPublic]
    next_cursor: str | None = Field(
        description="Pass as `cursor` to get the next page; null on the last page."
    )


def _webhook_fields(webhook: Webhook) -> dict[str, object]:
    return {
        "id": webhook.id,
        "url": webhook.url,
        "events": list(webhook.events),
        "active": webhook.active,
        "created_at": format_timestamp(webhook.created_at),
        "updated_at": format_timestamp(webhook.updated_at),
        "description": webhook.description,
        "metadata": dict(webhook.metadata),
        "filter": webhook.filter.source if webhook.filter is not None else None,
        "headers": dict(webhook.headers),
        "rate_limit": webhook.rate_limit,
    }


# --- deliveries -----------------------------------------------------------------------------


def _is_none(value: object) -> bool:
    return value is None


class DeliveryPublic(BaseModel):
    """One event to one webhook. ``delivered_at`` appears once delivered and ``error`` once an
    attempt failed, as in the seed's examples; other keys are always present."""

    id: str = Field(examples=["del_123"])
    event_id: str = Field(examples=["evt_abc"])
    status: DeliveryStatus
    status_code: int | None = Field(description="HTTP status of the latest attempt.")
    attempts: int = Field(description="Attempts made so far.")
    delivered_at: Timestamp | None = Field(None, exclude_if=_is_none)
    error: str | None = Field(
        None, exclude_if=_is_none, description="Why the latest attempt failed."
    )
    event_type: str
    webhook_id: str
    created_at: Timestamp
    next_attempt_at: Timestamp | None = Field(
        description="When the next automatic attempt is due; null when none is scheduled."
    )

    @classmethod
    def of(cls, record: DeliveryRecord) -> DeliveryPublic:
        return cls.model_validate(_delivery_fields(record))


class AttemptPublic(BaseModel):
    number: int
    started_at: Timestamp
    duration_ms: int
    outcome: str = Field(description="success, failed or refused (blocked by the SSRF guard).")
    status_code: int | None
    error: str | None
    response_excerpt: str | None = Field(description="The first bytes of the response body.")
    request_headers: dict[str, str] = Field(description="Headers sent, signatures removed.")

    @classmethod
    def of(cls, record: AttemptRecord) -> AttemptPublic:
        return cls(
            number=record.number,
            started_at=format_timestamp(record.started_at),
            duration_ms=record.duration_ms,
            outcome=record.outcome,
            status_code=record.status_code,
            error=record.error,
            response_excerpt=record.response_excerpt,
            request_headers=dict(record.request_headers),
        )


class DeliveryDetail(DeliveryPublic):
    updated_at: Timestamp
    attempt_log: list[AttemptPublic] = Field(description="Every attempt, oldest first.")

    @classmethod
    def build(cls, record: DeliveryRecord, attempts: list[AttemptRecord]) -> DeliveryDetail:
        log = [AttemptPublic.of(a) for a in sorted(attempts, key=lambda a: a.number)]
        return cls.model_validate(
            {
                **_delivery_fields(record),
                "updated_at": format_timestamp(record.updated_at),
                "attempt_log": log,
            }
        )


def _delivery_fields(record: DeliveryRecord) -> dict[str, object]:
    return {
        "id": record.id,
        "event_id": record.event_id,
        "status": record.status,
        "status_code": record.status_code,
        "attempts": record.attempts,
        "delivered_at": _ts(record.delivered_at),
        "error": record.error,
        "event_type": record.event_type,
        "webhook_id": record.webhook_id,
        "created_at": format_timestamp(record.created_at),
        "next_attempt_at": _ts(record.next_attempt_at),
    }


def _ts(moment: datetime | None) -> str | None:
    return format_timestamp(moment) if moment is not None else None


class DeliveryList(BaseModel):
    deliveries: list[DeliveryPublic]
    next_cursor: str | None = Field(
        description="Pass as `cursor` to get the next page; null on the last page."
    )


def delivery_item(record: DeliveryRecord) -> dict[str, object]:
    """What ``DeliveryPublic.of(record)`` serialises to, as a dict, without building the model:
    the same keys in the same order, ``delivered_at`` and ``error`` left out when None."""
    item: dict[str, object] = {
        "id": record.id,
        "event_id": record.event_id,
        "status": record.status.value,
        "status_code": record.status_code,
        "attempts": record.attempts,
    }
    if record.delivered_at is not None:
        item["delivered_at"] = log_timestamp(record.delivered_at)
    if record.error is not None:
        item["error"] = record.error
    item["event_type"] = record.event_type
    item["webhook_id"] = record.webhook_id
    item["created_at"] = log_timestamp(record.created_at)
    next_at = record.next_attempt_at
    item["next_attempt_at"] = None if next_at is None else log_timestamp(next_at)
    return item


def log_timestamp(moment: datetime) -> str:
    """``format_timestamp(moment)``, in half its time for the UTC datetimes the store returns
    (two or three of them per delivery, 50 deliveries a page)."""
    if moment.tzinfo is not UTC:
        return format_timestamp(moment)
    ms = moment.microsecond // 1000  # truncated, as isoformat(timespec="milliseconds") does
    fields = (moment.year, moment.month, moment.day, moment.hour, moment.minute, moment.second)
    # %-formatting: faster here than an f-string with seven format specs
    if ms:
        return "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ" % (*fields, ms)  # noqa: UP031
    return "%04d-%02d-%02dT%02d:%02d:%02dZ" % fields  # noqa: UP031


def delivery_list_json(records: Iterable[DeliveryRecord], next_cursor: str | None) -> bytes:
    """A ``DeliveryList`` as the exact bytes FastAPI would send for it (pydantic's JSON and
    orjson's agree: compact, UTF-8, the same escapes; a unit test holds them to it).

    The delivery log's page path: building 50 models per page and serialising them through
    the response model was about a tenth of the API's CPU per page (BENCHMARKS.md,
    "Session 4: API pages")."""
    return orjson.dumps(
        {"deliveries": [delivery_item(r) for r in records], "next_cursor": next_cursor}
    )


class EventDeliveries(BaseModel):
    event_id: str
    deliveries: list[DeliveryPublic]


# --- commands -------------------------------------------------------------------------------


class TestAccepted(BaseModel):
    event_id: str = Field(examples=["evt_test_5f2b8c0e9a1d4e7f"])
    delivery_id: str


class RetryAccepted(BaseModel):
    delivery_id: str
    event_id: str
    attempt: int = Field(description="The number of the attempt that was enqueued.")


class RecoverRequest(_Request):
    # FastAPI validates the decoded JSON as Python data, where strict mode would refuse an
    # RFC 3339 string for a datetime.
    model_config = ConfigDict(strict=False, extra="forbid")

    since: datetime = Field(description="RFC 3339; deliveries created at or after this time.")
    until: datetime | None = Field(
        None, description="RFC 3339; deliveries created at or before this time (default: now)."
    )


class RecoverAccepted(BaseModel):
    count: int = Field(description="Failed deliveries re-enqueued.")


# --- replays --------------------------------------------------------------------------------


class ReplayRequest(_Request):
    model_config = ConfigDict(strict=False, extra="forbid")  # RFC 3339 strings, as above

    since: datetime = Field(description="RFC 3339; events (by their Kafka timestamp) from.")
    until: datetime | None = Field(
        None, description="RFC 3339; events up to this time (default and at most: now)."
    )
    mode: Literal["missing", "all"] = Field(
        "missing",
        description="`missing`: only events without a successful delivery to this webhook; "
        "`all`: every matching event once more (same `webhook-id`, origin `replay`). Either "
        "way a delivery still being retried is left to its retries.",
    )


class ReplayPublic(BaseModel):
    """A replay job and its progress (`GET /v1/replays/{id}`)."""

    id: str = Field(examples=["rpl_5f2b8c0e9a1d4e7f0a1b2c3d"])
    webhook_id: str
    mode: Literal["missing", "all"]
    status: Literal["queued", "running", "done", "cancelled", "failed"]
    since: Timestamp
    until: Timestamp
    scanned: int = Field(description="Events read from the events topic so far.")
    matched: int = Field(description="Of those, the webhook's (account, types and filter).")
    enqueued: int = Field(description="Attempts enqueued to the webhook.")
    skipped: int = Field(description="Matches not sent: delivered already, or in progress.")
    progress: float = Field(description="Share of the range read, 0 to 1.")
    cancel_requested: bool
    earliest_available: Timestamp | None = Field(
        description="Set when the events topic no longer held the start of the range "
        "(retention): the time of the oldest event it still had, as far back as the replay "
        "could go."
    )
    error: str | None
    created_at: Timestamp
    updated_at: Timestamp
    finished_at: Timestamp | None


# --- catalogue and health -------------------------------------------------------------------


class EventType(BaseModel):
    type: str = Field(examples=["user.created"])
    description: str


class EventTypeList(BaseModel):
    event_types: list[EventType]


class Health(BaseModel):
    status: Literal["ok"]


class Readiness(BaseModel):
    status: Literal["ok", "unavailable"]
    kafka: str = Field(description="`ok` or why Kafka did not answer.")
    cassandra: str = Field(description="`ok` or why Cassandra did not answer.")
