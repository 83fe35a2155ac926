"""The delivery engine's guarantees against real Kafka, Cassandra, receivers and processes:
retries on schedule (never early), exhaustion to the dead topic, poison events, isolation of a
hung receiver, and webhook changes taking effect within a second."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from app.settings import Settings
from app.topics import Topics
from tests.support import (
    Receiver,
    event,
    eventually,
    pipeline_settings,
    produce_events,
    read_topic,
    running,
)

pytestmark = [pytest.mark.e2e, pytest.mark.integration]


class Pipeline:
    def __init__(self, settings: Settings, receiver: Receiver, api: httpx.AsyncClient):
        self.settings = settings
        self.receiver = receiver
        self.api = api

    async def webhook(self, path: str, events: list[str] | None = None) -> dict[str, Any]:
        response = await self.api.post(
            "/v1/webhooks",
            json={"url": self.receiver.url(path), "events": events or ["user.created"]},
        )
        assert response.status_code == 201, response.text
        result: dict[str, Any] = response.json()
        return result

    async def deliveries(self, webhook_id: str) -> list[dict[str, Any]]:
        response = await self.api.get(
            f"/v1/webhooks/{webhook_id}/deliveries", params={"limit": 100}
        )
        assert response.status_code == 200, response.text
        items: list[dict[str, Any]] = response.json()["deliveries"]
        return items


@pytest.fixture(scope="module")
async def pipeline(stack_settings: Settings) -> AsyncIterator[Pipeline]:
    settings = pipeline_settings(
        stack_settings, uuid.uuid4().hex[:10], delivery={"attempt_timeout": 3.0}
    )
    async with running(settings) as run:
        yield Pipeline(settings, run.receiver, run.api)


async def test_a_receiver_failing_twice_gets_three_attempts_on_schedule(pipeline: Pipeline) -> None:
    pipeline.receiver.script["/flaky"] = [500, 503, 200]
    webhook = await pipeline.webhook("/flaky")
    sent = event()
    produce_events(pipeline.settings, [sent])

    got = await eventually(
        lambda: len(pipeline.receiver.at("/flaky")) >= 3 and pipeline.receiver.at("/flaky"),
        timeout=60,
        what="three attempts",
    )
    assert [r.headers["X-Webhook-Attempt"] for r in got] == ["1", "2", "3"]
    assert {r.headers["webhook-id"] for r in got} == {sent["id"]}  # same id on every attempt
    assert len({r.headers["X-Webhook-Id"] for r in got}) == 1
    assert len({r.body for r in got}) == 1  # the same bytes every time
    # Never early: attempt 2 at least 1 s after attempt 1, attempt 3 at least 2 s after 2.
    gap2, gap3 = got[1].at - got[0].at, got[2].at - got[1].at
    assert gap2 >= 1.0, gap2
    assert gap3 >= 2.0, gap3

    async def success() -> list[dict[str, Any]]:
        items = await pipeline.deliveries(webhook["id"])
        return [d for d in items if d["status"] == "success"]

    [delivery] = await eventually(success, timeout=20, what="success in the log")
    assert delivery["attempts"] == 3
    assert delivery["status_code"] == 200
    detail = await pipeline.api.get(f"/v1/deliveries/{delivery['id']}")
    assert detail.status_code == 200
    attempts = detail.json()["attempt_log"]
    assert [a["status_code"] for a in attempts] == [500, 503, 200]


async def test_an_always_failing_receiver_ends_failed_with_a_dead_letter(
    pipeline: Pipeline,
) -> None:
    pipeline.receiver.script["/down"] = [500]
    webhook = await pipeline.webhook("/down")
    produce_events(pipeline.settings, [event()])

    async def failed() -> list[dict[str, Any]]:
        items = await pipeline.deliveries(webhook["id"])
        return [d for d in items if d["status"] == "failed"]

    [delivery] = await eventually(failed, timeout=60, what="the delivery to fail")
    assert delivery["attempts"] == 5
    assert delivery["status_code"] == 500
    assert len(pipeline.receiver.at("/down")) == 5

    dead = read_topic(pipeline.settings, Topics.from_settings(pipeline.settings).dead)
    copies = [
        m for m in dead if dict(m.headers() or []).get("hs-delivery-id") == delivery["id"].encode()
    ]
    assert len(copies) == 1
    assert dict(copies[0].headers())["hs-reason"] == b"exhausted"


async def test_poison_events_are_dead_lettered_while_good_ones_flow(pipeline: Pipeline) -> None:
    from confluent_kafka import Producer

    webhook = await pipeline.webhook("/poison-neighbour")
    producer = Producer({"bootstrap.servers": pipeline.settings.kafka.bootstrap_servers})
    poison = [b"not json", b"\xff\xfe", b'{"id": "evt.bad", "type": "user.created", "data": {}}']
    for value in poison:
        producer.produce(pipeline.settings.kafka.events_topic, value, key=b"same-partition")
    assert producer.flush(10) == 0
    good = event()
    produce_events(pipeline.settings, [good], key=b"same-partition")

    await eventually(
        lambda: pipeline.receiver.at("/poison-neighbour"), timeout=30, what="the good event"
    )
    assert pipeline.receiver.at("/poison-neighbour")[0].headers["webhook-id"] == good["id"]
    dead = read_topic(pipeline.settings, Topics.from_settings(pipeline.settings).dead)
    reasons = {
        m.value(): dict(m.headers())["hs-reason"]
        for m in dead
        if dict(m.headers() or []).get("hs-source-topic")
        == pipeline.settings.kafka.events_topic.encode()
    }
    assert reasons[b"not json"] == b"not_json"
    assert reasons[b"\xff\xfe"] == b"not_json"
    assert reasons[poison[2]] == b"bad_id"
    assert webhook["id"]


async def test_a_hung_receiver_does_not_hold_up_a_healthy_one(pipeline: Pipeline) -> None:
    pipeline.receiver.hang.add("/hung")
    await pipeline.webhook("/hung", ["project.created"])
    await pipeline.webhook("/healthy", ["project.updated"])
    produce_events(pipeline.settings, [event("project.created") for _ in range(40)])
    await eventually(
        lambda: len(pipeline.receiver.at("/hung")) >= 10, timeout=30, what="hung requests"
    )
    healthy = [event("project.updated") for _ in range(40)]
    produce_events(pipeline.settings, healthy)
    await eventually(
        lambda: len(pipeline.receiver.at("/healthy")) >= 40, timeout=30, what="healthy deliveries"
    )
    # All healthy deliveries arrived while the hung receiver's first attempts were still open:
    # no hung attempt has reached its deadline and been retried yet.
    hung_attempts = {r.headers["X-Webhook-Attempt"] for r in pipeline.receiver.at("/hung")}
    assert hung_attempts == {"1"}


async def test_pausing_and_deleting_a_webhook_take_effect(pipeline: Pipeline) -> None:
    paused = await pipeline.webhook("/paused", ["payment.failed"])
    marker = await pipeline.webhook("/marker", ["payment.failed"])
    response = await pipeline.api.patch(f"/v1/webhooks/{paused['id']}", json={"active": False})
    assert response.status_code == 200, response.text
    deleted = await pipeline.webhook("/deleted", ["payment.succeeded"])
    response = await pipeline.api.delete(f"/v1/webhooks/{deleted['id']}")
    assert response.status_code == 204

    # The contract: a change affects deliveries within 1 s. Waiting that second is the
    # claim under test, not a stand-in for synchronization.
    await asyncio.sleep(1.0)
    produce_events(
        pipeline.settings,
        [event("payment.succeeded"), event("payment.failed")],
        key=b"one-partition",
    )
    await eventually(lambda: pipeline.receiver.at("/marker"), timeout=30, what="the marker")
    assert pipeline.receiver.at("/paused") == []
    assert pipeline.receiver.at("/deleted") == []
    assert marker["id"]


async def test_test_endpoint_and_manual_retry_go_through_the_pipeline(pipeline: Pipeline) -> None:
    webhook = await pipeline.webhook("/manual", ["user.updated"])
    response = await pipeline.api.post(f"/v1/webhooks/{webhook['id']}/test")
    assert response.status_code == 202, response.text
    accepted = response.json()

    [first] = await eventually(
        lambda: pipeline.receiver.at("/manual"), timeout=30, what="the test event"
    )
    assert first.headers["X-Webhook-Event"] == "webhook.test"
    assert first.headers["webhook-id"] == accepted["event_id"]
    assert first.headers["X-Webhook-Id"] == accepted["delivery_id"]

    async def logged(attempts: int) -> dict[str, Any] | None:
        detail = await pipeline.api.get(f"/v1/deliveries/{accepted['delivery_id']}")
        body: dict[str, Any] = detail.json()
        return body if body.get("attempts") == attempts and body["status"] == "success" else None

    await eventually(lambda: logged(1), timeout=20, what="the test delivery logged")
    response = await pipeline.api.post(f"/v1/deliveries/{accepted['delivery_id']}/retry")
    assert response.status_code == 202, response.text
    await eventually(
        lambda: len(pipeline.receiver.at("/manual")) == 2, timeout=30, what="the redelivery"
    )
    second = pipeline.receiver.at("/manual")[1]
    assert second.body == first.body  # the same event bytes
    assert second.headers["X-Webhook-Attempt"] == "2"
    detail = await eventually(lambda: logged(2), timeout=20, what="the second attempt logged")
    assert [a["number"] for a in detail["attempt_log"]] == [1, 2]
    # One delivery, one row of the webhook's log, however many manual attempts it had.
    rows = [d for d in await pipeline.deliveries(webhook["id"]) if d["id"] == detail["id"]]
    assert len(rows) == 1 and rows[0]["attempts"] == 2
    assert rows[0]["created_at"] == detail["created_at"]


async def test_a_matched_event_is_stored_by_its_first_record_for_a_manual_retry(
    pipeline: Pipeline,
) -> None:
    await pipeline.webhook("/carried", ["payment.failed"])
    sent = event("payment.failed", amount=12)
    produce_events(pipeline.settings, [sent])
    [first] = await eventually(
        lambda: pipeline.receiver.at("/carried"), timeout=30, what="the first attempt"
    )
    delivery_id = first.headers["X-Webhook-Id"]

    async def logged() -> bool:
        detail = await pipeline.api.get(f"/v1/deliveries/{delivery_id}")
        return detail.status_code == 200 and detail.json()["status"] == "success"

    await eventually(logged, timeout=20, what="the delivery logged")
    # The records topic holds no message of the event's own: its first record carried it.
    records = read_topic(pipeline.settings, Topics.from_settings(pipeline.settings).records)
    keyed = [m for m in records if sent["id"].encode() in (m.key() or b"")]
    assert keyed == [], [m.key() for m in keyed]
    carrying = [m for m in records if m.key() == delivery_id.encode()]
    assert len(carrying) == 1 and carrying[0].value().endswith(b"\n" + first.body)
    # The event was stored from it: a manual retry sends the very same bytes again.
    response = await pipeline.api.post(f"/v1/deliveries/{delivery_id}/retry")
    assert response.status_code == 202, response.text
    await eventually(
        lambda: len(pipeline.receiver.at("/carried")) == 2, timeout=30, what="the redelivery"
    )
    assert pipeline.receiver.at("/carried")[1].body == first.body


async def test_a_key_from_apikey_create_opens_the_api(pipeline: Pipeline) -> None:
    import os
    import subprocess
    import sys

    from tests.support import settings_env

    created = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "app.cli", "apikey", "create", "--name", "e2e"],
        env={**os.environ, **settings_env(pipeline.settings)},
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    key = created.stdout.strip()
    assert key.startswith("hsk_")
    async with httpx.AsyncClient(
        base_url=str(pipeline.api.base_url), trust_env=False, timeout=10
    ) as client:
        ok = await client.get("/v1/webhooks", headers={"Authorization": f"Bearer {key}"})
        wrong = await client.get("/v1/webhooks", headers={"Authorization": f"Bearer {key}x"})
    assert ok.status_code == 200, ok.text
    assert wrong.status_code == 401


async def test_pausing_a_webhook_cancels_its_scheduled_retries(pipeline: Pipeline) -> None:
    pipeline.receiver.script["/pause-me"] = [500]
    webhook = await pipeline.webhook("/pause-me", ["file.uploaded"])
    produce_events(pipeline.settings, [event("file.uploaded")])

    async def pending() -> list[dict[str, Any]]:
        items = await pipeline.deliveries(webhook["id"])
        return [d for d in items if d["status"] == "pending" and d["attempts"] >= 1]

    [first] = await eventually(pending, timeout=30, what="the first attempt to fail")
    response = await pipeline.api.patch(f"/v1/webhooks/{webhook['id']}", json={"active": False})
    assert response.status_code == 200, response.text

    async def cancelled() -> list[dict[str, Any]]:
        items = await pipeline.deliveries(webhook["id"])
        return [d for d in items if d["status"] == "cancelled"]

    [delivery] = await eventually(cancelled, timeout=30, what="the retry to end as cancelled")
    assert delivery["id"] == first["id"]
    assert len(pipeline.receiver.at("/pause-me")) < 5  # the schedule did not run out
