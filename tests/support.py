"""Shared helpers for the integration and end-to-end tests: a recording HTTP receiver, real
role processes (api, worker, scheduler) started from Settings, and condition polling."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any, TypeVar

from aiohttp import web

from app.settings import Settings, format_duration

T = TypeVar("T")


async def eventually(
    probe: Callable[[], Awaitable[T] | T],
    *,
    timeout: float = 30.0,
    interval: float = 0.1,
    what: str = "condition",
) -> T:
    """Poll ``probe`` until it returns something truthy; fail with the last value seen."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while True:
        result = probe()
        last = await result if asyncio.iscoroutine(result) else result
        if last:
            return last  # type: ignore[no-any-return]
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}; last: {last!r}")
        await asyncio.sleep(interval)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes
    at: float  # time.time() on arrival


@dataclass
class Receiver:
    """A real HTTP receiver on loopback that records every request.

    ``script[path]`` is a list of statuses answered in turn (the last one repeats);
    ``hang`` paths accept the request and never answer; ``gates[path]`` holds requests until
    the event is set. ``answered`` lists the requests whose response was written.
    """

    port: int = 0
    requests: list[Received] = field(default_factory=list)
    script: dict[str, list[int]] = field(default_factory=dict)
    hang: set[str] = field(default_factory=set)
    gates: dict[str, asyncio.Event] = field(default_factory=dict)
    answered: list[Received] = field(default_factory=list)
    _runner: web.AppRunner | None = None
    _released: asyncio.Event = field(default_factory=asyncio.Event)

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def at(self, path: str) -> list[Received]:
        return [r for r in self.requests if r.path == path]

    async def start(self) -> None:
        async def handle(request: web.Request) -> web.StreamResponse:
            body = await request.read()
            self.requests.append(Received(request.path, dict(request.headers), body, time.time()))
            received = self.requests[-1]
            if request.path in self.hang:
                await self._released.wait()  # until stop(): never answers
            gate = self.gates.get(request.path)
            if gate is not None:
                await gate.wait()
            statuses = self.script.get(request.path, [200])
            seen = len(self.at(request.path))
            status = statuses[min(seen, len(statuses)) - 1]
            response = web.Response(status=status, text="ok" if status < 300 else "nope")
            try:
                await response.prepare(request)
                await response.write_eof()
            except ConnectionError:
                return response  # the sender is gone (killed mid-request): not answered
            self.answered.append(received)  # the response reached the socket
            return response

        app = web.Application()
        app.router.add_route("POST", "/{tail:.*}", handle)
        self._runner = web.AppRunner(app, handle_signals=False, shutdown_timeout=2)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", self.port or free_port())
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]

    async def stop(self) -> None:
        self._released.set()
        for gate in self.gates.values():
            gate.set()
        if self._runner is not None:
            await self._runner.cleanup()


def settings_env(settings: Settings) -> dict[str, str]:
    """The environment that makes a child process build exactly these settings: every field,
    nested groups joined with ``__``, values in the spelling the settings parse."""
    from pydantic import BaseModel, SecretStr

    def text(value: Any) -> str:
        if isinstance(value, timedelta):
            return format_duration(value) if value else "0"
        if isinstance(value, SecretStr):
            return value.get_secret_value()
        if isinstance(value, bool):
            return str(value).lower()
        if isinstance(value, tuple | list):
            return ",".join(text(v) for v in value)
        return str(value)

    env: dict[str, str] = {}

    def walk(model: BaseModel, prefix: str) -> None:
        for name in type(model).model_fields:
            value = getattr(model, name)
            if isinstance(value, BaseModel):
                walk(value, f"{prefix}{name.upper()}__")
            elif value is None:
                continue  # unset: the default (None) applies
            else:
                env[f"{prefix}{name.upper()}"] = text(value)

    walk(settings, "HOOKSTREAM_")
    env["HOOKSTREAM_LOG__FORMAT"] = "json"
    return env


class Role:
    """One ``hookstream <role>`` child process with its log in a temp file."""

    def __init__(self, role: str, settings: Settings, log_dir: Path | None = None) -> None:
        self.role = role
        self.env = {**os.environ, **settings_env(settings)}
        directory = log_dir or Path(tempfile.mkdtemp(prefix="hookstream-test-"))
        self.log_path = directory / f"{role}-{time.monotonic_ns()}.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> Role:
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "app.cli", self.role],
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        return self

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def signal(self, sig: signal.Signals) -> None:
        assert self.proc is not None
        os.killpg(self.proc.pid, sig)

    def wait(self, timeout: float) -> int:
        """The exit code; fails with the tail of the role's log if it does not exit in time."""
        assert self.proc is not None
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            raise AssertionError(
                f"{self.role} still running after {timeout}s; log tail:\n{self.log()[-4000:]}"
            ) from None

    async def exited(self, timeout: float) -> int:
        """Await the exit without blocking the event loop (receivers in it keep answering)."""
        assert self.proc is not None
        proc = self.proc
        try:
            await eventually(
                lambda: proc.poll() is not None, timeout=timeout, what=f"{self.role} to exit"
            )
        except AssertionError:
            raise AssertionError(
                f"{self.role} still running after {timeout}s; log tail:\n{self.log()[-4000:]}"
            ) from None
        return proc.returncode

    async def astop(self, timeout: float = 30) -> int | None:
        """SIGTERM, then await the exit (SIGKILL after ``timeout``) without blocking the loop."""
        if self.proc is None or self.proc.poll() is not None:
            return None if self.proc is None else self.proc.returncode
        self.signal(signal.SIGTERM)
        try:
            return await self.exited(timeout)
        except AssertionError:
            self.signal(signal.SIGKILL)
            return self.proc.wait(10)

    def stop(self, timeout: float = 30) -> int | None:
        if self.proc is None or self.proc.poll() is not None:
            return None if self.proc is None else self.proc.returncode
        self.signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.signal(signal.SIGKILL)
            return self.proc.wait(10)


# Every keyspace ``isolated`` names, with the settings that reach its Cassandra; the root
# conftest drops a module's keyspaces when the module ends (``drop_keyspaces``). Why: Cassandra
# keeps heap per table (metrics, memtables, index state) until the table is dropped, and one run
# of the suite names well over a hundred nine-table keyspaces. Kept, they filled the shared test
# node's 1 GB heap about two-thirds into the run: OutOfMemoryError, the node exits, and every
# later test sees "connection refused".
NAMED_KEYSPACES: list[tuple[Settings, str]] = []


def isolated(settings: Settings, token: str) -> Settings:
    """Settings with their own topic prefix, events topic, groups and keyspace (dropped when
    the test module ends)."""
    from app.settings import CassandraSettings, KafkaSettings

    NAMED_KEYSPACES.append((settings, f"t{token}"))
    return settings.model_copy(
        update={
            "kafka": KafkaSettings(
                **{
                    **settings.kafka.model_dump(),
                    "topic_prefix": f"t{token}",
                    "events_topic": f"t{token}.events",
                    "consumer_group": f"t{token}-worker",
                    "scheduler_group": f"t{token}-scheduler",
                }
            ),
            "cassandra": CassandraSettings(
                **{**settings.cassandra.model_dump(), "keyspace": f"t{token}"}
            ),
            # Its own group: recorders of other tests must not rebalance with this one.
            "recorder": settings.recorder.model_copy(
                update={"consumer_group": f"t{token}-recorder"}
            ),
        }
    )


def drop_keyspaces(named: list[tuple[Settings, str]]) -> None:
    """Drop these keyspaces, one connection per Cassandra. A Cassandra that no longer answers
    (a module's own stack, stopped before this runs) took its keyspaces with it."""
    from app.store.errors import StoreUnavailable
    from app.store.schema import DDL_TIMEOUT
    from app.store.session import connect

    by_node: dict[tuple[tuple[str, ...], int], tuple[Settings, set[str]]] = {}
    for settings, keyspace in named:
        node = (tuple(settings.cassandra.hosts), settings.cassandra.port)
        by_node.setdefault(node, (settings, set()))[1].add(keyspace)
    for settings, keyspaces in by_node.values():
        try:
            session = connect(settings)
        except StoreUnavailable:
            continue
        try:
            for keyspace in sorted(keyspaces):
                session.execute(f"DROP KEYSPACE IF EXISTS {keyspace}", timeout=DDL_TIMEOUT)
        finally:
            session.cluster.shutdown()


API_KEY = "test-key-0123456789abcdef"


def pipeline_settings(stack_settings: Settings, token: str, **overrides: Any) -> Settings:
    """Isolated settings for a pipeline under test: compressed retry schedule (0,1s,2s,3s,4s),
    loopback allowed, plain http allowed, a known API key, no metrics ports."""
    import ipaddress
    from datetime import timedelta

    from pydantic import SecretStr

    from app.settings import parse_duration

    base = isolated(stack_settings, token)
    delivery = {**base.delivery.model_dump(), **overrides.pop("delivery", {})}
    worker = {
        **base.worker.model_dump(),
        "metrics_port": 0,
        "webhook_reload_interval": timedelta(seconds=5),
        **overrides.pop("worker", {}),
    }
    return base.model_copy(
        update={
            "retry_schedule": tuple(parse_duration(d) for d in ("0", "1s", "2s", "3s", "4s")),
            "allowed_networks": (ipaddress.ip_network("127.0.0.0/8"),),
            "api_keys": (SecretStr(API_KEY),),
            "api": base.api.model_copy(update={"port": free_port(), "allow_http": True}),
            "delivery": type(base.delivery)(**delivery),
            "worker": type(base.worker)(**worker),
            "scheduler": base.scheduler.model_copy(update={"metrics_port": 0}),
            "recorder": base.recorder.model_copy(update={"metrics_port": 0}),
            "replay": base.replay.model_copy(
                update={"metrics_port": 0, "consumer_group": f"t{token}-replayer"}
            ),
            **overrides,
        }
    )


def prepare(settings: Settings) -> None:
    """Schema and topics for these settings (what ``hookstream migrate`` does)."""
    from app.kafka import create_topics
    from app.store.schema import migrate

    migrate(settings)
    create_topics(settings)


async def create_webhook(store: Any, url: str, events: tuple[str, ...] = ("user.created",)) -> Any:
    """An active webhook written straight to Cassandra (workers load it at start)."""
    from datetime import UTC, datetime

    from app.webhooks import Webhook, generate_secret

    now = datetime.now(UTC)
    webhook = Webhook(
        id="hook_" + uuid.uuid4().hex[:12],
        url=url,
        events=events,
        secret=generate_secret(),
        active=True,
        created_at=now,
        updated_at=now,
    )
    await store.webhooks.create(webhook)
    return webhook


async def logged(store: Any, webhook_id: str) -> int:
    """How many deliveries the webhook's log holds, read page by page (1,000 a page)."""
    total, cursor = 0, None
    while True:
        page = await store.deliveries.list_by_webhook(webhook_id, limit=1000, cursor=cursor)
        total += len(page.deliveries)
        cursor = page.next_cursor
        if cursor is None:
            return total


def produce_events(
    settings: Settings,
    events: list[dict[str, Any]],
    key: bytes | None = None,
    account: str | None = None,
) -> None:
    """Produce ``events`` (as JSON) to the events topic, for ``account`` when given (the
    ``hookstream-account`` header)."""
    import orjson
    from confluent_kafka import Producer

    from app.accounts import ACCOUNT_HEADER
    from app.kafka import client_config

    headers = [(ACCOUNT_HEADER, account.encode())] if account is not None else None
    producer = Producer({**client_config(settings), "acks": "all", "linger.ms": 5})
    for event in events:
        producer.produce(settings.kafka.events_topic, orjson.dumps(event), key=key, headers=headers)
        producer.poll(0)
    assert producer.flush(30) == 0


def event(event_type: str = "user.created", **data: Any) -> dict[str, Any]:
    import uuid

    return {
        "id": "evt_" + uuid.uuid4().hex[:16],
        "type": event_type,
        "created_at": "2026-01-15T12:30:00Z",
        "data": {"id": "user_123", **data},
    }


def api_client(settings: Settings, timeout: float = 10) -> Any:
    """An httpx client for the API role of ``settings``, with the test API key."""
    import httpx

    return httpx.AsyncClient(
        base_url=f"http://127.0.0.1:{settings.api.port}",
        headers={"Authorization": f"Bearer {API_KEY}"},
        trust_env=False,
        timeout=timeout,
    )


async def api_ready(api: Any) -> bool:
    import httpx

    try:
        return bool((await api.get("/readyz")).status_code == 200)
    except httpx.TransportError:
        return False


def read_topic(settings: Settings, topic: str, timeout: float = 10.0) -> list[Any]:
    """Every message currently on ``topic`` (a group-less read from the beginning)."""
    from confluent_kafka import Consumer, TopicPartition

    from app.kafka import client_config

    consumer = Consumer(
        {
            **client_config(settings),
            "group.id": "reader-" + str(time.monotonic_ns()),
            "enable.auto.commit": False,
        }
    )
    try:
        deadline = time.monotonic() + timeout
        meta = consumer.list_topics(topic, timeout=timeout).topics[topic]
        tps = [TopicPartition(topic, p, 0) for p in meta.partitions]
        ends = {p: _end_offset(consumer, topic, p, deadline) for p in meta.partitions}
        consumer.assign(tps)
        out: list[Any] = []
        remaining = {p for p, end in ends.items() if end > 0}
        while remaining and time.monotonic() < deadline:
            msg = consumer.poll(0.5)
            if msg is None or msg.error():
                continue
            out.append(msg)
            if msg.offset() + 1 >= ends[msg.partition()]:
                remaining.discard(msg.partition())
        return out
    finally:
        consumer.close()


def _end_offset(consumer: Any, topic: str, partition: int, deadline: float) -> int:
    """The partition's end offset. A topic created a moment ago on a loaded broker may not
    have a leader for every partition yet ("not leader for partition"): ask again."""
    from confluent_kafka import KafkaError, KafkaException, TopicPartition

    leaderless = {KafkaError.NOT_LEADER_FOR_PARTITION, KafkaError.LEADER_NOT_AVAILABLE}
    while True:
        try:
            return int(consumer.get_watermark_offsets(TopicPartition(topic, partition), 5.0)[1])
        except KafkaException as exc:
            if exc.args[0].code() not in leaderless or time.monotonic() >= deadline:
                raise
            time.sleep(0.1)  # a bounded retry of a refused call, not a wait for a condition


PIPELINE_ROLES = ("api", "worker", "scheduler", "recorder")


@dataclass
class Running:
    """A pipeline of real role processes, a receiver and an API client (``running``)."""

    settings: Settings
    receiver: Receiver
    api: Any  # httpx.AsyncClient with the test key
    roles: dict[str, Role]


@contextlib.asynccontextmanager
async def running(
    settings: Settings, roles: tuple[str, ...] = PIPELINE_ROLES
) -> AsyncIterator[Running]:
    """Prepare ``settings``' keyspace and topics, start a receiver and the roles, wait for the
    API to be ready; on exit stop them all (the roles a test replaced included)."""
    prepare(settings)
    receiver = Receiver()
    await receiver.start()
    started = {name: Role(name, settings).start() for name in roles}
    api = api_client(settings)
    try:
        await eventually(lambda: api_ready(api), timeout=90, what="the API to be ready")
        yield Running(settings, receiver, api, started)
    finally:
        await api.aclose()
        for role in started.values():
            await role.astop()
        await receiver.stop()
