"""``hookstream apikey``: API keys straight in Cassandra (the bootstrap: no key needed).

The admin API (``/v1/keys``) does the same for a caller holding a key; these commands exist
for the first key of an account and for an operator at the cluster.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import TypeVar

from app.accounts import DEFAULT_ACCOUNT, is_account_id
from app.errors import HookstreamError
from app.settings import Settings
from app.store import Store
from app.store.api_keys import StoredKey

T = TypeVar("T")


def _with_store(settings: Settings, work: Callable[[Store], Awaitable[T]]) -> T:
    async def run() -> T:
        store = await Store.connect(settings)
        try:
            return await work(store)
        finally:
            await store.close()

    return asyncio.run(run())


def create_key(settings: Settings, name: str, account_id: str) -> tuple[str, StoredKey]:
    """A new key for an existing, active account (the default one always is)."""
    if not is_account_id(account_id):
        raise HookstreamError(f"{account_id!r} is not an account id")

    async def work(store: Store) -> tuple[str, StoredKey]:
        if account_id != DEFAULT_ACCOUNT:
            account = await store.accounts.get(account_id)
            if account is None:
                raise HookstreamError(f"no account {account_id!r} (hookstream accounts create)")
            if not account.active:
                raise HookstreamError(f"account {account_id!r} is disabled")
        return await store.api_keys.create(name, account_id)

    return _with_store(settings, work)


def list_keys(settings: Settings, account_id: str) -> list[StoredKey]:
    return _with_store(settings, lambda store: store.api_keys.list(account_id))


def revoke_key(settings: Settings, key_id: str) -> bool:
    return _with_store(settings, lambda store: store.api_keys.revoke(key_id))
