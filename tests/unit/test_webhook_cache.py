"""The delivery log's webhook cache: a found webhook is reread after ``ttl`` seconds at the
latest, an unknown id is never kept, ``forget`` rereads at once."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from app.api.deps import WebhookCache
from app.webhooks import Webhook

NOW = datetime(2026, 12, 1, tzinfo=UTC)


def hook(webhook_id: str) -> Webhook:
    return Webhook(
        id=webhook_id,
        url="https://example.com/hook",
        events=("user.created",),
        secret="whsec_x",
        active=True,
        created_at=NOW,
        updated_at=NOW,
    )


class Webhooks:
    """The webhooks table as a dict, counting reads."""

    def __init__(self) -> None:
        self.rows: dict[str, Webhook] = {}
        self.reads = 0

    async def get(self, webhook_id: str) -> Webhook | None:
        self.reads += 1
        return self.rows.get(webhook_id)


class Store:
    def __init__(self) -> None:
        self.webhooks = Webhooks()


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def cache() -> tuple[WebhookCache, Store, Clock]:
    store, clock = Store(), Clock()
    store.webhooks.rows["hook_a"] = hook("hook_a")
    made: Any = store  # only .webhooks.get is used
    return WebhookCache(made, ttl=1.0, clock=clock), store, clock


async def test_a_found_webhook_is_kept_for_the_ttl_only() -> None:
    webhooks, store, clock = cache()
    assert (await webhooks.get("hook_a")) == hook("hook_a")
    clock.now += 0.99
    assert (await webhooks.get("hook_a")) == hook("hook_a")
    assert store.webhooks.reads == 1
    del store.webhooks.rows["hook_a"]  # deleted elsewhere
    clock.now += 0.01
    assert (await webhooks.get("hook_a")) is None
    assert store.webhooks.reads == 2


async def test_an_unknown_id_is_read_every_time() -> None:
    webhooks, store, _ = cache()
    assert (await webhooks.get("hook_new")) is None
    store.webhooks.rows["hook_new"] = hook("hook_new")  # created just after
    assert (await webhooks.get("hook_new")) == hook("hook_new")
    assert store.webhooks.reads == 2


@pytest.mark.parametrize("entries", [1, WebhookCache.MAX_ENTRIES])
async def test_forget_rereads_at_once_and_the_cache_stays_bounded(entries: int) -> None:
    webhooks, store, _ = cache()
    for i in range(entries):
        store.webhooks.rows[f"hook_{i}"] = hook(f"hook_{i}")
        await webhooks.get(f"hook_{i}")
    await webhooks.get("hook_a")
    webhooks.forget("hook_a")
    reads = store.webhooks.reads
    await webhooks.get("hook_a")
    assert store.webhooks.reads == reads + 1
    assert len(webhooks._seen) <= WebhookCache.MAX_ENTRIES
