"""Workers that survive: rebalances, outages and kills, with real worker processes against the
fault group's own Kafka and Cassandra (issue "Workers that survive").

Each test drives the real roles (worker, recorder) as subprocesses, causes the fault by hand
(SIGKILL a worker, kill Kafka, SIGSTOP Cassandra) and checks the invariants: every event
delivered at least once, no worker crashed or exited, duplicates bounded by what was in flight,
takeover within the target.
"""

from __future__ import annotations

import asyncio
import re
import signal
import time
import urllib.request
import uuid
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import pytest

from app.deliveries import DeliveryStatus, delivery_id
from app.settings import Settings
from app.store import Store
from app.store.errors import StoreUnavailable
from app.topics import Topics
from app.worker.attempts import deliver_group
from tests.faults import groups
from tests.faults.conftest import FaultStack
from tests.support import (
    Receiver,
    Role,
    create_webhook,
    event,
    eventually,
    free_port,
    pipeline_settings,
    prepare,
    produce_events,
)

pytestmark = [pytest.mark.faults, pytest.mark.integration, pytest.mark.e2e]

TAKEOVER_TARGET_S = 15.0  # the target: deliveries resume within 15 s of a SIGKILL


@dataclass
class Rig:
    settings: Settings
    receiver: Receiver
    store: Store
    webhook_id: str
    roles: list[Role] = field(default_factory=list)
    produced_at: dict[str, float] = field(default_factory=dict)

    def start(self, role: str, settings: Settings | None = None) -> Role:
        started = Role(role, settings or self.settings).start()
        self.roles.append(started)
        return started

    def worker(self, instance_id: str | None = None, metrics_port: int = 0) -> Role:
        worker = {**self.settings.worker.model_dump(), "metrics_port": metrics_port}
        if instance_id is not None:
            worker["instance_id"] = instance_id
        settings = self.settings.model_copy(update={"worker": type(self.settings.worker)(**worker)})
        return self.start("worker", settings)

    def produce(self, count: int) -> list[dict[str, Any]]:
        events = [event() for _ in range(count)]
        now = time.time()
        produce_events(self.settings, events)
        self.produced_at.update({e["id"]: now for e in events})
        return events

    def arrivals(self) -> Counter[str]:
        return Counter(r.headers["webhook-id"] for r in self.receiver.requests)

    def first_arrival(self) -> dict[str, float]:
        first: dict[str, float] = {}
        for r in self.receiver.requests:
            first.setdefault(r.headers["webhook-id"], r.at)
        return first

    def delivered(self, events: list[dict[str, Any]]) -> bool:
        return {e["id"] for e in events} <= set(self.arrivals())

    async def all_recorded_success(self, events: list[dict[str, Any]]) -> bool:
        try:
            records = await asyncio.gather(
                *(self.store.deliveries.get(delivery_id(e["id"], self.webhook_id)) for e in events)
            )
        except StoreUnavailable:  # the test's own session still reconnecting after a fault
            return False
        return all(r is not None and r.status is DeliveryStatus.SUCCESS for r in records)


def crashed(role: Role) -> bool:
    return not role.alive() or "Crashed" in role.log() or "stopping without ack" in role.log()


@pytest.fixture
async def rig(fault_stack: FaultStack) -> AsyncIterator[Rig]:
    settings = pipeline_settings(fault_stack.settings, uuid.uuid4().hex[:10])
    prepare(settings)
    receiver = Receiver()
    await receiver.start()
    store = await Store.connect(settings)
    webhook = await create_webhook(store, receiver.url("/fault"))
    rig = Rig(settings, receiver, store, webhook.id)
    try:
        yield rig
    finally:
        fault_stack.resume("cassandra")  # whatever a failed test left frozen
        fault_stack.start()
        await asyncio.gather(*(role.astop() for role in rig.roles))
        await receiver.stop()
        await store.close()


async def produce_steadily(rig: Rig, rate: float, seconds: float) -> list[dict[str, Any]]:
    """An open-loop producer: ``rate`` events/s for ``seconds``, in small bursts."""
    events: list[dict[str, Any]] = []
    burst = max(1, int(rate / 10))
    began = time.monotonic()
    while time.monotonic() - began < seconds:
        events += await asyncio.to_thread(rig.produce, burst)
        target = began + len(events) / rate
        await asyncio.sleep(max(0.0, target - time.monotonic()))
    return events


async def diagnosis(rig: Rig, events: list[dict[str, Any]], survivors: list[Role]) -> str:
    """Where the work stopped, for a failure message (CI keeps nothing else): how many events
    are missing, each worker group's members, partitions and committed offsets as Kafka sees
    them, and each surviving worker's state and last notable log lines."""
    arrived = set(rig.arrivals())
    missing = [e["id"] for e in events if e["id"] not in arrived]
    topics = Topics.from_settings(rig.settings)
    watched = {
        rig.settings.kafka.consumer_group: topics.events,
        deliver_group(rig.settings): topics.deliveries,
    }
    lines = [
        f"{len(missing)} of {len(events)} events not delivered (first: {missing[:3]})",
        await asyncio.to_thread(groups.report, rig.settings, watched),
    ]
    notable = ("deliver:", "worker ready", '"warning"', '"error"', '"critical"', "Traceback")
    for worker in survivors:
        state = "alive" if worker.alive() else f"exited {worker.proc and worker.proc.returncode}"
        tail = [line for line in worker.log().splitlines() if any(n in line for n in notable)]
        lines.append(f"worker {worker.log_path.name}: {state}; notable log lines:")
        lines += [f"  {line[:400]}" for line in tail[-25:]]
        if worker.alive():
            lines += await stacks(worker)
    return "\n".join(lines)


async def stacks(worker: Role) -> list[str]:
    """Where a live worker's threads and tasks wait: SIGUSR1 makes Faust's worker (mode) print
    every thread's stack and every task's to its log. Only the frame lines are kept (the dump
    also prints local variables, which may hold a webhook's secret)."""
    before = len(worker.log())
    worker.signal(signal.SIGUSR1)
    sizes = [before]

    def written() -> bool:  # begun, and no longer growing
        size = len(worker.log())
        sizes.append(size)
        return "TASKS" in worker.log()[before:] and sizes[-2] == size

    try:
        await eventually(written, timeout=15, interval=0.3, what="the stack dump")
    except AssertionError:
        return ["  (no stack dump)"]
    frame = re.compile(r'^\s*(THREAD |TASK |File "[^"]*/(app|faust|aiokafka)/)')
    dump = [line for line in worker.log()[before:].splitlines() if frame.match(line)]
    return ["  stacks:"] + [f"    {line.strip()[:200]}" for line in dump[:150]]


async def assert_resumed_in_time(
    rig: Rig, killed_at: float, seconds: float, what: str, survivors: list[Role]
) -> None:
    """Produce for ``seconds`` after a kill; every event must arrive within the target of
    the later of its production and the kill. A stall fails with ``diagnosis``."""
    after = await produce_steadily(rig, rate=20, seconds=seconds)
    try:
        await eventually(
            lambda: rig.delivered(after), timeout=60, what="every event after the kill"
        )
    except AssertionError as exc:
        raise AssertionError(f"{exc}\n{await diagnosis(rig, after, survivors)}") from None
    first = rig.first_arrival()
    waits = [first[e["id"]] - max(killed_at, rig.produced_at[e["id"]]) for e in after]
    print(f"{what}: worst wait after the kill {max(waits):.1f}s over {len(after)} events")
    assert max(waits) <= TAKEOVER_TARGET_S, sorted(waits)[-5:]


def scrape(port: int, name: str) -> float | None:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
        for line in response.read().decode().splitlines():
            if line.startswith(name + " ") or line.startswith(name + "{"):
                return float(line.rsplit(" ", 1)[1])
    return None


async def test_rebalance_storm_crashes_nothing_and_loses_nothing(rig: Rig) -> None:
    """Three workers; one SIGKILLed and started again, twice, under load. Nobody crashes
    (the lag timer once did, on a partition with no high watermark yet), nothing is lost."""
    rig.start("recorder")
    workers = [rig.worker() for _ in range(3)]
    warmup = rig.produce(60)
    await eventually(lambda: rig.delivered(warmup), timeout=90, what="three workers delivering")
    events = list(warmup)
    for round_ in range(2):
        victim = workers[round_]
        victim.signal(signal.SIGKILL)
        await victim.exited(10)
        events += await produce_steadily(rig, rate=40, seconds=4)
        workers[round_] = rig.worker()
        # Long enough for the replacement's join and the dead member's expiry: two rebalances.
        events += await produce_steadily(rig, rate=40, seconds=15)
    await eventually(lambda: rig.delivered(events), timeout=120, what="every event delivered")
    survivors = [w for w in workers if crashed(w)]
    assert not survivors, "\n\n".join(w.log()[-3000:] for w in survivors)


@pytest.mark.parametrize("moment", ["settled", "mid-rebalance"])
async def test_takeover_after_sigkill_is_within_the_target(rig: Rig, moment: str) -> None:
    """Two workers; SIGKILL one under load: its partitions move to the other within the
    session timeout, so every event produced after the kill arrives within the target.

    ``settled``: both groups stable, each worker holding partitions of both (Kafka's own
    account, ``groups.settled``). ``mid-rebalance``: as soon as both attempt consumers have
    had an assignment callback, which for the later one is the empty first round of the
    cooperative rebalance: it dies before it ever held a partition, while the other has just
    given some up for it (what this test did by accident before it had ``settled``; kept,
    since a rolling restart kills workers exactly then)."""
    rig.start("recorder")
    a, b = rig.worker(), rig.worker()
    warmup = rig.produce(60)
    await eventually(lambda: rig.delivered(warmup), timeout=90, what="two workers delivering")
    if moment == "settled":
        await eventually(
            lambda: asyncio.to_thread(groups.settled, rig.settings, 2),
            timeout=60,
            what="both workers holding partitions of both groups",
        )
    else:
        await eventually(
            lambda: "deliver: assigned" in a.log() and "deliver: assigned" in b.log(),
            timeout=60,
            what="both attempt consumers joined",
        )
    a.signal(signal.SIGKILL)
    killed_at = time.time()
    await assert_resumed_in_time(rig, killed_at, TAKEOVER_TARGET_S + 5, "takeover", [b])
    assert not crashed(b), b.log()[-3000:]


async def test_a_restarted_static_member_takes_its_partitions_straight_back(rig: Rig) -> None:
    """With ``worker.instance_id`` (the pod name in Kubernetes), a worker SIGKILLed and
    started again under the same id gets its partitions back without waiting for its old
    session to expire."""
    rig.start("recorder")
    a = rig.worker(instance_id="pod-a")
    b = rig.worker(instance_id="pod-b")
    warmup = rig.produce(60)
    await eventually(lambda: rig.delivered(warmup), timeout=90, what="two workers delivering")
    a.signal(signal.SIGKILL)
    await a.exited(10)
    killed_at = time.time()
    rig.worker(instance_id="pod-a")
    await assert_resumed_in_time(rig, killed_at, TAKEOVER_TARGET_S, "static restart", [b])
    assert not crashed(b), b.log()[-3000:]


async def test_duplicates_after_sigkill_stay_within_what_was_in_flight(rig: Rig) -> None:
    """At 40 events/s, SIGKILL the only worker and start another: the events sent again are
    only those whose attempts were in flight or finished within the last commit interval —
    not seconds of history (80 duplicates, 1.4-3.3 s old, in the first wave)."""
    rate = 40.0
    rig.start("recorder")
    worker = rig.worker()
    warmup = rig.produce(40)
    await eventually(lambda: rig.delivered(warmup), timeout=90, what="the worker delivering")
    events = warmup + await produce_steadily(rig, rate=rate, seconds=5)
    worker.signal(signal.SIGKILL)
    killed_at = time.time()
    await worker.exited(10)
    before = rig.arrivals()
    rig.worker()
    await eventually(lambda: rig.delivered(events), timeout=90, what="every event delivered")
    await eventually(
        lambda: rig.all_recorded_success(events), timeout=60, what="every delivery recorded"
    )
    arrivals = rig.arrivals()
    again = [k for k, n in arrivals.items() if n > 1]
    ages = sorted(killed_at - rig.first_arrival()[k] for k in again)
    print(f"duplicates after SIGKILL: {len(again)} (sent {ages[-1] if ages else 0:.2f}s before)")
    # Work sent in the last second before the kill (two commit intervals of 0.2 s for each of
    # the two consumers, and the attempts in flight) may repeat; nothing older.
    assert all(age <= 1.0 for age in ages), ages
    assert len(again) <= rate * 1.0
    assert set(before) <= set(arrivals)


async def test_worker_waits_out_a_kafka_outage(rig: Rig, fault_stack: FaultStack) -> None:
    """Kafka killed for ~30 s under load: the worker neither exits nor crashes, reports
    not-ready meanwhile, and delivers everything once Kafka is back — same process."""
    port = free_port()
    rig.start("recorder")
    worker = rig.worker(metrics_port=port)
    events = rig.produce(100)
    await eventually(lambda: len(rig.arrivals()) >= 20, timeout=90, what="deliveries flowing")
    pid = worker.proc.pid if worker.proc else None
    fault_stack.kill("kafka")
    began = time.monotonic()
    await eventually(
        lambda: scrape(port, "hookstream_worker_ready") == 0.0,
        timeout=40,
        what="the worker reporting not-ready during the outage",
    )
    # The outage itself is the point of the test: it lasts about 30 s, whatever happens.
    await asyncio.sleep(max(0.0, 30 - (time.monotonic() - began)))
    assert worker.alive(), worker.log()[-3000:]
    fault_stack.start()
    events += await asyncio.to_thread(rig.produce, 100)
    await eventually(lambda: rig.delivered(events), timeout=120, what="everything delivered")
    await eventually(
        lambda: rig.all_recorded_success(events), timeout=90, what="every delivery recorded"
    )
    await eventually(
        lambda: scrape(port, "hookstream_worker_ready") == 1.0, timeout=30, what="ready again"
    )
    assert worker.alive() and worker.proc is not None and worker.proc.pid == pid
    assert not crashed(worker), worker.log()[-3000:]


async def test_deliveries_go_on_through_a_cassandra_pause(
    rig: Rig, fault_stack: FaultStack
) -> None:
    """Cassandra frozen (SIGSTOP) for 60 s under load: deliveries keep flowing meanwhile —
    Cassandra is off the delivery path — the worker stays up, and once Cassandra is back the
    recorder writes every record: 0 lost deliveries, 0 lost records."""
    recorder = rig.start("recorder")
    worker = rig.worker()
    warmup = rig.produce(40)
    await eventually(lambda: rig.delivered(warmup), timeout=90, what="deliveries flowing")
    fault_stack.pause("cassandra")
    paused_at = time.monotonic()
    during = await produce_steadily(rig, rate=20, seconds=10)
    await eventually(
        lambda: rig.delivered(during), timeout=40, what="deliveries while Cassandra is frozen"
    )
    assert time.monotonic() - paused_at < 60, "the deliveries only came after the pause"
    # The pause itself is the fault: it lasts 60 s, whatever happens.
    await asyncio.sleep(max(0.0, 60 - (time.monotonic() - paused_at)))
    assert worker.alive(), worker.log()[-3000:]
    assert recorder.alive(), (recorder.proc and recorder.proc.poll(), recorder.log()[-3000:])
    fault_stack.resume("cassandra")
    events = warmup + during + await asyncio.to_thread(rig.produce, 40)
    await eventually(lambda: rig.delivered(events), timeout=90, what="everything delivered")
    await eventually(
        lambda: rig.all_recorded_success(events), timeout=120, what="every record written"
    )
    assert not crashed(worker), worker.log()[-3000:]
    assert recorder.alive(), recorder.log()[-3000:]


async def test_partitions_of_a_worker_killed_before_its_first_commit_are_read_from_the_start(
    rig: Rig,
) -> None:
    """A worker SIGKILLed right after it was given partitions of the events topic, before
    anyone committed on them: the survivor takes them over with ten seconds of events and no
    committed offset, and must match every one of them.

    It lost them when Faust fetched them while its flow was still stopped (between the
    assignment and the end of recovery): Faust drops such records and seeks back to the
    committed offsets, which aiokafka does not do for a partition without one, so the
    survivor went on after the dropped events and its next commit passed them (106 of 300
    events in a failed run of the static-membership test; ``app.worker.stream``). Whether the
    fetch lands in that window is timing: the test catches it on a loaded machine, not on
    every run."""
    rig.start("recorder")
    b = rig.worker()
    warmup = rig.produce(20)
    await eventually(lambda: rig.delivered(warmup), timeout=90, what="the first worker delivering")
    a = rig.worker()
    match_group = rig.settings.kafka.consumer_group

    async def a_holds_match_partitions() -> bool:
        try:
            [group] = await asyncio.to_thread(groups.describe, rig.settings, [match_group])
        except Exception:
            return False
        return group.settled and len(group.members) == 2

    await eventually(
        a_holds_match_partitions,
        timeout=90,
        interval=0.05,
        what="the second worker holding match partitions",
    )
    a.signal(signal.SIGKILL)
    killed_at = time.time()
    await assert_resumed_in_time(rig, killed_at, TAKEOVER_TARGET_S, "takeover before a commit", [b])
    assert not crashed(b), b.log()[-3000:]
