"""Delivery logs and manual redelivery: by webhook, by id (with attempts), retry, recover."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Coroutine
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request, Response, status

from app.api.auth import AuthenticatedRoute
from app.api.deps import (
    CachedWebhookDep,
    DeliveryIdPath,
    PrincipalDep,
    ProducerDep,
    SettingsDep,
    StoreDep,
    TopicsDep,
    WebhookDep,
    cached_webhook,
    load_webhook,
    plausible_id,
)
from app.api.errors import ApiError, Unavailable, echo, error_responses
from app.api.log_page import EVENT_TYPE_MAX, LogQuery, log_item, page_json, simple_log_query
from app.api.paging import CursorQuery, LimitQuery, log_since, page_size, time_range
from app.api.ports import StorePort
from app.api.publish import AttemptQueued, AttemptWithdrawn, enqueue_attempt
from app.api.schemas import (
    DeliveryDetail,
    DeliveryList,
    RecoverAccepted,
    RecoverRequest,
    RetryAccepted,
)
from app.deliveries import AttemptMessage, DeliveryStatus, Origin
from app.errors import NotFound
from app.settings import Settings
from app.store.records import DeliveryRecord, EventRecord
from app.store.timeline import to_ms
from app.webhooks import Webhook

log = logging.getLogger(__name__)

webhook_router = APIRouter(
    prefix="/v1/webhooks", tags=["deliveries"], route_class=AuthenticatedRoute
)
router = APIRouter(prefix="/v1/deliveries", tags=["deliveries"], route_class=AuthenticatedRoute)

RECOVER_CONCURRENCY = 32


async def list_deliveries(
    *,
    webhook: CachedWebhookDep,
    store: StoreDep,
    settings: SettingsDep,
    status_: Annotated[
        DeliveryStatus | None, Query(alias="status", description="Only this status.")
    ] = None,
    event_type: Annotated[
        str | None, Query(max_length=EVENT_TYPE_MAX, description="Only this event type.")
    ] = None,
    since: Annotated[
        datetime | None, Query(description="RFC 3339; deliveries created at or after this.")
    ] = None,
    until: Annotated[
        datetime | None, Query(description="RFC 3339; deliveries created at or before this.")
    ] = None,
    limit: LimitQuery = None,
    cursor: CursorQuery = None,
) -> Response:
    # ``response_model`` documents the shape; the page is serialised in ``log_response``.
    # ``LogPageRoute`` answers most requests without FastAPI's dependencies and calls this
    # only for what needs them (a time range, a value to validate, dependency overrides).
    return await log_response(
        webhook,
        store,
        settings,
        LogQuery(status_, event_type, since, until, limit, cursor),
    )


async def log_response(
    webhook: Webhook, store: StorePort, settings: Settings, query: LogQuery
) -> Response:
    """The page's response: from the rows straight to the bytes FastAPI would produce
    (``app.api.log_page``); records and models per row were most of the API's CPU per page."""
    start, end = time_range(query.since, query.until, settings)
    try:
        items, next_cursor = await store.deliveries.log_page(
            webhook.id,
            log_item,
            status=query.status,
            event_type=query.event_type,
            since=log_since(start, webhook.created_at, settings),
            until=end,
            limit=page_size(query.limit, settings),
            cursor=query.cursor,
        )
    except ValueError:
        raise ApiError(422, "malformed cursor", field="cursor") from None
    return Response(page_json(items, next_cursor), media_type="application/json")


class LogPageRoute(AuthenticatedRoute):
    """The delivery log's page route, which polls (dashboards, the record-lag probe).

    FastAPI's dependency solving and query validation cost about a fifth of the API's CPU
    per page (BENCHMARKS.md, "Session 10"), so a request whose query
    ``simple_log_query`` can read is answered here: the same webhook check
    (``cached_webhook``), the same ``log_response``. Anything else — a time range, a value
    FastAPI would refuse or coerce, a repeated parameter, dependency overrides — goes through
    FastAPI's handler, so every error is FastAPI's own and OpenAPI documents the endpoint.
    """

    def request_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        full = super().request_handler()

        async def page(request: Request) -> Response:
            query = simple_log_query(request.scope["query_string"])
            if query is None or request.app.dependency_overrides:
                return await full(request)
            state = request.app.state
            webhook = await cached_webhook(request.path_params["id"], request)
            return await log_response(webhook, state.store, state.settings, query)

        return page


webhook_router.add_api_route(
    "/{id}/deliveries",
    list_deliveries,
    methods=["GET"],
    route_class_override=LogPageRoute,
    response_model=DeliveryList,
    responses=error_responses(401, 404, 422, 503),
    summary="List a webhook's deliveries",
    description="Newest first. Each item has `delivered_at` once delivered and `error` once "
    "an attempt failed, as in the delivery logs of the documentation.",
)


@webhook_router.post(
    "/{id}/recover",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=RecoverAccepted,
    responses=error_responses(401, 404, 413, 422, 503),
    summary="Redeliver a webhook's failed deliveries",
    description="Re-enqueues every `failed` delivery of this webhook created in "
    "[since, until] (until defaults to now). Deliveries whose event has expired are skipped. "
    "On 503 some may have been enqueued; repeating the request is safe.",
)
async def recover(
    *,
    webhook: WebhookDep,
    body: RecoverRequest,
    settings: SettingsDep,
    store: StoreDep,
    producer: ProducerDep,
    topics: TopicsDep,
) -> RecoverAccepted:
    since, until = time_range(body.since, body.until or datetime.now(UTC), settings)
    assert since is not None and until is not None
    failed = [
        d
        for d in await store.deliveries.failed_between(webhook.id, since, until)
        if d.status is DeliveryStatus.FAILED
    ]
    gate = asyncio.Semaphore(RECOVER_CONCURRENCY)

    async def one(delivery: DeliveryRecord) -> bool:
        async with gate:
            event = await store.deliveries.get_event(delivery.event_id, webhook.account_id)
            if event is None:
                return False
            await enqueue_attempt(
                producer, topics, _manual_attempt(delivery, event), settings.api.enqueue_timeout
            )
            return True

    results = await asyncio.gather(*(one(d) for d in failed), return_exceptions=True)
    errors = [r for r in results if isinstance(r, BaseException)]
    count = sum(1 for r in results if r is True)
    # Some attempts may be enqueued already; repeating the recover is safe (receivers dedupe
    # by webhook-id, and a duplicate attempt is within at-least-once).
    if any(not isinstance(e, AttemptWithdrawn | AttemptQueued) for e in errors):
        raise next(e for e in errors if not isinstance(e, AttemptWithdrawn | AttemptQueued))
    if errors:
        queued = sum(1 for e in errors if isinstance(e, AttemptQueued))
        raise Unavailable(
            f"{count} of {len(failed)} failed deliveries were re-enqueued; Kafka did not "
            f"acknowledge {len(errors)} ({queued} of them still queued, the others withdrawn "
            "unless Kafka had stored them just before it stopped answering); repeating the "
            "recover is safe"
        )
    if count < len(failed):
        log.info(
            "recover skipped %d deliveries whose event expired",
            len(failed) - count,
            extra={"webhook_id": webhook.id},
        )
    return RecoverAccepted(count=count)


@router.get(
    "/{id}",
    response_model=DeliveryDetail,
    responses=error_responses(401, 404, 422, 503),
    summary="Get a delivery with its attempts",
)
async def get_delivery(
    delivery_id: DeliveryIdPath, store: StoreDep, principal: PrincipalDep
) -> DeliveryDetail:
    delivery = await _load_delivery(store, delivery_id, principal.account_id)
    attempts = await store.deliveries.attempts(delivery.id)
    return DeliveryDetail.build(delivery, attempts)


@router.post(
    "/{id}/retry",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=RetryAccepted,
    responses=error_responses(401, 404, 422, 503),
    summary="Redeliver one delivery now",
    description="Enqueues one more attempt of the delivery (number `attempts + 1`) through "
    "the delivery pipeline. 404 if the delivery, its webhook, or its event (kept for the "
    "retention period) no longer exists.",
)
async def retry_delivery(
    *,
    delivery_id: DeliveryIdPath,
    settings: SettingsDep,
    store: StoreDep,
    producer: ProducerDep,
    topics: TopicsDep,
    principal: PrincipalDep,
) -> RetryAccepted:
    delivery = await _load_delivery(store, delivery_id, principal.account_id)
    event = await store.deliveries.get_event(delivery.event_id, delivery.account_id)
    if event is None:
        raise NotFound(
            f"the event {echo(delivery.event_id)} of this delivery has expired (past the "
            "retention period); it can no longer be redelivered"
        )
    message = _manual_attempt(delivery, event)
    await enqueue_attempt(producer, topics, message, settings.api.enqueue_timeout)
    return RetryAccepted(
        delivery_id=delivery.id, event_id=delivery.event_id, attempt=message.attempt
    )


async def _load_delivery(store: StorePort, delivery_id: str, account_id: str) -> DeliveryRecord:
    """The account's delivery, or 404 if it is unknown, another account's, or its webhook
    was deleted."""
    delivery = await store.deliveries.get(delivery_id) if plausible_id(delivery_id) else None
    if delivery is None or delivery.account_id != account_id:
        raise NotFound(f"no delivery {echo(delivery_id)}")
    await load_webhook(store, delivery.webhook_id, account_id)
    return delivery


def _manual_attempt(delivery: DeliveryRecord, event: EventRecord) -> AttemptMessage:
    return AttemptMessage(
        delivery_id=delivery.id,
        webhook_id=delivery.webhook_id,
        event_id=delivery.event_id,
        event_type=delivery.event_type,
        attempt=delivery.attempts + 1,
        body=event.body,
        # The delivery's own creation time, not now: the worker records its state with this
        # as created_at, which places the row in the delivery log (a new time would list the
        # same delivery twice).
        enqueued_at_ms=to_ms(delivery.created_at),
        origin=Origin.MANUAL,
        account_id=delivery.account_id,
    )
