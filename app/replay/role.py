"""The ``replayer`` role: take replay jobs from the replays topic and run them, one at a time.

Replayers share the ``HOOKSTREAM_REPLAY__CONSUMER_GROUP`` group on the replays topic (jobs are
keyed by replay id, so they spread over the partitions). A job message is committed only
once its replay finished (done, cancelled or failed): a replayer that stops mid-replay leaves
it to the partition's next owner, which resumes it from the positions saved after the last
batch whose attempts Kafka acknowledged (so after a crash at most one batch is sent twice,
with the same delivery ids: within at-least-once; after SIGTERM none is).

While a replay runs, the job partitions are paused and still polled between batches, so the
replayer stays in its group and takes no second job. One port
(``HOOKSTREAM_REPLAY__METRICS_PORT``) serves ``/metrics``, ``/healthz`` and ``/readyz``.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import threading
from types import FrameType

from confluent_kafka import Consumer, Message, TopicPartition

from app.errors import HookstreamError
from app.kafka import AsyncProducer, client_config, wait_for_topics
from app.probes import serve_health
from app.replay import metrics
from app.replay.jobs import ReplayStatus, job_id
from app.replay.runner import Interrupted, ReplayRunner
from app.settings import Settings
from app.store import Store
from app.topics import Topics

log = logging.getLogger(__name__)

BACKOFF_MAX_S = 30.0


def main(settings: Settings) -> None:
    """Run the replayer until SIGTERM/SIGINT; a replay in progress is left to be re-run."""
    stop = threading.Event()

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        log.info("received %s: stopping the replayer", signal.Signals(signum).name)
        stop.set()

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGTERM, signal.SIGINT)}
    topics = Topics.from_settings(settings)
    wait_for_topics(settings, [topics.replays, topics.events])
    replayer = Replayer(settings, topics)
    server = serve_health(replayer, settings.replay.metrics_port, "replayer")
    try:
        asyncio.run(replayer.run(stop))
    finally:
        if server is not None:
            server.shutdown()
        for sig, handler in previous.items():
            signal.signal(sig, handler)


class Replayer:
    """The job loop. ``ready`` and ``reason`` answer ``/readyz``."""

    def __init__(self, settings: Settings, topics: Topics) -> None:
        self.ready = False
        self.reason = "starting"
        self._settings = settings
        self._topics = topics
        self._busy: Message | None = None  # the job message being run
        self._lost = False  # its partition was revoked while it ran

    async def run(self, stop: threading.Event) -> None:
        store = await Store.connect(self._settings)
        producer = AsyncProducer(self._settings)
        jobs = Consumer(
            {
                **client_config(self._settings),
                "group.id": self._settings.replay.consumer_group,
                "enable.auto.commit": False,
                "auto.offset.reset": "earliest",
            }
        )
        jobs.subscribe([self._topics.replays], on_assign=self._on_assign, on_revoke=self._on_revoke)
        runner = ReplayRunner(self._settings, store, producer, self._topics)
        self.ready, self.reason = True, "ok"
        metrics.READY.set(1)
        try:
            while not stop.is_set():
                message = await asyncio.to_thread(jobs.poll, 0.5)
                if message is None:
                    continue
                if message.error() is not None:
                    log.warning("replays topic: %s", message.error())
                    continue
                if await self._job(message, jobs, store, runner, stop):
                    await asyncio.to_thread(jobs.commit, message=message, asynchronous=False)
        finally:
            metrics.READY.set(0)
            await asyncio.to_thread(jobs.close)
            await asyncio.to_thread(producer.close)
            await store.close()

    async def _job(
        self,
        message: Message,
        jobs: Consumer,
        store: Store,
        runner: ReplayRunner,
        stop: threading.Event,
    ) -> bool:
        """Run the message's replay; True once it is finished (commit the message)."""
        replay_id = job_id(message.value())
        if replay_id is None:
            log.warning("replays topic: not a job message; skipped")
            return True
        self._busy, self._lost = message, False
        jobs.pause(jobs.assignment())
        metrics.RUNNING.set(1)

        def interrupted() -> bool:
            jobs.poll(0)  # stay in the group; rebalance callbacks run here
            return stop.is_set() or self._lost

        backoff = 1.0
        try:
            while True:
                try:
                    replay = await store.replays.get(replay_id)
                    if replay is None or replay.status.finished:
                        return True  # expired, or finished by an earlier owner
                    if replay.cancel_requested and replay.status is ReplayStatus.QUEUED:
                        await store.replays.set_status(replay_id, ReplayStatus.CANCELLED)
                        return True
                    await runner.run(replay, interrupted)
                    self.ready, self.reason = True, "ok"
                    metrics.READY.set(1)
                    return True
                except Interrupted:
                    log.info(
                        "replay interrupted; left to be run again", extra={"replay_id": replay_id}
                    )
                    return False
                except HookstreamError as exc:  # Kafka or Cassandra refused: wait, run again
                    self.ready, self.reason = False, f"replay held: {exc}"
                    metrics.READY.set(0)
                    log.warning(
                        "replay held (%s); running it again in %.0f s",
                        exc,
                        backoff,
                        extra={"replay_id": replay_id},
                    )
                    deadline = asyncio.get_running_loop().time() + backoff
                    while asyncio.get_running_loop().time() < deadline:
                        if interrupted():
                            return False
                        await asyncio.sleep(0.5)
                    backoff = min(backoff * 2, BACKOFF_MAX_S)
        finally:
            metrics.RUNNING.set(0)
            self._busy = None
            if not self._lost:
                jobs.resume(jobs.assignment())

    def _on_assign(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        if self._busy is not None:
            # One job at a time: take no second one meanwhile (assigned here, so the pause
            # applies to the assignment rather than being reset by it).
            consumer.assign(partitions)
            consumer.pause(partitions)

    def _on_revoke(self, _consumer: Consumer, partitions: list[TopicPartition]) -> None:
        busy = self._busy
        if busy is not None and any(
            tp.topic == busy.topic() and tp.partition == busy.partition() for tp in partitions
        ):
            self._lost = True
