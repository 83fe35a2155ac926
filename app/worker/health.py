"""The worker's side of endpoint health: fold every attempt into its webhook's health
(``app.health``), store it, and auto-disable a webhook the policy gives up on.

Attempts are keyed by webhook id, so the worker that owns a partition sees every attempt of
its webhooks, and is the one writer of their health rows (after a rebalance the new owner
loads the row on first sight and goes on from it). Nothing here is on an attempt's path:
``observe`` is an in-memory fold (a dict lookup and a small dataclass), and a background task
once a second loads unseen rows, writes the changed ones and carries out disables.

Disabling a webhook: the webhook is written with ``active: false``, ``disabled_reason`` and
``disabled_at`` (Cassandra first, as the API does), put into this worker's index at once,
published on the compacted webhooks topic (every other worker follows within a second) and
announced with a ``webhook.disabled`` operator event (``app.lifecycle``). From then on its
deliveries end ``cancelled`` with the reason (``app.worker.deliver``).

Failures here never touch deliveries: a store or Kafka error is logged and retried on the
next flush (the rows stay dirty, a pending disable stays pending).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Coroutine, Iterable
from dataclasses import replace
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from app.accounts import DEFAULT_ACCOUNT
from app.events import format_timestamp
from app.health import WebhookHealth, disable_reason, observe
from app.lifecycle import WEBHOOK_DISABLED, emit, lifecycle_event
from app.settings import Settings
from app.topics import Topics
from app.webhooks import Webhook, webhook_to_json

if TYPE_CHECKING:
    from app.kafka import AsyncProducer
    from app.matching import WebhookIndex
    from app.store import Store

log = logging.getLogger(__name__)

FLUSH_S = 1.0
WRITE_CONCURRENCY = 16
_Observation = tuple[bool, datetime, int | None, str | None]


class HealthTracker:
    def __init__(
        self,
        settings: Settings,
        topics: Topics,
        store: Store,
        producer: AsyncProducer,
        index: WebhookIndex,
    ) -> None:
        self._policy = settings.lifecycle
        self._topics = topics
        self._store = store
        self._producer = producer
        self._index = index
        self._states: dict[str, WebhookHealth] = {}
        self._unloaded: dict[str, list[_Observation]] = {}  # seen, row not read yet
        self._accounts: dict[str, str] = {}
        self._dirty: set[str] = set()
        self._disable: dict[str, str] = {}  # webhook id -> reason, to carry out
        self._task: asyncio.Task[None] | None = None

    # -- on the attempt's path: memory only ---------------------------------------------------

    def observe(
        self,
        webhook: Webhook,
        *,
        ok: bool,
        at: datetime,
        status_code: int | None,
        error: str | None,
    ) -> None:
        """Count one attempt of ``webhook`` (never raises, never waits)."""
        seen = (ok, at, status_code, error)
        pending = self._unloaded.get(webhook.id)
        if pending is not None:
            pending.append(seen)
            return
        state = self._states.get(webhook.id)
        if state is None:
            self._unloaded[webhook.id] = [seen]
            self._accounts[webhook.id] = webhook.account_id
            return
        self._fold(webhook.id, state, [seen], webhook)

    def _fold(
        self,
        webhook_id: str,
        state: WebhookHealth,
        seen: list[_Observation],
        webhook: Webhook | None,
    ) -> None:
        window = self._policy.health_window
        for ok, at, status_code, error in seen:
            state = observe(
                state, ok=ok, at=at, window=window, status_code=status_code, error=error
            )
            current = webhook or self._index.get(webhook_id)
            if current is None or not current.active or ok:
                continue
            reason = disable_reason(
                state,
                status_code=status_code,
                changed_at=current.updated_at,
                now=at,
                policy=self._policy,
            )
            if reason is not None:
                self._disable.setdefault(webhook_id, reason)
        self._states[webhook_id] = state
        self._dirty.add(webhook_id)

    # -- in the background --------------------------------------------------------------------

    def start(self) -> None:
        self._task = asyncio.create_task(self._run())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self.flush(), 5)

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(FLUSH_S)
            try:
                await self.flush()
            except Exception as exc:  # health must never take the worker down
                log.warning("webhook health not flushed (retried in %.0f s): %s", FLUSH_S, exc)

    async def flush(self) -> None:
        """Load rows first seen, write the changed ones, carry out pending disables."""
        gate = asyncio.Semaphore(WRITE_CONCURRENCY)

        async def load(webhook_id: str) -> None:
            async with gate:
                stored = await self._store.health.get(webhook_id)
            seen = self._unloaded.pop(webhook_id, [])
            account = self._accounts.pop(webhook_id, None) or DEFAULT_ACCOUNT
            state = stored or WebhookHealth(webhook_id, account)
            self._fold(webhook_id, state, seen, None)

        async def write(webhook_id: str) -> None:
            state = self._states[webhook_id]
            self._dirty.discard(webhook_id)
            try:
                async with gate:
                    await self._store.health.put(state)
            except BaseException:
                self._dirty.add(webhook_id)
                raise

        await _all(load(w) for w in list(self._unloaded))
        await _all(write(w) for w in list(self._dirty))
        for webhook_id, reason in list(self._disable.items()):
            await self._disable_webhook(webhook_id, reason)
            self._disable.pop(webhook_id, None)

    async def _disable_webhook(self, webhook_id: str, reason: str) -> None:
        current = self._index.get(webhook_id) or await self._store.webhooks.get(webhook_id)
        if current is None or not current.active:
            return  # deleted or paused meanwhile: nothing to do
        now = datetime.now(UTC)
        now = now.replace(microsecond=now.microsecond // 1000 * 1000)  # as Cassandra keeps it
        disabled = replace(
            current, active=False, disabled_reason=reason, disabled_at=now, updated_at=now
        )
        await self._store.webhooks.update(disabled)
        self._index.put(disabled)
        await self._producer.send(
            self._topics.webhooks, webhook_to_json(disabled), key=webhook_id.encode()
        )
        log.warning("webhook disabled: %s", reason, extra={"webhook_id": webhook_id})
        await emit(
            self._producer,
            self._topics,
            lifecycle_event(
                WEBHOOK_DISABLED,
                account_id=disabled.account_id,
                webhook_id=webhook_id,
                about=(now.isoformat(),),
                data={
                    "url": disabled.url,
                    "reason": reason,
                    "disabled_at": format_timestamp(now),
                    "automatic": True,
                },
                now=now,
            ),
        )

    def health(self, webhook_id: str) -> WebhookHealth | None:
        return self._states.get(webhook_id)


async def _all(coroutines: Iterable[Coroutine[Any, Any, None]]) -> None:
    tasks = [asyncio.ensure_future(c) for c in coroutines]
    if not tasks:
        return
    results = await asyncio.gather(*tasks, return_exceptions=True)
    errors = [r for r in results if isinstance(r, BaseException)]
    if errors:
        raise errors[0]
