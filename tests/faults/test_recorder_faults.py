"""The recorder through a Cassandra outage: Cassandra is SIGSTOPped for ~20 s while records
flow into the records topic. The recorder must stay alive, say it is not ready, and once
Cassandra answers again write every record (0 lost) by itself."""

from __future__ import annotations

import asyncio
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest

from app.deliveries import DeliveryStatus, delivery_id
from app.kafka import AsyncProducer
from app.records import RecordLog
from app.settings import Settings
from app.store import Store
from app.store.records import AttemptRecord, DeliveryRecord
from app.store.schema import drop
from app.topics import Topics
from tests.faults.conftest import FaultStack
from tests.support import Role, eventually, free_port, logged, pipeline_settings, prepare

pytestmark = [pytest.mark.faults, pytest.mark.integration]

WEBHOOKS = 10
RATE = 100  # records per second
PAUSE_S = 20.0


@pytest.fixture
def settings(fault_stack: FaultStack) -> Iterator[Settings]:
    base = pipeline_settings(fault_stack.settings, "rf" + uuid.uuid4().hex[:8])
    configured = base.model_copy(
        update={"recorder": base.recorder.model_copy(update={"metrics_port": free_port()})}
    )
    prepare(configured)
    yield configured
    drop(configured)


def readiness(port: int) -> int:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=2) as response:
            return int(response.status)
    except urllib.error.HTTPError as exc:
        return exc.code
    except OSError:
        return 0


def life(n: int) -> DeliveryRecord:
    now = datetime.now(UTC)
    now = now.replace(microsecond=now.microsecond // 1000 * 1000)  # Cassandra keeps ms
    webhook, event = f"hook_out_{n % WEBHOOKS}", f"evt_out_{n}"
    return DeliveryRecord(
        delivery_id(event, webhook), webhook, event, "user.created", DeliveryStatus.SUCCESS, 1,
        now, now, 200, None, now, None,
    )  # fmt: skip


async def test_a_cassandra_pause_delays_the_log_and_loses_nothing(
    fault_stack: FaultStack, settings: Settings
) -> None:
    port = settings.recorder.metrics_port
    recorder = Role("recorder", settings).start()
    producer = AsyncProducer(settings)
    log = RecordLog(producer, Topics.from_settings(settings))
    sent: list[DeliveryRecord] = []
    flowing = True

    async def flow() -> None:
        n = 0
        while flowing:
            state = life(n)
            await log.record(state, AttemptRecord(state.id, 1, state.created_at, 4, "success", 200))
            sent.append(state)
            n += 1
            await asyncio.sleep(1 / RATE)

    try:
        ok: bool = await eventually(lambda: readiness(port) == 200, timeout=60, what="ready")
        assert ok
        producing = asyncio.create_task(flow())
        await asyncio.sleep(3)
        fault_stack.pause("cassandra")
        paused_at, sent_before = time.monotonic(), len(sent)
        try:
            held: bool = await eventually(
                lambda: readiness(port) == 503, timeout=PAUSE_S - 2, what="not ready"
            )
            assert held
            await asyncio.sleep(max(0.0, PAUSE_S - (time.monotonic() - paused_at)))
            assert recorder.alive(), recorder.log()[-3000:]
            assert readiness(port) == 503
        finally:
            fault_stack.resume("cassandra")
        assert len(sent) - sent_before > RATE * PAUSE_S / 2, "records flowed during the pause"
        await asyncio.sleep(3)
        flowing = False
        await producing

        back: bool = await eventually(
            lambda: readiness(port) == 200, timeout=90, what="ready again"
        )
        assert back
        store = await Store.connect(settings)
        try:

            async def counts() -> dict[str, int]:
                hooks = [f"hook_out_{w}" for w in range(WEBHOOKS)]
                return {hook: await logged(store, hook) for hook in hooks}

            expected = {f"hook_out_{w}": 0 for w in range(WEBHOOKS)}
            for state in sent:
                expected[state.webhook_id] += 1

            async def complete() -> bool:
                return await counts() == expected

            caught_up: bool = await eventually(complete, timeout=90, what="every record")
            assert caught_up
            for state in sent[:: max(1, len(sent) // 50)]:
                assert await store.deliveries.get(state.id) == state
                assert len(await store.deliveries.attempts(state.id)) == 1
        finally:
            await store.close()
        assert recorder.alive(), recorder.log()[-3000:]
        assert "recorder holding" in recorder.log()
        assert "caught up with Cassandra again" in recorder.log()
    finally:
        flowing = False
        producer.close()
        assert recorder.stop() == 0, recorder.log()[-3000:]
