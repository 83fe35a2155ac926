"""Named dependencies the routes take (tests can override any of them).

Scoping lives here: ``WebhookDep`` loads a webhook *of the caller's account* — another
account's id is the same 404 as an unknown one, so no route leaks that it exists.
``CachedWebhookDep`` is the same check through a one-second cache, for the delivery log's
page route only (``WebhookCache`` says why that is safe there and nowhere else).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from time import monotonic
from typing import Annotated

from fastapi import Depends, Path, Request

from app.api.auth import Principal, get_principal
from app.api.errors import echo
from app.api.ports import ProducerPort, StorePort
from app.errors import NotFound
from app.settings import Settings
from app.topics import Topics
from app.webhooks import Webhook

# Ids Hookstream hands out (hook_…, del_…) fit _ID; event ids are the producers' own (any
# text of at most 255 characters without whitespace or '.', see app.events). Anything else
# cannot exist, so it is a 404 without a round trip to Cassandra.
_ID = re.compile(r"^[A-Za-z0-9_\-]{1,255}$")
_EVENT_ID = re.compile(r"^[^\s.]{1,255}$")

# The getters are ``async def`` although they never await: FastAPI runs a plain ``def``
# dependency in its thread pool, a thread hop per dependency per request.


async def get_settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


async def get_store(request: Request) -> StorePort:
    store: StorePort = request.app.state.store
    return store


async def get_producer(request: Request) -> ProducerPort:
    producer: ProducerPort = request.app.state.producer
    return producer


async def get_topics(request: Request) -> Topics:
    topics: Topics = request.app.state.topics
    return topics


PrincipalDep = Annotated[Principal, Depends(get_principal)]
SettingsDep = Annotated[Settings, Depends(get_settings)]
StoreDep = Annotated[StorePort, Depends(get_store)]
ProducerDep = Annotated[ProducerPort, Depends(get_producer)]
TopicsDep = Annotated[Topics, Depends(get_topics)]

WebhookIdPath = Annotated[
    str, Path(alias="id", min_length=1, description="The webhook id (`hook_…`).")
]
DeliveryIdPath = Annotated[
    str, Path(alias="id", min_length=1, description="The delivery id (`del_…`).")
]
EventIdPath = Annotated[str, Path(alias="id", min_length=1, description="The event id.")]


def plausible_id(text: str) -> bool:
    return bool(_ID.match(text))


def plausible_event_id(text: str) -> bool:
    return bool(_EVENT_ID.match(text))


async def load_webhook(store: StorePort, webhook_id: str, account_id: str) -> Webhook:
    """The account's webhook, or NotFound (404) for an unknown, deleted or foreign id."""
    webhook = await store.webhooks.get(webhook_id) if plausible_id(webhook_id) else None
    return _owned(webhook, webhook_id, account_id)


def _owned(webhook: Webhook | None, webhook_id: str, account_id: str) -> Webhook:
    if webhook is None or webhook.account_id != account_id:
        raise NotFound(f"no webhook {echo(webhook_id)}")
    return webhook


WEBHOOK_TTL_S = 1.0  # a webhook deleted elsewhere stops showing its log at most this late


class WebhookCache:
    """Webhooks by id for at most ``ttl`` seconds, for the delivery log's page route only.

    That route polls (dashboards, the record-lag probe) and only needs what never changes in
    a webhook's life — that it exists, its account and its creation time — so a Cassandra
    read per page bought nothing but CPU. Only found webhooks are kept (a new one is listed
    at once); a delete through another replica or the CLI is seen within ``ttl``, and at once
    through this one: every fresh load (``current_webhook``, which PATCH and DELETE use)
    forgets the entry. Routes that write a webhook never read it from here.
    """

    MAX_ENTRIES = 10_000

    def __init__(
        self, store: StorePort, ttl: float = WEBHOOK_TTL_S, clock: Callable[[], float] = monotonic
    ) -> None:
        self.store = store
        self._ttl = ttl
        self._clock = clock
        self._seen: dict[str, tuple[float, Webhook]] = {}

    async def get(self, webhook_id: str) -> Webhook | None:
        now = self._clock()  # before the read: an entry's age includes the read's time
        hit = self._seen.get(webhook_id)
        if hit is not None and now - hit[0] < self._ttl:
            return hit[1]
        webhook = await self.store.webhooks.get(webhook_id)
        if webhook is None:
            self._seen.pop(webhook_id, None)
            return None
        if len(self._seen) >= self.MAX_ENTRIES:
            self._seen.clear()
        self._seen[webhook_id] = (now, webhook)
        return webhook

    def forget(self, webhook_id: str) -> None:
        self._seen.pop(webhook_id, None)


def webhook_cache(request: Request) -> WebhookCache:
    """The app's cache, made on first use for the store attached then."""
    store: StorePort = request.app.state.store
    cache: WebhookCache | None = getattr(request.app.state, "webhook_cache", None)
    if cache is None or cache.store is not store:
        cache = request.app.state.webhook_cache = WebhookCache(store)
    return cache


async def current_webhook(
    webhook_id: WebhookIdPath, request: Request, store: StoreDep, principal: PrincipalDep
) -> Webhook:
    webhook_cache(request).forget(webhook_id)
    return await load_webhook(store, webhook_id, principal.account_id)


async def cached_webhook(webhook_id: WebhookIdPath, request: Request) -> Webhook:
    """``current_webhook`` through ``WebhookCache``: for the delivery log's pages only.

    The principal is read from the request (``AuthenticatedRoute`` set it) rather than
    through ``PrincipalDep``: a sub-dependency less to solve on the route that polls."""
    principal: Principal = request.state.principal
    cache = webhook_cache(request)
    webhook = await cache.get(webhook_id) if plausible_id(webhook_id) else None
    return _owned(webhook, webhook_id, principal.account_id)


WebhookDep = Annotated[Webhook, Depends(current_webhook)]
CachedWebhookDep = Annotated[Webhook, Depends(cached_webhook)]
