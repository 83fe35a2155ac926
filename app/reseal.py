"""``hookstream migrate``'s last step: every webhook's secrets sealed with the newest key.

Plain secrets from before encryption and secrets sealed with an older key are re-sealed in
Cassandra, each by a conditional update (``IF secret = <what was read>``) so a rotation through
the API in the meantime wins; each re-sealed webhook is then published again, so the compacted
webhooks topic's latest record of it holds no plain or old-key secret either. (Compaction drops
the older records of a key later, on the broker's schedule: until then they stay in the log.)
After a run that re-sealed everything, an old key can leave ``HOOKSTREAM_SECRETS__KEYS``.
"""

from __future__ import annotations

import asyncio
import logging

from app.errors import HookstreamError
from app.kafka import AsyncProducer
from app.keyring import KeyRing, key_ring
from app.settings import Settings
from app.store import Store
from app.topics import Topics

log = logging.getLogger(__name__)


def reseal_webhooks(settings: Settings) -> int:
    """Re-seal and republish every webhook not sealed with the newest key; how many were.
    Blocking (run from the CLI). Nothing to do, and 0, without a key."""
    ring = key_ring(settings)
    if not ring.enabled:
        return 0
    return asyncio.run(_reseal(settings, ring))


async def _reseal(settings: Settings, ring: KeyRing) -> int:
    from app.api.publish import publish_webhook

    store = await Store.connect(settings)
    producer: AsyncProducer | None = None
    try:
        table = f"{settings.cassandra.keyspace}.webhooks"
        session = store.session
        update = await asyncio.to_thread(
            session.prepare,
            f"UPDATE {table} SET secret = ?, previous_secrets = ? WHERE id = ? IF secret = ?",
        )
        rows = await asyncio.to_thread(
            lambda: list(session.execute(f"SELECT id, secret, previous_secrets FROM {table}"))
        )
        stale = [
            row
            for row in rows
            if not ring.is_current(row["secret"] or "")
            or any(not ring.is_current(secret) for secret, _ in row["previous_secrets"] or ())
        ]
        resealed = []
        for row in stale:
            owner = row["id"]
            secret = ring.seal(owner, ring.open(owner, row["secret"]))
            previous = [
                (ring.seal(owner, ring.open(owner, old)), expires)
                for old, expires in row["previous_secrets"] or ()
            ]
            done = await asyncio.to_thread(
                session.execute, update, (secret, previous, owner, row["secret"])
            )
            if done.one()["[applied]"]:
                resealed.append(owner)
            # Not applied: deleted or rotated since the read; its new state is sealed already.
        if resealed:
            producer = AsyncProducer(settings)
            topics = Topics.from_settings(settings)
            for owner in resealed:
                webhook = await store.webhooks.get(owner)
                if webhook is not None and not await publish_webhook(
                    producer, topics, webhook, ring
                ):
                    raise HookstreamError(
                        f"webhook {owner} is re-sealed in Cassandra, but Kafka did not take its "
                        "notice: the topic keeps its old record until the webhook next changes"
                    )
        log.info("re-sealed %d of %d webhooks with key %s", len(resealed), len(rows), ring.newest)
        return len(resealed)
    finally:
        if producer is not None:
            await asyncio.to_thread(producer.close)
        await store.close()
