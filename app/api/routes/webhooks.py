"""/v1/webhooks: create, list, get, update, delete, read the secret, send a test event."""

from __future__ import annotations

import logging
import secrets
from dataclasses import replace
from datetime import UTC, datetime, timedelta

from fastapi import APIRouter, Response, status

from app.accounts import DEFAULT_ACCOUNT
from app.api.auth import AuthenticatedRoute
from app.api.deps import (
    PrincipalDep,
    ProducerDep,
    SettingsDep,
    StoreDep,
    TopicsDep,
    WebhookDep,
)
from app.api.errors import ApiError, error_responses
from app.api.paging import CursorQuery, LimitQuery, page_size
from app.api.ports import StorePort
from app.api.publish import (
    AttemptWithdrawn,
    enqueue_attempt,
    publish_deletion,
    publish_webhook,
)
from app.api.schemas import (
    RecoverHint,
    SecretRotate,
    SecretRotated,
    TestAccepted,
    WebhookCreate,
    WebhookCreated,
    WebhookHealthPublic,
    WebhookList,
    WebhookPublic,
    WebhookSecret,
    WebhookUpdate,
)
from app.api.validation import new_webhook, stamp, updated_webhook
from app.deliveries import AttemptMessage, DeliveryStatus, Origin, delivery_id
from app.events import build_event, format_timestamp
from app.keyring import key_ring
from app.lifecycle import (
    WEBHOOK_DISABLED,
    WEBHOOK_ENABLED,
    WEBHOOK_SECRET_ROTATED,
    LifecycleEvent,
    announce,
    lifecycle_event,
)
from app.settings import Settings
from app.store.records import DeliveryRecord, EventRecord
from app.webhooks import TEST_EVENT_TYPE, Webhook, generate_secret, rotated, validate_secret

log = logging.getLogger(__name__)

router = APIRouter(prefix="/v1/webhooks", tags=["webhooks"], route_class=AuthenticatedRoute)

TEST_MESSAGE = "This is a test event from Hookstream"


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    response_model=WebhookCreated,
    responses=error_responses(401, 413, 422, 503),
    summary="Create a webhook",
    description="Registers a subscription. The response is the only read that includes the "
    "`secret` (generated as `whsec_…` when not supplied); later, read it with "
    "`GET /v1/webhooks/{id}/secret`.",
)
async def create_webhook(
    *,
    body: WebhookCreate,
    settings: SettingsDep,
    store: StoreDep,
    producer: ProducerDep,
    topics: TopicsDep,
    principal: PrincipalDep,
) -> WebhookCreated:
    webhook = replace(new_webhook(body, settings), account_id=principal.account_id)
    await check_webhook_limit(store, settings, principal.account_id)
    await store.webhooks.create(webhook)
    await publish_webhook(producer, topics, webhook, key_ring(settings))
    return WebhookCreated.of(webhook)


@router.get(
    "",
    response_model=WebhookList,
    responses=error_responses(401, 422, 503),
    summary="List webhooks",
    description="A page of webhooks (secrets omitted). Follow `next_cursor` until it is null.",
)
async def list_webhooks(
    settings: SettingsDep,
    store: StoreDep,
    principal: PrincipalDep,
    limit: LimitQuery = None,
    cursor: CursorQuery = None,
) -> WebhookList:
    try:
        webhooks, next_cursor = await store.webhooks.list_page(
            page_size(limit, settings), cursor, principal.account_id
        )
    except ValueError:
        raise ApiError(422, "malformed cursor", field="cursor") from None
    return WebhookList(webhooks=[WebhookPublic.of(w) for w in webhooks], next_cursor=next_cursor)


@router.get(
    "/{id}",
    response_model=WebhookPublic,
    responses=error_responses(401, 404, 422, 503),
    summary="Get a webhook",
    description="The webhook without its secret (see `GET /v1/webhooks/{id}/secret`).",
)
async def get_webhook(webhook: WebhookDep, settings: SettingsDep, store: StoreDep) -> WebhookPublic:
    return WebhookPublic.of(webhook, health=await _health(webhook, settings, store))


@router.get(
    "/{id}/health",
    response_model=WebhookHealthPublic,
    responses=error_responses(401, 404, 422, 503),
    summary="Get a webhook's endpoint health",
    description="Recent success rate, last success and failure, consecutive failures. "
    "Updated by the workers about once a second.",
)
async def get_webhook_health(
    webhook: WebhookDep, settings: SettingsDep, store: StoreDep
) -> WebhookHealthPublic:
    return await _health(webhook, settings, store)


async def _health(webhook: Webhook, settings: Settings, store: StorePort) -> WebhookHealthPublic:
    health = await store.health.get(webhook.id)
    return WebhookHealthPublic.of(health, datetime.now(UTC), settings.lifecycle.health_window)


@router.get(
    "/{id}/secret",
    response_model=WebhookSecret,
    responses=error_responses(401, 404, 422, 503),
    summary="Get a webhook's signing secret",
)
async def get_webhook_secret(webhook: WebhookDep) -> WebhookSecret:
    return WebhookSecret(secret=webhook.secret)


@router.post(
    "/{id}/secret/rotate",
    response_model=SecretRotated,
    responses=error_responses(401, 404, 413, 422, 503),
    summary="Rotate a webhook's signing secret",
    description="Makes a new secret (the one given, or a generated `whsec_…`) current; the "
    "previous one keeps signing beside it for the grace period "
    "(`HOOKSTREAM_LIFECYCLE__SECRET_GRACE`, 24 h by default), so receivers can switch without "
    "a failed delivery. Workers sign with the new secret within a second.",
)
async def rotate_webhook_secret(
    *,
    webhook: WebhookDep,
    settings: SettingsDep,
    store: StoreDep,
    producer: ProducerDep,
    topics: TopicsDep,
    body: SecretRotate | None = None,
) -> SecretRotated:
    supplied = body.secret if body is not None else None
    new_secret = validate_secret(supplied) if supplied is not None else generate_secret()
    cfg = settings.lifecycle
    updated = rotated(webhook, new_secret, stamp(), cfg.secret_grace, cfg.max_previous_secrets)
    await store.webhooks.update(updated)
    await publish_webhook(producer, topics, updated, key_ring(settings))
    log.info("webhook secret rotated", extra={"webhook_id": webhook.id})
    await announce(
        producer,
        topics,
        lifecycle_event(
            WEBHOOK_SECRET_ROTATED,
            account_id=updated.account_id,
            webhook_id=updated.id,
            about=(format_timestamp(updated.updated_at),),
            data={
                "previous_secrets_expire_at": [
                    format_timestamp(p.expires_at) for p in updated.previous_secrets
                ]
            },
            now=updated.updated_at,
        ),
    )
    return SecretRotated(
        secret=updated.secret,
        previous_secrets_expire_at=[
            format_timestamp(p.expires_at) for p in updated.previous_secrets
        ],
    )


@router.patch(
    "/{id}",
    response_model=WebhookPublic,
    responses=error_responses(401, 404, 413, 422, 503),
    summary="Update a webhook",
    description="Changes only the fields present. `description: null` clears the "
    "description; `secret` rotates the signing secret (the response omits it).",
)
async def update_webhook(
    *,
    webhook: WebhookDep,
    body: WebhookUpdate,
    settings: SettingsDep,
    store: StoreDep,
    producer: ProducerDep,
    topics: TopicsDep,
) -> WebhookPublic:
    updated = updated_webhook(webhook, body, settings)
    recover = None
    if updated.active and not webhook.active:
        # Re-enabled: the auto-disable's reason goes, and the answer offers to redeliver
        # what failed (the recover route, by time range; it re-sends failed deliveries):
        # every delivery that failed in the streak that led to the disable was created at
        # most one retry schedule before the streak's first failure.
        updated = replace(updated, disabled_reason=None, disabled_at=None)
        health = await store.health.get(webhook.id)
        streak = health.failing_since if health is not None else None
        first = min(t for t in (streak, webhook.disabled_at, webhook.updated_at) if t is not None)
        since = first - sum(settings.retry_schedule, timedelta(0))
        recover = RecoverHint(
            path=f"/v1/webhooks/{webhook.id}/recover", body={"since": format_timestamp(since)}
        )
    if updated is not webhook:
        await store.webhooks.update(updated)
        await publish_webhook(producer, topics, updated, key_ring(settings))
    if updated.active != webhook.active:
        await announce(producer, topics, _switched(webhook, updated, recover))
    return WebhookPublic.of(updated, recover=recover)


def _ts(moment: datetime | None) -> str | None:
    return format_timestamp(moment) if moment is not None else None


def _switched(before: Webhook, after: Webhook, recover: RecoverHint | None) -> LifecycleEvent:
    """The operator event of an API enable or disable."""
    data: dict[str, object] = {"url": after.url, "automatic": False}
    if recover is not None:
        data["disabled_reason"] = before.disabled_reason
        data["disabled_at"] = _ts(before.disabled_at)
        data["recover"] = recover.model_dump()
    else:
        data["reason"] = "disabled through the API"
    return lifecycle_event(
        WEBHOOK_ENABLED if after.active else WEBHOOK_DISABLED,
        account_id=after.account_id,
        webhook_id=after.id,
        about=(format_timestamp(after.updated_at),),
        data=data,
        now=after.updated_at,
    )


@router.delete(
    "/{id}",
    status_code=status.HTTP_204_NO_CONTENT,
    response_class=Response,
    responses=error_responses(401, 404, 422, 503),
    summary="Delete a webhook",
    description="Deletes the subscription; it stops receiving events. Its delivery log "
    "expires with the retention period.",
)
async def delete_webhook(
    webhook: WebhookDep, store: StoreDep, producer: ProducerDep, topics: TopicsDep
) -> Response:
    await store.webhooks.delete(webhook.id)
    await publish_deletion(producer, topics, webhook.id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.post(
    "/{id}/test",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=TestAccepted,
    responses=error_responses(401, 404, 422, 503),
    summary="Send a test event",
    description=f"Enqueues a `{TEST_EVENT_TYPE}` event for this webhook only; it is delivered, "
    "signed and retried like any other. Follow it with `GET /v1/deliveries/{delivery_id}`.",
)
async def send_test_event(
    webhook: WebhookDep,
    settings: SettingsDep,
    store: StoreDep,
    producer: ProducerDep,
    topics: TopicsDep,
) -> TestAccepted:
    now = datetime.now(UTC)
    event = build_event(
        "evt_test_" + secrets.token_hex(12),
        TEST_EVENT_TYPE,
        format_timestamp(now),
        {"webhook_id": webhook.id, "message": TEST_MESSAGE},
    )
    await store.deliveries.save_event(
        EventRecord(
            event.id,
            event.type,
            event.created_at,
            event.body,
            received_at=now,
            account_id=webhook.account_id,
        )
    )
    message = AttemptMessage(
        delivery_id=delivery_id(event.id, webhook.id),
        webhook_id=webhook.id,
        event_id=event.id,
        event_type=event.type,
        attempt=1,
        body=event.body,
        enqueued_at_ms=int(now.timestamp() * 1000),
        origin=Origin.TEST,
        account_id=webhook.account_id,
    )
    pending = DeliveryRecord(
        id=message.delivery_id,
        webhook_id=webhook.id,
        event_id=event.id,
        event_type=event.type,
        status=DeliveryStatus.PENDING,
        attempts=0,
        created_at=now,
        updated_at=now,
        next_attempt_at=now,
        account_id=webhook.account_id,
    )
    # Recorded before it is enqueued, so the worker's record of the attempt always wins.
    await store.deliveries.record(pending, None)
    try:
        await enqueue_attempt(producer, topics, message, settings.api.enqueue_timeout)
    except AttemptWithdrawn:
        await _record_withdrawn(store, pending)
        raise
    return TestAccepted(event_id=event.id, delivery_id=message.delivery_id)


async def _record_withdrawn(store: StorePort, pending: DeliveryRecord) -> None:
    """Best effort: the log says cancelled rather than pending forever. Should Kafka have
    stored the message after all, the worker's later record of its attempt replaces this."""
    cancelled = replace(
        pending,
        status=DeliveryStatus.CANCELLED,
        updated_at=datetime.now(UTC),
        next_attempt_at=None,
        error="not enqueued: Kafka did not acknowledge the test event",
    )
    try:
        await store.deliveries.record(cancelled, None)
    except Exception as exc:  # the 503 stands either way; the record is a courtesy
        log.warning(
            "withdrawn test delivery left pending: %s",
            type(exc).__name__,
            extra={"webhook_id": pending.webhook_id, "delivery_id": pending.id},
        )


async def check_webhook_limit(store: StorePort, settings: Settings, account_id: str) -> None:
    """409 if the account already has as many webhooks as it may (its own limit, or
    ``api.max_webhooks``). A count per create: creating webhooks is rare, and the count is
    one index read. Two creates racing at the limit may both pass; the limit is a guard
    against runaway scripts, not an exact quota."""
    limit = settings.api.max_webhooks
    if account_id != DEFAULT_ACCOUNT:
        account = await store.accounts.get(account_id)
        if account is not None and account.max_webhooks is not None:
            limit = account.max_webhooks
    if await store.webhooks.count(account_id, up_to=limit) >= limit:
        raise ApiError(
            409,
            f"the account has reached its limit of {limit} webhooks; delete one first",
            type="webhook_limit",
        )
