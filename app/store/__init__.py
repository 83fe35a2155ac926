"""⑤ Cassandra: schema, session, repositories — the only CQL in the tree.

``Store`` is the one entry point for the rest of the app::

    store = await Store.connect(settings)     # opens the cluster, prepares every statement
    await store.deliveries.record(delivery, attempt)
    webhook = await store.webhooks.get(webhook_id)
    await store.close()

``migrate(settings)`` (blocking, for the CLI) creates the keyspace and tables. Every
repository method is async, runs at LOCAL_QUORUM and raises ``StoreUnavailable`` (a
``HandOffError``) when Cassandra does not answer.
"""

from __future__ import annotations

import asyncio

from app.settings import Settings
from app.store.accounts import AccountRepository
from app.store.api_keys import ApiKeyRepository, hash_key
from app.store.deliveries import DeliveryRepository
from app.store.errors import StoreUnavailable
from app.store.health import HealthRepository
from app.store.replays import ReplayRepository
from app.store.schema import migrate
from app.store.session import CassandraSession, connect
from app.store.webhooks import WebhookRepository

__all__ = [
    "AccountRepository",
    "ApiKeyRepository",
    "DeliveryRepository",
    "Store",
    "StoreUnavailable",
    "WebhookRepository",
    "hash_key",
    "migrate",
]


class Store:
    """The session and the repositories, opened together and closed together."""

    def __init__(self, session: CassandraSession, settings: Settings) -> None:
        """Blocking (prepares statements); prefer ``await Store.connect(settings)``."""
        self.session = session
        self.accounts = AccountRepository(session, settings)
        self.webhooks = WebhookRepository(session, settings)
        self.deliveries = DeliveryRepository(session, settings)
        self.api_keys = ApiKeyRepository(session, settings)
        self.health = HealthRepository(session, settings)  # endpoint health (app.health)
        self.replays = ReplayRepository(session, settings)  # replay jobs (app.replay)

    @classmethod
    async def connect(cls, settings: Settings) -> Store:
        """Open the cluster and prepare every statement, in a thread so the loop stays free.

        The keyspace must exist (``hookstream migrate``). Raises ``StoreUnavailable`` if
        Cassandra cannot be reached, ``cassandra.InvalidRequest`` if the schema is missing.
        """
        return await asyncio.to_thread(cls.connect_blocking, settings)

    @classmethod
    def connect_blocking(cls, settings: Settings) -> Store:
        """``connect`` for code without an event loop (CLI commands)."""
        session = connect(settings)
        try:
            return cls(session, settings)
        except BaseException:
            session.cluster.shutdown()
            raise

    async def close(self) -> None:
        """Shut the cluster down (waits for its I/O thread, in a thread). Idempotent."""
        await asyncio.to_thread(self.session.cluster.shutdown)
