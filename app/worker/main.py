"""The ``worker`` role: match (②, a Faust agent over the events topic) and deliver (④, a
confluent-kafka consumer over the attempt topics), reading like a table of contents —
settings, store, producers, HTTP sender, webhook index, Faust app, run.

Both consumers take over a dead worker's partitions within ``worker.session_timeout``
(10 s) and, with ``worker.instance_id`` set (the pod name), a restarted worker gets its own
partitions back without a rebalance (static membership).
"""

from __future__ import annotations

import asyncio
import logging
import os
import tempfile
from typing import Any

import faust
import uvloop
from faust.sensors.monitor import Monitor

from app import heap, metrics
from app.accounts import AccountDirectory
from app.delivery import AiohttpSender
from app.kafka import AsyncProducer, faust_credentials, wait_for_topics
from app.matching import WebhookIndex
from app.records import RecordLog
from app.settings import Settings
from app.store import Store
from app.topics import Topics
from app.worker.attempts import AttemptConsumer
from app.worker.context import WorkerContext
from app.worker.deliver import deliver_message
from app.worker.feed import WebhookFeed
from app.worker.handoff import Health
from app.worker.health import HealthTracker
from app.worker.match import match_event
from app.worker.recent import RecentEvents
from app.worker.stream import MatchTransport, consume

log = logging.getLogger(__name__)

EXIT_BUG = 70  # EX_SOFTWARE: a restart re-reads from the committed offset

# A produce waits this long for Kafka before the hand-off is tried again (app.worker.handoff);
# librdkafka keeps reconnecting meanwhile.
HAND_OFF_TIMEOUT_MS = 15_000


def crash(exc: BaseException) -> None:
    """Stop at once, acking nothing more: the committed offsets stay behind unfinished work.
    Only for bugs; outages are waited out (``app.worker.handoff``)."""
    logging.shutdown()
    os._exit(EXIT_BUG)


class QuietMonitor(Monitor):  # type: ignore[misc]  # faust is untyped
    """Faust's monitor without its per-message statistics (counts, timings, deques), which
    nothing here reads: the worker exports its own metrics (``app.metrics``). Faust calls
    these four hooks for every event; they cost ~10 µs an event (BENCHMARKS.md, session 5).
    Commit, rebalance and send hooks stay as Faust has them. (Taken out once after a CI
    failure of the SIGKILL takeover test; that failure was the never-committed partition
    that ``app.worker.stream.MatchTransport`` now seeks back, not the monitor.)"""

    def on_message_in(self, tp: Any, offset: int, message: Any) -> None:
        return None

    def on_stream_event_in(self, tp: Any, offset: int, stream: Any, event: Any) -> None:
        return None

    def on_stream_event_out(
        self, tp: Any, offset: int, stream: Any, event: Any, state: Any = None
    ) -> None:
        return None

    def on_message_out(self, tp: Any, offset: int, message: Any) -> None:
        return None


def build_app(settings: Settings) -> faust.App:
    topics = Topics.from_settings(settings)
    brokers = [f"kafka://{server}" for server in settings.kafka.bootstrap_servers.split(",")]
    session_s = settings.worker.session_timeout.total_seconds()
    app = faust.App(
        settings.kafka.consumer_group,
        broker=brokers,
        broker_credentials=faust_credentials(settings),
        key_serializer="raw",
        value_serializer="raw",
        web_enabled=False,
        topic_allow_declare=False,  # topics come from `hookstream migrate`, never auto-created
        topic_disable_leader=True,
        consumer_auto_offset_reset="earliest",
        broker_commit_interval=settings.worker.commit_interval.total_seconds(),
        broker_session_timeout=session_s,
        broker_heartbeat_interval=max(0.5, session_s / 5),
        consumer_group_instance_id=(
            f"{settings.worker.instance_id}-match" if settings.worker.instance_id else None
        ),
        stream_wait_empty=True,  # a rebalance or stop waits for in-flight work to be acked
        datadir=os.path.join(tempfile.gettempdir(), f"hookstream-faust-{os.getpid()}"),
        loghandlers=[],
        monitor=QuietMonitor(),
    )
    # Before anything reaches ``app.transport`` (``app.topic`` does): its consumer seeks
    # never-committed partitions back to their beginning and hands each message over without
    # a race of four tasks (app.worker.stream).
    app.transport = MatchTransport(app.conf.broker_consumer, app)
    state: dict[str, Any] = {}
    ready = asyncio.Event()

    async def context() -> WorkerContext:
        await ready.wait()
        ctx: WorkerContext = state["ctx"]
        return ctx

    events_topic = app.topic(topics.events, value_serializer="raw", key_serializer="raw")

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

    @app.timer(interval=5.0)
    async def measure_lag() -> None:
        # A timer must never take the worker down: a partition assigned but not fetched yet
        # has no high watermark (None), and any other surprise is a missing sample.
        try:
            for tp in app.consumer.assignment():
                position = await app.consumer.position(tp)
                highwater = app.consumer.highwater(tp)
                if position is not None and highwater is not None:
                    lag = max(0, highwater - position)
                    metrics.CONSUMER_LAG.labels(tp.topic, str(tp.partition)).set(lag)
        except Exception as exc:
            log.debug("match lag not measured: %s", exc)

    @app.task
    async def start_context() -> None:
        store = await Store.connect(settings)
        index = WebhookIndex()
        accounts = AccountDirectory()
        feed = WebhookFeed(settings, topics, index, store, accounts)
        await feed.start()
        await feed.ready.wait()
        producer = AsyncProducer(settings, **{"message.timeout.ms": HAND_OFF_TIMEOUT_MS})
        webhook_health = HealthTracker(settings, topics, store, producer, index)
        ctx = WorkerContext(
            settings=settings,
            topics=topics,
            index=index,
            accounts=accounts,
            store=store,
            producer=producer,
            sender=AiohttpSender(settings.delivery, settings.allowed_networks),
            records=RecordLog(producer, topics),
            health=Health(lambda: producer.brokers_down),
            recent=RecentEvents(settings.worker.dedupe_window),
            attempted=RecentEvents(settings.worker.dedupe_window),
            attempting=set(),
            webhook_health=webhook_health,
        )
        webhook_health.start()
        attempts = AttemptConsumer(
            settings,
            [topics.deliveries, topics.redeliver],
            lambda message: deliver_message(ctx, message),
            limit=settings.delivery.concurrency,
            on_bug=crash,
        )
        await attempts.start()
        state.update(ctx=ctx, feed=feed, attempts=attempts)
        heap.settle()  # last in start-up: the app, the index and the clients are frozen
        ready.set()
        log.info("worker ready: %d webhooks known", len(index))

    @app.on_before_shutdown.connect  # after the match agent drained (stream_wait_empty)
    async def close(_app: Any, **_kwargs: Any) -> None:
        ctx = state.get("ctx")
        if ctx is None:
            return
        await state["attempts"].stop()
        if ctx.webhook_health is not None:
            await ctx.webhook_health.stop()
        await state["feed"].stop()
        await ctx.sender.close()
        ctx.producer.close()
        await ctx.store.close()

    return app


def main(settings: Settings) -> None:
    topics = Topics.from_settings(settings)
    wait_for_topics(
        settings,
        [
            topics.events,
            topics.accounts,
            topics.webhooks,
            topics.deliveries,
            topics.redeliver,
            topics.records,
        ],
    )
    metrics.serve(settings.worker.metrics_port)
    # uvloop: raw aiohttp measured 1.4-1.8x faster on it than on asyncio's loop (BENCHMARKS.md).
    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    app = build_app(settings)
    worker = faust.Worker(app, loglevel=settings.log.level, quiet=True, override_logging=False)
    worker.execute_from_commandline()
