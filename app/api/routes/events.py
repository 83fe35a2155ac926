"""/v1/events/{id}/deliveries (which webhooks got an event) and /v1/event-types."""

from __future__ import annotations

import asyncio

from fastapi import APIRouter

from app.api.auth import AuthenticatedRoute
from app.api.deps import EventIdPath, PrincipalDep, SettingsDep, StoreDep, plausible_event_id
from app.api.errors import echo, error_responses
from app.api.schemas import DeliveryPublic, EventDeliveries, EventType, EventTypeList
from app.errors import NotFound
from app.webhooks import TEST_EVENT_TYPE

router = APIRouter(prefix="/v1", tags=["events"], route_class=AuthenticatedRoute)

# The public documentation's table of event types.
SEED_DESCRIPTIONS = {
    "user.created": "New user registered",
    "user.updated": "User profile updated",
    "user.deleted": "User account deleted",
    "project.created": "New project created",
    "project.updated": "Project modified",
    "project.deleted": "Project deleted",
    "file.uploaded": "File uploaded",
    "payment.succeeded": "Payment processed successfully",
    "payment.failed": "Payment failed",
    TEST_EVENT_TYPE: "Test event sent by POST /v1/webhooks/{id}/test (never matched by wildcards)",
}


@router.get(
    "/events/{id}/deliveries",
    response_model=EventDeliveries,
    responses=error_responses(401, 404, 422, 503),
    summary="List an event's deliveries",
    description="One delivery per webhook the event was sent to (deleted webhooks omitted). "
    "404 if the event is unknown or expired and no delivery of it remains.",
)
async def event_deliveries(
    event_id: EventIdPath, store: StoreDep, principal: PrincipalDep
) -> EventDeliveries:
    if not plausible_event_id(event_id):
        raise NotFound(f"no event {echo(event_id)}")
    account = principal.account_id
    deliveries = await store.deliveries.list_by_event(event_id, account)
    webhook_ids = sorted({d.webhook_id for d in deliveries})
    found = await asyncio.gather(*(store.webhooks.get(w) for w in webhook_ids))
    live = {w for w, hook in zip(webhook_ids, found, strict=True) if hook is not None}
    deliveries = [d for d in deliveries if d.webhook_id in live]
    if not deliveries and await store.deliveries.get_event(event_id, account) is None:
        raise NotFound(f"no event {echo(event_id)}")
    deliveries.sort(key=lambda d: d.created_at, reverse=True)
    return EventDeliveries(event_id=event_id, deliveries=[DeliveryPublic.of(d) for d in deliveries])


@router.get(
    "/event-types",
    response_model=EventTypeList,
    responses=error_responses(401, 503),
    summary="List the event types",
    description="The catalogue webhooks may subscribe to (exactly, or with wildcards such "
    f"as `user.*`), plus `{TEST_EVENT_TYPE}`.",
)
async def event_types(settings: SettingsDep) -> EventTypeList:
    names = [*settings.event_types, TEST_EVENT_TYPE]
    unique = list(dict.fromkeys(names))
    return EventTypeList(
        event_types=[EventType(type=n, description=SEED_DESCRIPTIONS.get(n, "")) for n in unique]
    )
