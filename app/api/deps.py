"""Named dependencies the routes take (tests can override any of them).

Scoping lives here: ``WebhookDep`` loads a webhook *of the caller's account* — another
account's id is the same 404 as an unknown one, so no route leaks that it exists.
"""

from __future__ import annotations

import re
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


def get_settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


def get_store(request: Request) -> StorePort:
    store: StorePort = request.app.state.store
    return store


def get_producer(request: Request) -> ProducerPort:
    producer: ProducerPort = request.app.state.producer
    return producer


def get_topics(request: Request) -> Topics:
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
    if webhook is None or webhook.account_id != account_id:
        raise NotFound(f"no webhook {echo(webhook_id)}")
    return webhook


async def current_webhook(
    webhook_id: WebhookIdPath, store: StoreDep, principal: PrincipalDep
) -> Webhook:
    return await load_webhook(store, webhook_id, principal.account_id)


WebhookDep = Annotated[Webhook, Depends(current_webhook)]
