"""At-least-once under crashes, drains and rebalances, with real worker processes.

A gated receiver holds every request open until the test releases it, so "in flight" is
exact: the worker has sent the request and not yet recorded an answer or acked the offset.
"""

from __future__ import annotations

import asyncio
import signal
import uuid
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import pytest

from app.deliveries import DeliveryStatus, delivery_id
from app.settings import Settings
from app.store import Store
from tests.support import (
    Receiver,
    Role,
    create_webhook,
    event,
    eventually,
    pipeline_settings,
    prepare,
    produce_events,
)

pytestmark = [pytest.mark.e2e, pytest.mark.integration]


@dataclass
class Rig:
    settings: Settings
    receiver: Receiver
    store: Store
    webhook_id: str

    def worker(self) -> Role:
        return Role("worker", self.settings).start()

    async def all_recorded_success(self, events: list[dict[str, Any]]) -> bool:
        records = await asyncio.gather(
            *(self.store.deliveries.get(delivery_id(e["id"], self.webhook_id)) for e in events)
        )
        return all(r is not None and r.status is DeliveryStatus.SUCCESS for r in records)

    def arrivals(self) -> Counter[str]:
        return Counter(r.headers["webhook-id"] for r in self.receiver.requests)

    def answered(self) -> set[str]:
        return {r.headers["webhook-id"] for r in self.receiver.answered}


@pytest.fixture
async def rig(stack_settings: Settings, request: pytest.FixtureRequest) -> AsyncIterator[Rig]:
    settings = pipeline_settings(
        stack_settings,
        uuid.uuid4().hex[:10],
        # Held requests must stay in flight: a long deadline, room for all of them at once.
        delivery={
            "concurrency": getattr(request, "param", 1500),
            "per_webhook_concurrency": 1500,
            "attempt_timeout": 120,
        },
    )
    prepare(settings)
    receiver = Receiver()
    receiver.gates["/gated"] = asyncio.Event()
    await receiver.start()
    store = await Store.connect(settings)
    webhook = await create_webhook(store, receiver.url("/gated"))  # workers load it at start
    recorder = Role("recorder", settings).start()  # writes the records the workers log
    try:
        yield Rig(settings, receiver, store, webhook.id)
    finally:
        await recorder.astop()
        receiver.gates["/gated"].set()
        await receiver.stop()
        await store.close()


async def test_sigkill_with_a_thousand_in_flight_loses_nothing(rig: Rig) -> None:
    events = [event() for _ in range(1200)]
    produce_events(rig.settings, events)
    first = rig.worker()
    try:
        await eventually(
            lambda: len(rig.receiver.requests) >= 1000,
            timeout=120,
            what="1000 requests held open at the receiver",
        )
        first.signal(signal.SIGKILL)
        await first.exited(10)
        in_flight = len(rig.receiver.requests)  # every request the dead worker had sent
    finally:
        await first.astop()
    rig.receiver.gates["/gated"].set()  # receivers answer from now on

    second = rig.worker()
    try:
        await eventually(
            lambda: rig.answered() >= {e["id"] for e in events},
            timeout=180,
            what="every event answered after the restart",
        )
        await eventually(
            lambda: rig.all_recorded_success(events), timeout=60, what="every delivery recorded"
        )
    finally:
        await second.astop()
    arrivals = rig.arrivals()
    duplicates = sum(n - 1 for n in arrivals.values())
    assert set(arrivals) == {e["id"] for e in events}
    # Only work in flight at the kill may be sent twice.
    assert duplicates <= in_flight


@pytest.mark.parametrize("rig", [300], indirect=True)  # 300 in flight, the rest buffered
async def test_sigterm_drains_in_flight_work_and_commits_it(rig: Rig) -> None:
    events = [event() for _ in range(700)]
    produce_events(rig.settings, events)
    first = rig.worker()
    await eventually(
        lambda: len(rig.receiver.requests) >= 300, timeout=120, what="300 requests in flight"
    )
    first.signal(signal.SIGTERM)
    rig.receiver.gates["/gated"].set()  # let the drain finish the in-flight attempts
    assert await first.exited(60) == 0, first.log()[-3000:]
    drained = rig.answered()
    assert len(drained) >= 300
    await eventually(
        lambda: rig.all_recorded_success([e for e in events if e["id"] in drained]),
        timeout=30,
        what="the drained deliveries recorded",
    )

    # A successor starts from the committed offsets: it delivers everything the first worker
    # had not started (fetched-but-unstarted messages must not have been committed), and
    # sends nothing twice.
    second = rig.worker()
    try:
        await eventually(
            lambda: rig.answered() >= {e["id"] for e in events},
            timeout=120,
            what="the successor to deliver the rest",
        )
    finally:
        await second.astop()
    arrivals = rig.arrivals()
    assert max(arrivals.values()) == 1, [k for k, n in arrivals.items() if n > 1][:5]


async def test_two_workers_share_partitions_and_a_rebalance_loses_nothing(rig: Rig) -> None:
    rig.receiver.gates["/gated"].set()
    batches = [[event() for _ in range(200)] for _ in range(3)]
    a = rig.worker()
    b: Role | None = None
    try:
        produce_events(rig.settings, batches[0])
        await eventually(lambda: len(rig.answered()) >= 50, timeout=90, what="worker A delivering")
        b = rig.worker()  # joins the group: partitions are split
        produce_events(rig.settings, batches[1])
        await eventually(
            lambda: len(rig.answered()) >= 300, timeout=90, what="deliveries during the join"
        )
        assert await a.astop() == 0  # leaves the group: B takes every partition
        produce_events(rig.settings, batches[2])
        everything = [e for batch in batches for e in batch]
        await eventually(
            lambda: rig.answered() >= {e["id"] for e in everything},
            timeout=120,
            what="all 600 events delivered across the rebalances",
        )
        await eventually(lambda: rig.all_recorded_success(everything), timeout=60, what="records")
    finally:
        await a.astop()
        if b is not None:
            await b.astop()
