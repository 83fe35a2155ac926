"""The ``worker`` role: Faust agents for match (②) and deliver (④), reading like a table of
contents — settings, store, producer, HTTP sender, webhook index, Faust app, run.
"""

from __future__ import annotations

import asyncio
import logging
import os
import tempfile
from typing import Any

import faust
import uvloop

from app import metrics
from app.delivery import AiohttpSender
from app.kafka import AsyncProducer, wait_for_topics
from app.matching import WebhookIndex
from app.settings import Settings
from app.store import Store
from app.topics import Topics
from app.worker.context import WorkerContext
from app.worker.deliver import deliver_attempt
from app.worker.feed import WebhookFeed
from app.worker.match import match_event
from app.worker.stream import consume

log = logging.getLogger(__name__)

EXIT_HAND_OFF_FAILED = 70  # EX_SOFTWARE: a restart re-reads from the committed offset


def crash(exc: BaseException) -> None:
    """Stop at once, acking nothing more: the committed offsets stay behind unfinished work."""
    logging.shutdown()
    os._exit(EXIT_HAND_OFF_FAILED)


def build_app(settings: Settings) -> faust.App:
    topics = Topics.from_settings(settings)
    brokers = [f"kafka://{server}" for server in settings.kafka.bootstrap_servers.split(",")]
    app = faust.App(
        settings.kafka.consumer_group,
        broker=brokers,
        key_serializer="raw",
        value_serializer="raw",
        web_enabled=False,
        topic_allow_declare=False,  # topics come from `hookstream migrate`, never auto-created
        topic_disable_leader=True,
        consumer_auto_offset_reset="earliest",
        broker_commit_interval=1.0,
        stream_wait_empty=True,  # a rebalance or stop waits for in-flight work to be acked
        datadir=os.path.join(tempfile.gettempdir(), f"hookstream-faust-{os.getpid()}"),
        loghandlers=[],
    )
    state: dict[str, Any] = {}
    ready = asyncio.Event()

    async def context() -> WorkerContext:
        await ready.wait()
        ctx: WorkerContext = state["ctx"]
        return ctx

    events_topic = app.topic(topics.events, value_serializer="raw", key_serializer="raw")
    attempts_topic = app.topic(
        topics.deliveries, topics.redeliver, value_serializer="raw", key_serializer="raw"
    )

    @app.agent(events_topic, name="match")
    async def match(stream: Any) -> None:
        ctx = await context()
        await consume(
            stream,
            ctx,
            match_event,
            limit=max(8, settings.delivery.concurrency // 4),
            name="match",
            crash=crash,
        )

    @app.agent(attempts_topic, name="deliver")
    async def deliver(stream: Any) -> None:
        ctx = await context()
        await consume(
            stream,
            ctx,
            deliver_attempt,
            limit=settings.delivery.concurrency,
            name="deliver",
            crash=crash,
        )

    @app.timer(interval=5.0)
    async def measure_lag() -> None:
        # Cheap: the high watermark comes with every fetch and the position is local state.
        metrics.CONSUMER_LAG.clear()
        for tp in app.consumer.assignment():
            position = await app.consumer.position(tp)
            if position is not None:
                lag = max(0, app.consumer.highwater(tp) - position)
                metrics.CONSUMER_LAG.labels(tp.topic, str(tp.partition)).set(lag)

    @app.task
    async def start_context() -> None:
        store = await Store.connect(settings)
        index = WebhookIndex()
        feed = WebhookFeed(settings, topics, index, store)
        await feed.start()
        await feed.ready.wait()
        state["ctx"] = WorkerContext(
            settings=settings,
            topics=topics,
            index=index,
            store=store,
            producer=AsyncProducer(settings),
            sender=AiohttpSender(settings.delivery, settings.allowed_networks),
        )
        state["feed"] = feed
        ready.set()
        log.info("worker ready: %d webhooks known", len(index))

    @app.on_before_shutdown.connect  # after in-flight work drained (stream_wait_empty)
    async def close(_app: Any, **_kwargs: Any) -> None:
        ctx = state.get("ctx")
        if ctx is None:
            return
        await state["feed"].stop()
        await ctx.sender.close()
        ctx.producer.close()
        await ctx.store.close()

    return app


def main(settings: Settings) -> None:
    topics = Topics.from_settings(settings)
    wait_for_topics(settings, [topics.events, topics.webhooks, topics.deliveries, topics.redeliver])
    metrics.serve(settings.worker.metrics_port)
    # uvloop: raw aiohttp measured 1.4-1.8x faster on it than on asyncio's loop (BENCHMARKS.md).
    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    app = build_app(settings)
    worker = faust.Worker(app, loglevel=settings.log.level, quiet=True, override_logging=False)
    worker.execute_from_commandline()
