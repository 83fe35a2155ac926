"""/v1/accounts (operator keys only) and /v1/keys (any key, inside its account).

Accounts are written to Cassandra (the source of truth), then published on the compacted
accounts topic for the workers, best effort like webhook changes (their periodic reload heals
a lost notice). Disabling takes effect at once for new API requests (within the auth cache's
second) and, through the topic, for events and pending deliveries.
"""

from __future__ import annotations

import logging
from dataclasses import replace
from datetime import UTC, datetime

from fastapi import APIRouter, Path, Response, status

from app.accounts import DEFAULT_ACCOUNT, Account, new_account_id
from app.api.auth import AuthenticatedRoute, OperatorRoute
from app.api.deps import PrincipalDep, ProducerDep, SettingsDep, StoreDep, TopicsDep
from app.api.errors import ApiError, echo, error_responses
from app.api.ports import StorePort
from app.api.publish import publish_account
from app.api.schemas_accounts import (
    AccountCreate,
    AccountDisable,
    AccountList,
    AccountPublic,
    AccountUpdate,
    KeyCreate,
    KeyCreated,
    KeyList,
    KeyPublic,
)
from app.errors import NotFound

log = logging.getLogger(__name__)

router = APIRouter(prefix="/v1/accounts", tags=["accounts"], route_class=OperatorRoute)
keys_router = APIRouter(prefix="/v1/keys", tags=["keys"], route_class=AuthenticatedRoute)

AccountPath = Path(alias="id", min_length=1, max_length=200, description="The account id.")


def _default_account() -> Account:
    return Account(DEFAULT_ACCOUNT, "default", True, datetime(1970, 1, 1, tzinfo=UTC))


async def _load(store: StorePort, account_id: str) -> Account:
    if account_id == DEFAULT_ACCOUNT:
        return await store.accounts.get(DEFAULT_ACCOUNT) or _default_account()
    account = await store.accounts.get(account_id)
    if account is None:
        raise NotFound(f"no account {echo(account_id)}")
    return account


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    response_model=AccountPublic,
    responses=error_responses(401, 404, 409, 413, 422, 503),
    summary="Create an account",
    description="Operator keys only. Then make its first key with `POST /v1/keys` "
    "(`Hookstream-Account: <id>`) or `hookstream apikey create --account <id>`.",
)
async def create_account(
    *,
    body: AccountCreate,
    settings: SettingsDep,
    store: StoreDep,
    producer: ProducerDep,
    topics: TopicsDep,
) -> AccountPublic:
    account_id = body.id or new_account_id()
    if account_id == DEFAULT_ACCOUNT or await store.accounts.get(account_id) is not None:
        raise ApiError(409, f"account {echo(account_id)} exists already", field="id")
    account = Account(
        id=account_id,
        name=body.name,
        active=True,
        created_at=datetime.now(UTC).replace(microsecond=0),
        max_webhooks=body.max_webhooks,
    )
    await store.accounts.create(account)
    await publish_account(producer, topics, account)
    log.info("account created", extra={"account_id": account.id})
    return AccountPublic.of(account, settings.api.max_webhooks)


@router.get(
    "",
    response_model=AccountList,
    responses=error_responses(401, 404, 503),
    summary="List accounts",
)
async def list_accounts(settings: SettingsDep, store: StoreDep) -> AccountList:
    accounts = await store.accounts.all()
    if not any(a.id == DEFAULT_ACCOUNT for a in accounts):
        accounts.insert(0, _default_account())
    return AccountList(accounts=[AccountPublic.of(a, settings.api.max_webhooks) for a in accounts])


@router.get(
    "/{id}",
    response_model=AccountPublic,
    responses=error_responses(401, 404, 503),
    summary="Get an account",
)
async def get_account(
    settings: SettingsDep, store: StoreDep, account_id: str = AccountPath
) -> AccountPublic:
    return AccountPublic.of(await _load(store, account_id), settings.api.max_webhooks)


@router.patch(
    "/{id}",
    response_model=AccountPublic,
    responses=error_responses(401, 404, 413, 422, 503),
    summary="Update an account (name, webhook limit)",
)
async def update_account(
    *,
    body: AccountUpdate,
    settings: SettingsDep,
    store: StoreDep,
    producer: ProducerDep,
    topics: TopicsDep,
    account_id: str = AccountPath,
) -> AccountPublic:
    account = await _load(store, account_id)
    changes = body.model_dump(exclude_unset=True)
    if changes.get("name") is None:
        changes.pop("name", None)
    updated = replace(account, **changes)
    await store.accounts.update(updated)
    await publish_account(producer, topics, updated)
    return AccountPublic.of(updated, settings.api.max_webhooks)


async def _set_active(
    store: StorePort,
    producer: ProducerDep,
    topics: TopicsDep,
    account_id: str,
    reason: str | None,
) -> Account:
    if account_id == DEFAULT_ACCOUNT:
        raise ApiError(422, "the default account cannot be disabled", field="id")
    account = await _load(store, account_id)
    updated = replace(account, active=reason is None, disabled_reason=reason)
    await store.accounts.update(updated)
    await publish_account(producer, topics, updated)
    log.info(
        "account %s", "enabled" if reason is None else "disabled", extra={"account_id": account_id}
    )
    return updated


@router.post(
    "/{id}/disable",
    response_model=AccountPublic,
    responses=error_responses(401, 404, 413, 422, 503),
    summary="Disable an account",
    description="Its keys are refused (403) within a second, events naming it go to the dead "
    "topic (`account_disabled`), and its pending deliveries end `cancelled`.",
)
async def disable_account(
    *,
    settings: SettingsDep,
    store: StoreDep,
    producer: ProducerDep,
    topics: TopicsDep,
    body: AccountDisable | None = None,
    account_id: str = AccountPath,
) -> AccountPublic:
    reason = (body or AccountDisable()).reason
    updated = await _set_active(store, producer, topics, account_id, reason)
    return AccountPublic.of(updated, settings.api.max_webhooks)


@router.post(
    "/{id}/enable",
    response_model=AccountPublic,
    responses=error_responses(401, 404, 422, 503),
    summary="Enable a disabled account",
)
async def enable_account(
    *,
    settings: SettingsDep,
    store: StoreDep,
    producer: ProducerDep,
    topics: TopicsDep,
    account_id: str = AccountPath,
) -> AccountPublic:
    updated = await _set_active(store, producer, topics, account_id, None)
    return AccountPublic.of(updated, settings.api.max_webhooks)


# ── keys ──────────────────────────────────────────────────────────────────────────────────


@keys_router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    response_model=KeyCreated,
    responses=error_responses(401, 403, 413, 422, 503),
    summary="Create an API key for the account",
    description="The key is in this response only; it is stored as a SHA-256 hash.",
)
async def create_key(
    principal: PrincipalDep, store: StoreDep, body: KeyCreate | None = None
) -> KeyCreated:
    name = (body or KeyCreate()).name
    key, stored = await store.api_keys.create(name, principal.account_id)
    log.info("API key created", extra={"account_id": stored.account_id, "key_id": stored.id})
    return KeyCreated(**KeyPublic.of(stored).model_dump(), key=key)


@keys_router.get(
    "",
    response_model=KeyList,
    responses=error_responses(401, 403, 503),
    summary="List the account's API keys",
    description="Ids, names and the first 8 characters; never a key.",
)
async def list_keys(principal: PrincipalDep, store: StoreDep) -> KeyList:
    return KeyList(keys=[KeyPublic.of(k) for k in await store.api_keys.list(principal.account_id)])


@keys_router.delete(
    "/{id}",
    status_code=status.HTTP_204_NO_CONTENT,
    response_class=Response,
    responses=error_responses(401, 403, 404, 503),
    summary="Revoke an API key",
    description="Every API replica refuses the key from its next request on.",
)
async def revoke_key(
    principal: PrincipalDep,
    store: StoreDep,
    key_id: str = Path(alias="id", min_length=1, max_length=100),
) -> Response:
    stored = await store.api_keys.get(key_id)
    if stored is None or stored.account_id != principal.account_id:
        raise NotFound(f"no key {echo(key_id)}")
    await store.api_keys.revoke(key_id)
    log.info("API key revoked", extra={"account_id": stored.account_id, "key_id": key_id})
    return Response(status_code=status.HTTP_204_NO_CONTENT)
