"""One isolated pipeline under test: its own topics and keyspace, its webhooks written to
Cassandra before the worker starts (so the worker's first load has them), ``hookstream worker``
(and ``scheduler``, ``api``, and ``recorder`` when the CLI has that command) as child processes,
and the probes the scenarios read: consumer lag from Kafka's committed offsets (the worker's
topics, and the records topic for the recorder), and each role's CPU time and RSS from
``/proc``.

The roles run from ``BENCH_APP_DIR`` when it is set (bench/__init__.py): a source tree such as
``git archive <commit> | tar -x -C DIR``, so an older commit can be measured with today's
bench, on the same machine, without touching the working tree. ``migrate`` runs from that tree
too, so its schema and topics are the ones its roles expect.
"""

from __future__ import annotations

import asyncio
import functools
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from confluent_kafka import ConsumerGroupTopicPartitions, TopicPartition
from confluent_kafka.admin import AdminClient, OffsetSpec

from app.kafka import client_config
from app.settings import Settings
from app.topics import Topics
from app.webhooks import Webhook, generate_secret, new_webhook_id
from tests.support import Role, pipeline_settings

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
ROOT = Path(__file__).resolve().parent.parent


def app_tree() -> Path:
    """Where the roles run from: ``BENCH_APP_DIR`` (see bench/__init__.py) or this tree."""
    from bench import APP_DIR

    return Path(APP_DIR) if APP_DIR else ROOT


@functools.cache
def has_command(command: str, app_dir: Path) -> bool:
    """Whether ``hookstream <command>`` exists in the tree the roles run from: its ``--help``
    exits 0 (typer exits 2 for an unknown command). Asked at run time, so one bench measures
    the pipeline before and after a role is added."""
    try:
        done = subprocess.run(
            [sys.executable, "-m", "app.cli", command, "--help"],
            cwd=app_dir,
            env=_tree_env(dict(os.environ), app_dir),
            capture_output=True,
            timeout=60,
            check=False,
        )
    except subprocess.TimeoutExpired:
        return False
    return done.returncode == 0


def _tree_env(env: dict[str, str], app_dir: Path) -> dict[str, str]:
    if app_dir != ROOT:
        # the cwd comes first on sys.path for ``-m``; PYTHONPATH makes it hold for any child
        env["PYTHONPATH"] = os.pathsep.join([str(app_dir), env.get("PYTHONPATH", "")]).rstrip(
            os.pathsep
        )
    return env


class TreeRole(Role):
    """A ``hookstream <role>`` child run from ``app_dir``."""

    def __init__(self, role: str, settings: Settings, log_dir: Path, app_dir: Path) -> None:
        super().__init__(role, settings, log_dir)
        self.app_dir = app_dir
        self.env = _tree_env(self.env, app_dir)

    def start(self) -> TreeRole:
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "app.cli", self.role],
                env=self.env,
                cwd=self.app_dir,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        return self


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


RECORDS_SUFFIX = "records"  # issue 10: ``hookstream.records``, the attempts' records


class LagProbe:
    """Messages produced but not yet committed, from two kinds of admin requests (end offsets,
    committed offsets); it never joins a group.

    ``lag`` covers the topics the worker reads (events, deliveries, redeliver), ``record_lag``
    the records topic the recorder reads. The committed offset of a partition is the highest
    any of the pipeline's groups (every group whose name starts with the pipeline's prefix)
    committed for it: which group reads which topic is the worker's business (a rewrite may
    split it into several), and only one reads each of these topics. Both figures come from one
    snapshot of at most ``max_age`` seconds, so asking for both costs one round of requests."""

    def __init__(self, settings: Settings, recorder: bool = False, max_age: float = 0.2) -> None:
        topics = Topics.from_settings(settings)
        self._prefix = f"{settings.kafka.topic_prefix}-"
        self._admin = AdminClient(client_config(settings))
        n = settings.kafka.partitions
        self._tps = [
            TopicPartition(t, p)
            for t in (topics.events, topics.deliveries, topics.redeliver)
            for p in range(n)
        ]
        self._records_topic = f"{settings.kafka.topic_prefix}.{RECORDS_SUFFIX}"
        self._records_tps: list[TopicPartition] = []
        self._recorder = recorder
        self._max_age = max_age
        self._taken = -1.0
        self._last: tuple[int, int | None] = (0, None)
        self.groups: set[str] = set()

    def _records(self) -> list[TopicPartition]:
        if self._recorder and not self._records_tps:
            meta = self._admin.list_topics(self._records_topic, timeout=10).topics
            parts = meta.get(self._records_topic)
            if parts is not None and parts.error is None:
                self._records_tps = [
                    TopicPartition(self._records_topic, p) for p in sorted(parts.partitions)
                ]
        return self._records_tps

    def snapshot(self) -> tuple[int, int | None]:
        """(worker lag, recorder lag or None without a recorder)."""
        if time.monotonic() - self._taken < self._max_age:
            return self._last
        records = self._records()
        tps = self._tps + records
        ends_f = self._admin.list_offsets(
            {tp: OffsetSpec.latest() for tp in tps}, request_timeout=10
        )
        listed = self._admin.list_consumer_groups(request_timeout=10).result(15)
        groups = sorted(g.group_id for g in listed.valid if g.group_id.startswith(self._prefix))
        self.groups.update(groups)
        done: dict[tuple[str, int], int] = {}
        for group in groups:  # the admin API takes one group per request
            f = self._admin.list_consumer_group_offsets(
                [ConsumerGroupTopicPartitions(group, tps)], request_timeout=10
            )[group]
            for tp in f.result(15).topic_partitions:
                key = (tp.topic, tp.partition)
                done[key] = max(done.get(key, 0), tp.offset)
        ends = {(tp.topic, tp.partition): f.result(15).offset for tp, f in ends_f.items()}

        def lag(parts: list[TopicPartition]) -> int:
            keys = [(tp.topic, tp.partition) for tp in parts]
            return sum(max(0, ends[k] - max(done.get(k, 0), 0)) for k in keys)

        self._last = (lag(self._tps), lag(records) if self._recorder and records else None)
        self._taken = time.monotonic()
        return self._last

    def lag(self) -> int:
        return self.snapshot()[0]

    def record_lag(self) -> int | None:
        """Records not yet committed by the recorder; None without a recorder."""
        return self.snapshot()[1]

    def close(self) -> None:
        pass


def _group_settings(settings: Settings) -> list[tuple[str, str, str]]:
    """(section, field, value) of every consumer-group setting (a str field named ``*group``)
    in every settings section: ``kafka.consumer_group``, ``recorder.consumer_group``, …"""
    from pydantic import BaseModel

    out: list[tuple[str, str, str]] = []
    for section in type(settings).model_fields:
        group = getattr(settings, section)
        if not isinstance(group, BaseModel):
            continue
        for name in type(group).model_fields:
            value = getattr(group, name)
            if name.endswith("group") and isinstance(value, str):
                out.append((section, name, value))
    return out


def isolate_groups(settings: Settings, token: str) -> Settings:
    """``tests.support.pipeline_settings`` names the worker's and scheduler's groups after the
    pipeline and turns their metrics ports off; do the same for every other section (the
    recorder's), so runs never share a group and never fight over a port."""
    from pydantic import BaseModel

    prefix = f"t{token}"
    changes: dict[str, dict[str, Any]] = {}
    for section, name, value in _group_settings(settings):
        if not value.startswith(prefix):
            suffix = section if name == "consumer_group" else f"{section}-{name}"
            changes.setdefault(section, {})[name] = f"{prefix}-{suffix.replace('_', '-')}"
    for section in type(settings).model_fields:
        group = getattr(settings, section)
        port = group.__dict__.get("metrics_port") if isinstance(group, BaseModel) else None
        if isinstance(port, int) and port:
            changes.setdefault(section, {})["metrics_port"] = 0
    if not changes:
        return settings
    return settings.model_copy(
        update={
            section: getattr(settings, section).model_copy(update=fields)
            for section, fields in changes.items()
        }
    )


class Pipeline:
    def __init__(
        self,
        stack: Settings,
        name: str,
        hooks: Sequence[Hook],
        *,
        scheduler: bool = False,
        api: bool = False,
        attempt_timeout: float = 5.0,
        log_dir: Path,
    ) -> None:
        self.token = f"b{name}{uuid.uuid4().hex[:6]}"
        settings = pipeline_settings(
            stack, self.token, delivery={"attempt_timeout": attempt_timeout}
        )
        # one poll of the record-lag probe reads a whole sample set in one page, and the
        # probes are one key: no per-key rate limit in the way of the measurement
        settings = settings.model_copy(
            update={"api": settings.api.model_copy(update={"page_limit": 1000, "rate_limit": 0})}
        )
        self.settings = isolate_groups(settings, self.token)
        self.topics = Topics.from_settings(self.settings)
        self.hooks = list(hooks)
        self.webhooks: list[Webhook] = []
        self.with_scheduler = scheduler
        self.with_api = api
        self.app_dir = app_tree()
        self.with_recorder = has_command("recorder", self.app_dir)
        self.log_dir = log_dir
        self.worker: Role | None = None
        self.scheduler: Role | None = None
        self.recorder: Role | None = None
        self.api: Role | None = None
        self.lag_probe: LagProbe | None = None
        self.worker_ready_at: float | None = None  # monotonic

    # -- lifecycle ---------------------------------------------------------------------------

    def role(self, name: str) -> TreeRole:
        return TreeRole(name, self.settings, self.log_dir, self.app_dir)

    def start(self, say: Callable[[str], None], *, roles: bool = True) -> None:
        """Schema, topics and webhooks; then (``roles``) every role, ready."""
        began = time.monotonic()
        self.prepare()
        if self.with_api:
            self.start_api()
        if roles:
            self.start_roles()
            self.wait_worker_ready(120)
        say(
            f"  pipeline {self.token} up in {time.monotonic() - began:.1f} s "
            f"(roles: {', '.join(self.role_names()) or 'none yet'})"
        )

    def prepare(self) -> None:
        """``hookstream migrate`` from the roles' tree (keyspace, tables, topics), webhooks."""
        migrate = self.role("migrate").start()
        code = migrate.wait(240)
        if code != 0:
            raise RuntimeError(f"migrate exited {code}; log:\n{migrate.log()[-3000:]}")
        asyncio.run(self._create_webhooks())
        self.lag_probe = LagProbe(self.settings, recorder=self.with_recorder)

    def start_api(self, timeout: float = 60) -> None:
        import httpx

        self.api = self.role("api").start()
        url = f"http://127.0.0.1:{self.settings.api.port}/readyz"
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self.api.alive():
                raise RuntimeError(f"api exited; log:\n{self.api.log()[-3000:]}")
            try:
                if httpx.get(url, timeout=2).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.25)
        raise RuntimeError(f"api not ready after {timeout} s; log:\n{self.api.log()[-3000:]}")

    def start_roles(self) -> None:
        """Recorder first (when this tree has one), then the worker, then the scheduler."""
        if self.with_recorder:
            self.recorder = self.role("recorder").start()
        self.worker = self.role("worker").start()
        if self.with_scheduler:
            self.scheduler = self.role("scheduler").start()

    def wait_worker_ready(self, timeout: float, poll: float = 0.25) -> None:
        assert self.worker is not None
        self._wait_log(self.worker, "worker ready", timeout, poll)
        self.worker_ready_at = time.monotonic()

    def role_names(self) -> list[str]:
        return [n for n, r in self.roles().items() if r is not None]

    def roles(self) -> dict[str, Role | None]:
        return {
            "worker": self.worker,
            "recorder": self.recorder,
            "scheduler": self.scheduler,
            "api": self.api,
        }

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
    def _wait_log(role: Role, text: str, timeout: float, poll: float = 0.25) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not role.alive():
                raise RuntimeError(f"{role.role} exited; log:\n{role.log()[-3000:]}")
            if text in role.log():
                return
            time.sleep(poll)
        raise RuntimeError(f"{role.role} not ready after {timeout} s; log:\n{role.log()[-3000:]}")

    def stop(self) -> None:
        # the worker first, so it can hand its last records to the recorder before it stops
        for role in (self.worker, self.scheduler, self.recorder, self.api):
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

    def cpu_roles(self) -> dict[str, tuple[float, float]]:
        """(utime, stime) of every running role except the API (its CPU is the poller's)."""
        out: dict[str, tuple[float, float]] = {}
        for name, role in self.roles().items():
            if name != "api" and role is not None and role.proc is not None and role.alive():
                out[name] = cpu_times(role.proc.pid)
        return out

    def api_cpu(self) -> float:
        assert self.api is not None and self.api.proc is not None
        return cpu_seconds(self.api.proc.pid)

    def failure(self) -> str:
        """The last critical or error log line of a role that exited (the worker's first)."""
        import json

        dead = [r for r in (self.worker, self.recorder, self.scheduler, self.api)
                if r is not None and not r.alive()]  # fmt: skip
        role = dead[0] if dead else self.worker
        if role is None:
            return "no worker"
        for line in reversed(role.log().splitlines()):
            if '"level":"critical"' in line or '"level":"error"' in line:
                try:
                    record = json.loads(line)
                except ValueError:
                    return f"{role.role}: {line[-600:]}"
                exc = (record.get("exc") or "").strip().splitlines()
                return f"{role.role}: {record.get('msg')}: {exc[-1] if exc else ''}"[:800]
        return f"{role.role} exited without a critical log line; tail: " + role.log()[-600:]

    def rss(self) -> float:
        return rss_mib(self.worker_pid)

    def rss_roles(self) -> dict[str, float]:
        return {
            name: round(rss_mib(role.proc.pid), 1)
            for name, role in self.roles().items()
            if role is not None and role.proc is not None and role.alive()
        }

    def lag(self) -> int:
        assert self.lag_probe is not None
        return self.lag_probe.lag()

    def record_lag(self) -> int | None:
        assert self.lag_probe is not None
        return self.lag_probe.record_lag()

    def alive(self) -> bool:
        roles = [r for r in (self.worker, self.recorder, self.scheduler, self.api) if r]
        return self.worker is not None and all(r.alive() for r in roles)

    def info(self) -> dict[str, Any]:
        return {
            "token": self.token,
            "topic_prefix": self.settings.kafka.topic_prefix,
            "keyspace": self.settings.cassandra.keyspace,
            "webhooks": len(self.webhooks),
            "roles": self.role_names(),
            "recorder": self.with_recorder,
            "consumer_groups": sorted(self.lag_probe.groups) if self.lag_probe else [],
            "app_dir": str(self.app_dir),
            "concurrency": self.settings.delivery.concurrency,
            "per_webhook_concurrency": self.settings.delivery.per_webhook_concurrency,
            "attempt_timeout_s": self.settings.delivery.attempt_timeout,
            "retry_schedule_s": [d.total_seconds() for d in self.settings.retry_schedule],
            "worker_log": str(self.worker.log_path) if self.worker else None,
        }
