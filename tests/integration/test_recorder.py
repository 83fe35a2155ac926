"""The record log end to end: ``RecordLog`` produces to the real records topic, a real
``hookstream recorder`` process writes Cassandra, and the repository's reads (what the API
serves) show the result."""

from __future__ import annotations

import asyncio
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from app.deliveries import DeliveryStatus, delivery_id
from app.kafka import AsyncProducer
from app.records import RecordLog
from app.settings import Settings
from app.store import Store
from app.store.records import AttemptRecord, DeliveryRecord, EventRecord
from app.store.schema import drop
from app.topics import Topics
from app.webhooks import Webhook
from tests.support import (
    Role,
    eventually,
    free_port,
    logged,
    pipeline_settings,
    prepare,
    read_topic,
)

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def settings(stack_settings: Settings) -> Iterator[Settings]:
    import uuid

    base = pipeline_settings(stack_settings, "rec" + uuid.uuid4().hex[:8])
    configured = base.model_copy(
        update={"recorder": base.recorder.model_copy(update={"metrics_port": free_port()})}
    )
    prepare(configured)
    yield configured
    drop(configured)


@pytest.fixture(scope="module")
def recorder(settings: Settings) -> Iterator[Role]:
    role = Role("recorder", settings).start()
    yield role
    assert role.stop() == 0, role.log()[-3000:]


@pytest.fixture
async def store(settings: Settings) -> AsyncIterator[Store]:
    opened = await Store.connect(settings)
    yield opened
    await opened.close()


@pytest.fixture
async def log(settings: Settings) -> AsyncIterator[RecordLog]:
    producer = AsyncProducer(settings)
    yield RecordLog(producer, Topics.from_settings(settings))
    producer.close()


def ms(moment: datetime) -> datetime:
    return moment.replace(microsecond=moment.microsecond // 1000 * 1000)


Life = list[tuple[DeliveryRecord, AttemptRecord | None]]


def states(webhook: str, event: str, created: datetime) -> Life:
    """A delivery's life as the worker records it: pending, failed once, then success."""
    did = delivery_id(event, webhook)
    pending = DeliveryRecord(
        did, webhook, event, "user.created", DeliveryStatus.PENDING, 0, created, created
    )
    first = AttemptRecord(did, 1, created, 30, "failed", 503, "HTTP 503", "busy")
    failed = DeliveryRecord(
        did, webhook, event, "user.created", DeliveryStatus.FAILED, 1, created,
        created + timedelta(milliseconds=40), 503, "HTTP 503", None, created + timedelta(seconds=1),
    )  # fmt: skip
    second = AttemptRecord(
        did, 2, created + timedelta(seconds=1), 12, "success", 200, None, "ok",
        {"content-type": "application/json"},
    )  # fmt: skip
    success = DeliveryRecord(
        did, webhook, event, "user.created", DeliveryStatus.SUCCESS, 2, created,
        created + timedelta(seconds=1, milliseconds=20), 200, None,
        created + timedelta(seconds=1, milliseconds=20), None,
    )  # fmt: skip
    return [(pending, None), (failed, first), (success, second)]


def get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=3) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()
    except OSError:
        return 0, ""


async def test_records_become_visible_through_the_repository(
    settings: Settings, recorder: Role, log: RecordLog, store: Store
) -> None:
    created = ms(datetime.now(UTC) - timedelta(seconds=5))
    lives = {w: states(f"hook_rec_{w}", "evt_rec_1", created) for w in range(3)}
    for w in lives:  # an event's deliveries are read through its account's webhooks
        await store.webhooks.create(
            Webhook(f"hook_rec_{w}", "https://example.com/h", ("user.*",), "whsec_x" * 4,
                    True, created, created)
        )  # fmt: skip
    event = EventRecord("evt_rec_1", "user.created", "2026-01-15T12:30:00Z", b'{"a":1}', created)
    await log.save_event(event)
    for step in range(3):  # each delivery's states in order, the deliveries interleaved
        await asyncio.gather(*(log.record(*life[step]) for life in lives.values()))

    final = {w: life[-1][0] for w, life in lives.items()}

    async def all_final() -> bool:
        got = [await store.deliveries.get(d.id) for d in final.values()]
        return got == list(final.values())

    final_seen: bool = await eventually(all_final, timeout=30, what="the final states in Cassandra")
    assert final_seen
    for w, life in lives.items():
        did = final[w].id
        assert await store.deliveries.attempts(did) == [life[1][1], life[2][1]]
        page = await store.deliveries.list_by_webhook(f"hook_rec_{w}", limit=10)
        assert page.deliveries == [final[w]]
        failed = await store.deliveries.list_by_webhook(
            f"hook_rec_{w}", status=DeliveryStatus.FAILED, limit=10
        )
        assert failed.deliveries == []
    assert sorted(d.id for d in await store.deliveries.list_by_event("evt_rec_1")) == sorted(
        d.id for d in final.values()
    )
    assert await store.deliveries.get_event("evt_rec_1") == event

    # An older state replayed after the newer one changes nothing.
    await log.record(*lives[0][0])
    marker = states("hook_rec_marker", "evt_rec_2", created)[0]
    await log.record(*marker)  # same partition or not, awaited after the replay

    async def marker_there() -> bool:
        return await store.deliveries.get(marker[0].id) is not None

    marker_seen: bool = await eventually(marker_there, timeout=30, what="the marker delivery")
    assert marker_seen
    assert await store.deliveries.get(final[0].id) == final[0]

    port = settings.recorder.metrics_port
    assert get(f"http://127.0.0.1:{port}/healthz")[0] == 200
    assert get(f"http://127.0.0.1:{port}/readyz") == (200, "ready\n")
    status, metrics = get(f"http://127.0.0.1:{port}/metrics")
    assert status == 200
    written = [
        line for line in metrics.splitlines()
        if line.startswith('hookstream_records_total{result="written"}')
    ]  # fmt: skip
    assert written and float(written[0].split()[-1]) >= 10
    assert "hookstream_recorder_ready 1.0" in metrics
    assert "hookstream_record_lag_seconds_count" in metrics


async def test_a_steady_flow_is_written_in_batches(
    settings: Settings, recorder: Role, log: RecordLog, store: Store
) -> None:
    """3,000 deliveries (success on the first attempt) at full speed: all visible, each with
    its attempt; prints the rate and the record lag it took."""
    created = ms(datetime.now(UTC))
    records = []
    for n in range(3000):
        did = delivery_id(f"evt_flow_{n}", f"hook_flow_{n % 20}")
        records.append(
            (
                DeliveryRecord(
                    did, f"hook_flow_{n % 20}", f"evt_flow_{n}", "user.created",
                    DeliveryStatus.SUCCESS, 1, created, created, 200, None, created, None,
                ),
                AttemptRecord(did, 1, created, 3, "success", 200, None, "ok"),
            )
        )  # fmt: skip
    started = time.monotonic()
    await asyncio.gather(*(log.record(d, a, first=True) for d, a in records))
    produced = time.monotonic() - started

    async def total() -> int:
        return sum([await logged(store, f"hook_flow_{w}") for w in range(20)])

    async def all_logged() -> bool:
        return await total() == 3000

    # Every one of them in the webhooks' logs. (The last record produced being visible says
    # nothing of the others: the recorder reads the partitions in any order and writes a
    # batch's requests concurrently. A wait on a sample once ended with 41 not yet logged.)
    await eventually(all_logged, timeout=60, interval=0.2, what="3,000 deliveries logged")
    visible = time.monotonic() - started
    for d, attempt in records[::150]:
        assert await store.deliveries.get(d.id) == d
        assert await store.deliveries.attempts(d.id) == [attempt]
    assert await total() == 3000
    print(f"\n3000 records produced in {produced:.2f}s, all visible after {visible:.2f}s")


async def test_an_undecodable_record_goes_to_the_dead_topic_and_the_rest_is_written(
    settings: Settings, recorder: Role, log: RecordLog, store: Store
) -> None:
    topics = Topics.from_settings(settings)
    garbage = b"not a record " + uuid.uuid4().hex.encode()
    producer = AsyncProducer(settings)
    try:
        await producer.send(topics.records, garbage, key=b"del_garbage")
    finally:
        producer.close()
    created = ms(datetime.now(UTC))
    after = states("hook_rec_after_garbage", "evt_rec_after", created)[0]
    await log.record(*after)

    async def written() -> bool:
        return await store.deliveries.get(after[0].id) == after[0]

    assert await eventually(written, timeout=30, what="the record after the garbage")

    def dead_copy() -> list[Any]:
        return [m for m in read_topic(settings, topics.dead) if m.value() == garbage]

    [copy] = await eventually(dead_copy, timeout=30, what="the garbage on the dead topic")
    headers = dict(copy.headers())
    assert headers["hs-reason"] == b"json"
    assert headers["hs-source-topic"] == topics.records.encode()
    assert int(headers["hs-source-offset"]) >= 0
