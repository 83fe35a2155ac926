"""One isolated pipeline under test: its own topics and keyspace, its webhooks written to
Cassandra before the worker starts (so the worker's first load has them), ``hookstream worker``
(and ``scheduler``) as child processes, and the probes the scenarios read: consumer lag from
Kafka's committed offsets, and the worker's CPU time and RSS from ``/proc``."""

from __future__ import annotations

import asyncio
import os
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from confluent_kafka import ConsumerGroupTopicPartitions, TopicPartition
from confluent_kafka.admin import AdminClient, OffsetSpec

from app.settings import Settings
from app.topics import Topics
from app.webhooks import Webhook, generate_secret, new_webhook_id
from tests.support import Role, pipeline_settings, prepare

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True)
class Hook:
    """A webhook to create: ``url`` and the event types it subscribes to."""

    url: str
    events: tuple[str, ...] = ("user.created",)


def cpu_times(pid: int) -> tuple[float, float]:
    """(utime, stime) of a process (all its threads) in seconds, from /proc/<pid>/stat."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return int(fields[11]) / CLOCK_TICKS, int(fields[12]) / CLOCK_TICKS


def cpu_seconds(pid: int) -> float:
    return sum(cpu_times(pid))


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


class LagProbe:
    """Messages produced but not yet committed by the worker's group, over the topics the
    worker reads (events, deliveries, redeliver): two admin requests (end offsets, committed
    offsets); it never joins the group."""

    def __init__(self, settings: Settings) -> None:
        topics = Topics.from_settings(settings)
        self._group = settings.kafka.consumer_group
        self._admin = AdminClient({"bootstrap.servers": settings.kafka.bootstrap_servers})
        n = settings.kafka.partitions
        self._tps = [
            TopicPartition(t, p)
            for t in (topics.events, topics.deliveries, topics.redeliver)
            for p in range(n)
        ]

    def lag(self) -> int:
        ends_f = self._admin.list_offsets(
            {tp: OffsetSpec.latest() for tp in self._tps}, request_timeout=10
        )
        committed_f = self._admin.list_consumer_group_offsets(
            [ConsumerGroupTopicPartitions(self._group, self._tps)], request_timeout=10
        )
        ends = {(tp.topic, tp.partition): f.result(15).offset for tp, f in ends_f.items()}
        committed = committed_f[self._group].result(15).topic_partitions
        done = {(tp.topic, tp.partition): max(tp.offset, 0) for tp in committed}
        return sum(max(0, end - done.get(key, 0)) for key, end in ends.items())

    def close(self) -> None:
        pass


class Pipeline:
    def __init__(
        self,
        stack: Settings,
        name: str,
        hooks: Sequence[Hook],
        *,
        scheduler: bool = False,
        attempt_timeout: float = 5.0,
        log_dir: Path,
    ) -> None:
        self.token = f"b{name}{uuid.uuid4().hex[:6]}"
        self.settings = pipeline_settings(
            stack, self.token, delivery={"attempt_timeout": attempt_timeout}
        )
        self.topics = Topics.from_settings(self.settings)
        self.hooks = list(hooks)
        self.webhooks: list[Webhook] = []
        self.with_scheduler = scheduler
        self.log_dir = log_dir
        self.worker: Role | None = None
        self.scheduler: Role | None = None
        self.lag_probe: LagProbe | None = None

    # -- lifecycle ---------------------------------------------------------------------------

    def start(self, say: Callable[[str], None]) -> None:
        began = time.monotonic()
        prepare(self.settings)  # keyspace, tables, topics
        asyncio.run(self._create_webhooks())
        self.worker = Role("worker", self.settings, self.log_dir).start()
        if self.with_scheduler:
            self.scheduler = Role("scheduler", self.settings, self.log_dir).start()
        self._wait_log(self.worker, "worker ready", 120)
        self.lag_probe = LagProbe(self.settings)
        say(f"  pipeline {self.token} up in {time.monotonic() - began:.1f} s")

    async def _create_webhooks(self) -> None:
        from app.store import Store

        store = await Store.connect(self.settings)
        try:
            now = datetime.now(UTC)
            for hook in self.hooks:
                webhook = Webhook(
                    id=new_webhook_id(),
                    url=hook.url,
                    events=hook.events,
                    secret=generate_secret(),
                    active=True,
                    created_at=now,
                    updated_at=now,
                )
                await store.webhooks.create(webhook)
                self.webhooks.append(webhook)
        finally:
            await store.close()

    @staticmethod
    def _wait_log(role: Role, text: str, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not role.alive():
                raise RuntimeError(f"{role.role} exited; log:\n{role.log()[-3000:]}")
            if text in role.log():
                return
            time.sleep(0.25)
        raise RuntimeError(f"{role.role} not ready after {timeout} s; log:\n{role.log()[-3000:]}")

    def stop(self) -> None:
        for role in (self.worker, self.scheduler):
            if role is not None:
                role.stop(timeout=20)
        if self.lag_probe is not None:
            self.lag_probe.close()

    # -- probes ------------------------------------------------------------------------------

    @property
    def worker_pid(self) -> int:
        assert self.worker is not None and self.worker.proc is not None
        return self.worker.proc.pid

    def cpu(self) -> float:
        return cpu_seconds(self.worker_pid)

    def cpu_split(self) -> tuple[float, float]:
        return cpu_times(self.worker_pid)

    def failure(self) -> str:
        """The worker's last critical log line and the exception at the end of it."""
        import json

        if self.worker is None:
            return "no worker"
        for line in reversed(self.worker.log().splitlines()):
            if '"level":"critical"' in line or '"level":"error"' in line:
                try:
                    record = json.loads(line)
                except ValueError:
                    return line[-600:]
                exc = (record.get("exc") or "").strip().splitlines()
                return f"{record.get('msg')}: {exc[-1] if exc else ''}"[:800]
        return "exited without a critical log line; tail: " + self.worker.log()[-600:]

    def rss(self) -> float:
        return rss_mib(self.worker_pid)

    def lag(self) -> int:
        assert self.lag_probe is not None
        return self.lag_probe.lag()

    def alive(self) -> bool:
        return self.worker is not None and self.worker.alive()

    def info(self) -> dict[str, Any]:
        return {
            "token": self.token,
            "topic_prefix": self.settings.kafka.topic_prefix,
            "keyspace": self.settings.cassandra.keyspace,
            "webhooks": len(self.webhooks),
            "concurrency": self.settings.delivery.concurrency,
            "per_webhook_concurrency": self.settings.delivery.per_webhook_concurrency,
            "attempt_timeout_s": self.settings.delivery.attempt_timeout,
            "retry_schedule_s": [d.total_seconds() for d in self.settings.retry_schedule],
            "worker_log": str(self.worker.log_path) if self.worker else None,
        }
