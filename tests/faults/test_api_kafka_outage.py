"""The API during a Kafka outage (issue 9, item 6): what it answers is what happens.

Real ``hookstream api`` and ``hookstream worker`` processes against the fault group's own
Kafka and Cassandra, and a real receiver. With Kafka killed, a test event, a manual retry and
a recover each answer 503 within the API's enqueue timeout (plus the report margin), and the
attempts they name are never delivered once Kafka is back: the deliveries topic holds none of
them and the receiver never sees them, while attempts accepted after the outage arrive.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import orjson
import pytest

from app.api.publish import REPORT_MARGIN_S
from app.deliveries import DeliveryStatus, delivery_id
from app.settings import Settings
from app.store import Store
from app.store.records import DeliveryRecord, EventRecord
from app.topics import Topics
from tests.faults.conftest import FaultStack
from tests.support import (
    Received,
    Receiver,
    Role,
    api_client,
    api_ready,
    eventually,
    pipeline_settings,
    prepare,
    read_topic,
)

pytestmark = [pytest.mark.faults, pytest.mark.integration, pytest.mark.e2e]

ENQUEUE_TIMEOUT = timedelta(seconds=4)


@dataclass
class Rig:
    settings: Settings
    receiver: Receiver
    store: Store
    api: httpx.AsyncClient
    api_role: Role


@pytest.fixture
async def rig(fault_stack: FaultStack) -> AsyncIterator[Rig]:
    base = pipeline_settings(fault_stack.settings, uuid.uuid4().hex[:10])
    settings = base.model_copy(
        update={"api": base.api.model_copy(update={"enqueue_timeout": ENQUEUE_TIMEOUT})}
    )
    await asyncio.to_thread(prepare, settings)
    receiver = Receiver()
    await receiver.start()
    store = await Store.connect(settings)
    api_role = Role("api", settings).start()
    api = api_client(settings, timeout=60)
    try:
        await eventually(lambda: api_ready(api), timeout=90, what="the API to be ready")
        yield Rig(settings, receiver, store, api, api_role)
    finally:
        await api.aclose()
        await api_role.astop()
        await store.close()
        await receiver.stop()
        await asyncio.to_thread(fault_stack.start)  # whatever happened, leave Kafka running


async def failed_delivery(rig: Rig, webhook_id: str) -> DeliveryRecord:
    """A delivery that failed all five attempts, with its event kept (so it can be retried)."""
    event_id = "evt_" + uuid.uuid4().hex[:16]
    body = orjson.dumps(
        {"id": event_id, "type": "user.created", "created_at": "2026-01-15T12:30:00Z", "data": {}}
    )
    now = datetime.now(UTC).replace(microsecond=0)
    await rig.store.deliveries.save_event(
        EventRecord(event_id, "user.created", "2026-01-15T12:30:00Z", body, now)
    )
    record = DeliveryRecord(
        id=delivery_id(event_id, webhook_id),
        webhook_id=webhook_id,
        event_id=event_id,
        event_type="user.created",
        status=DeliveryStatus.FAILED,
        attempts=5,
        created_at=now - timedelta(minutes=1),
        updated_at=now,
        status_code=500,
        error="HTTP 500",
    )
    await rig.store.deliveries.record(record, None)
    return record


async def timed_post(rig: Rig, path: str, **kwargs: Any) -> tuple[httpx.Response, float]:
    started = time.monotonic()
    response = await rig.api.post(path, **kwargs)
    return response, time.monotonic() - started


def delivery_of(request: Received) -> str:
    return request.headers["X-Webhook-Id"]


def assert_withdrawn(response: httpx.Response, seconds: float) -> None:
    assert response.status_code == 503, response.text
    error = response.json()["error"]
    assert error["type"] == "service_unavailable" and error["field"] is None
    assert "withdrawn" in error["message"] and "nothing was enqueued" not in error["message"]
    # The producer gave the message up before the API answered: bounded by its timeout.
    assert seconds < ENQUEUE_TIMEOUT.total_seconds() + REPORT_MARGIN_S, seconds


async def test_attempts_refused_during_a_kafka_outage_are_never_delivered(
    rig: Rig, fault_stack: FaultStack
) -> None:
    created = await rig.api.post(
        "/v1/webhooks", json={"url": rig.receiver.url("/outage"), "events": ["user.created"]}
    )
    assert created.status_code == 201, created.text
    webhook_id = created.json()["id"]
    failed = await failed_delivery(rig, webhook_id)

    fault_stack.kill("kafka")
    test, seconds = await timed_post(rig, f"/v1/webhooks/{webhook_id}/test")
    assert_withdrawn(test, seconds)
    retry, seconds = await timed_post(rig, f"/v1/deliveries/{failed.id}/retry")
    assert_withdrawn(retry, seconds)
    since = (failed.created_at - timedelta(minutes=1)).isoformat()
    recover, seconds = await timed_post(
        rig, f"/v1/webhooks/{webhook_id}/recover", json={"since": since}
    )
    assert recover.status_code == 503, recover.text
    assert recover.json()["error"]["message"].startswith("0 of 1 failed deliveries")
    assert seconds < ENQUEUE_TIMEOUT.total_seconds() + REPORT_MARGIN_S, seconds

    # The withdrawn test event is logged as cancelled, not pending forever.
    listed = (await rig.api.get(f"/v1/webhooks/{webhook_id}/deliveries")).json()["deliveries"]
    [withdrawn] = [d for d in listed if d["event_type"] == "webhook.test"]
    assert withdrawn["status"] == "cancelled", withdrawn

    await asyncio.to_thread(fault_stack.start)
    worker = Role("worker", rig.settings).start()
    try:
        await eventually(lambda: api_ready(rig.api), timeout=60, what="the API to see Kafka")
        second = await rig.api.post(f"/v1/webhooks/{webhook_id}/test")
        assert second.status_code == 202, second.text
        accepted = second.json()
        await eventually(
            lambda: [r for r in rig.receiver.requests if delivery_of(r) == accepted["delivery_id"]],
            timeout=90,
            what="the second test event",
        )

        # Proof that the refused ones can never arrive later: the deliveries topic, whose
        # high watermark already covers the accepted test, holds nothing else for this webhook
        # (the refused attempts would sit before it in the same partition).
        topic = Topics.from_settings(rig.settings).deliveries
        messages = await asyncio.to_thread(read_topic, rig.settings, topic)
        ours = [m for m in messages if m.key() == webhook_id.encode()]
        assert [dict(m.headers())["hs-delivery-id"] for m in ours] == [
            accepted["delivery_id"].encode()
        ]
        assert [delivery_of(r) for r in rig.receiver.requests] == [accepted["delivery_id"]]

        # The success path of the other two after the outage: a retry is accepted and sent.
        retry = await rig.api.post(f"/v1/deliveries/{failed.id}/retry")
        assert retry.status_code == 202, retry.text
        resent = await eventually(
            lambda: [r for r in rig.receiver.requests if delivery_of(r) == failed.id],
            timeout=60,
            what="the retry after the outage",
        )
        assert [r.headers["X-Webhook-Attempt"] for r in resent] == ["6"]
    finally:
        await worker.astop()
