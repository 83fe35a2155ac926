"""Every worker's view of the accounts and webhooks: in memory, fed two ways.

1. A group-less reader of the compacted accounts and webhooks topics applies each change
   within milliseconds (tombstone = deleted). Group-less, so every worker sees every change.
2. A periodic reload from Cassandra (the source of truth) heals any change notice that was
   lost, for example when the API could not publish.

``ready`` is set once both topics have been read to their end and Cassandra loaded once: the
agents wait for it, so no event is matched against a half-built index.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time

from aiokafka import AIOKafkaConsumer, TopicPartition

from app import metrics
from app.accounts import AccountDirectory, account_from_json
from app.errors import HookstreamError
from app.kafka import admin_client, aiokafka_config
from app.keyring import SealedSecretError, key_ring
from app.matching import WebhookIndex
from app.settings import Settings
from app.store import Store
from app.topics import Topics
from app.webhooks import webhook_from_json

log = logging.getLogger(__name__)


class WebhookFeed:
    def __init__(
        self,
        settings: Settings,
        topics: Topics,
        index: WebhookIndex,
        store: Store,
        accounts: AccountDirectory,
    ):
        self._settings = settings
        self._ring = key_ring(settings)
        self._topic = topics.webhooks
        self._accounts_topic = topics.accounts
        self._index = index
        self._accounts = accounts
        self._store = store
        self._deleted: dict[str, float] = {}  # id -> monotonic time of its tombstone
        self._tasks: list[asyncio.Task[None]] = []
        self._consumer: AIOKafkaConsumer | None = None
        self.ready = asyncio.Event()

    async def start(self) -> None:
        await self.reload()
        consumer = AIOKafkaConsumer(
            **aiokafka_config(self._settings),
            group_id=None,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
        )
        await consumer.start()
        self._consumer = consumer
        tps = []
        for topic in (self._accounts_topic, self._topic):
            partitions = await asyncio.to_thread(self._partitions, topic)
            if not partitions:
                await consumer.stop()
                raise HookstreamError(f"topic {topic} does not exist: run `hookstream migrate`")
            tps += [TopicPartition(topic, p) for p in sorted(partitions)]
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        ends = await consumer.end_offsets(tps) if tps else {}
        self._tasks.append(asyncio.create_task(self._follow(consumer, ends)))
        self._tasks.append(asyncio.create_task(self._reload_forever()))

    def _partitions(self, name: str) -> set[int]:
        admin = admin_client(self._settings)
        topic = admin.list_topics(name, timeout=15).topics.get(name)
        if topic is None or topic.error is not None:
            return set()
        return set(topic.partitions)

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if self._consumer is not None:
            await self._consumer.stop()

    async def reload(self) -> None:
        self._accounts.replace_all(await self._store.accounts.all())
        webhooks = await self._store.webhooks.all()
        horizon = (
            time.monotonic() - 2 * self._settings.worker.webhook_reload_interval.total_seconds()
        )
        self._deleted = {k: t for k, t in self._deleted.items() if t > horizon}
        fresh = []
        for webhook in webhooks:
            if webhook.id in self._deleted:
                continue  # deleted after this reload's read may have started
            known = self._index.get(webhook.id)
            fresh.append(known if known and known.updated_at > webhook.updated_at else webhook)
        self._index.replace_all(fresh)
        metrics.WEBHOOKS_KNOWN.set(len(self._index))

    async def _reload_forever(self) -> None:
        interval = self._settings.worker.webhook_reload_interval.total_seconds()
        while True:
            await asyncio.sleep(interval)
            try:
                await self.reload()
            except Exception:
                log.exception("webhook reload from Cassandra failed; keeping the current index")

    async def _follow(self, consumer: AIOKafkaConsumer, ends: dict[TopicPartition, int]) -> None:
        pending = {tp for tp, end in ends.items() if end > 0}
        if not pending:
            self.ready.set()
        while True:
            batches = await consumer.getmany(timeout_ms=200)
            for tp, records in batches.items():
                for record in records:
                    if tp.topic == self._accounts_topic:
                        self._apply_account(record.value)
                    else:
                        self._apply(record.key, record.value)
                if tp in pending and records and records[-1].offset + 1 >= ends[tp]:
                    pending.discard(tp)
            if pending:
                for tp in list(pending):
                    if await consumer.position(tp) >= ends[tp]:
                        pending.discard(tp)
            if not pending and not self.ready.is_set():
                log.info("webhook index ready: %d webhooks", len(self._index))
                self.ready.set()

    def _apply_account(self, value: bytes | None) -> None:
        if value is None:
            return  # accounts are disabled, never deleted
        try:
            self._accounts.put(account_from_json(value))
        except (ValueError, KeyError, TypeError):
            log.warning("unreadable account change ignored")

    def _apply(self, key: bytes | None, value: bytes | None) -> None:
        if key is None:
            return
        webhook_id = key.decode()
        if value is None:
            self._index.remove(webhook_id)
            self._deleted[webhook_id] = time.monotonic()
        else:
            try:
                # Its secrets are sealed on the topic (app.keyring); opened here, in memory.
                webhook = self._ring.open_webhook(webhook_from_json(value))
            except (ValueError, KeyError, TypeError):
                log.warning("unreadable webhook change for %s ignored", webhook_id)
                return
            except SealedSecretError as exc:
                log.error("webhook change ignored: %s", exc)
                return
            self._deleted.pop(webhook_id, None)
            self._index.put(webhook)
        metrics.WEBHOOKS_KNOWN.set(len(self._index))
