"""Payload filters and replay through the real pipeline: events produced to Kafka, real
roles, real receivers. "Did not get X" is proven by ordering: everything is produced to one
partition, so once a later marker arrived every earlier event was matched, and the
deliveries topic shows no attempt was ever made for X."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import orjson
import pytest

from app.settings import Settings
from app.topics import Topics
from tests.support import (
    Receiver,
    Role,
    api_client,
    api_ready,
    event,
    eventually,
    pipeline_settings,
    prepare,
    produce_events,
    read_topic,
)

pytestmark = [pytest.mark.e2e, pytest.mark.integration]

ONE_PARTITION = b"same-key"  # every event of a test on one partition: matched in order


class Pipeline:
    def __init__(self, settings: Settings, receiver: Receiver, api: httpx.AsyncClient):
        self.settings = settings
        self.receiver = receiver
        self.api = api

    async def webhook(self, path: str, **fields: Any) -> dict[str, Any]:
        body = {"url": self.receiver.url(path), "events": ["user.created"], **fields}
        response = await self.api.post("/v1/webhooks", json=body)
        assert response.status_code == 201, response.text
        result: dict[str, Any] = response.json()
        return result

    def event_ids(self, path: str) -> list[str]:
        return [orjson.loads(r.body)["id"] for r in self.receiver.at(path)]

    def attempted(self, event_ids: set[str], webhook_ids: set[str]) -> set[tuple[str, str]]:
        """(event id, webhook id) of the attempt messages on the deliveries topic for these
        events and webhooks."""
        out = set()
        for message in read_topic(self.settings, Topics.from_settings(self.settings).deliveries):
            headers = dict(message.headers() or [])
            pair = (headers["hs-event-id"].decode(), headers["hs-webhook-id"].decode())
            if pair[0] in event_ids and pair[1] in webhook_ids:
                out.add(pair)
        return out


@pytest.fixture(scope="module")
async def pipeline(stack_settings: Settings) -> AsyncIterator[Pipeline]:
    settings = pipeline_settings(stack_settings, uuid.uuid4().hex[:10])
    prepare(settings)
    receiver = Receiver()
    await receiver.start()
    roles = [Role(name, settings).start() for name in ("api", "worker", "scheduler", "recorder")]
    api = api_client(settings)
    try:
        await eventually(lambda: api_ready(api), timeout=90, what="the API to be ready")
        yield Pipeline(settings, receiver, api)
    finally:
        await api.aclose()
        for role in roles:
            await role.astop()
        await receiver.stop()


async def test_a_bad_filter_is_refused_naming_the_bad_part(pipeline: Pipeline) -> None:
    response = await pipeline.api.post(
        "/v1/webhooks",
        json={
            "url": pipeline.receiver.url("/refused"),
            "events": ["user.created"],
            "filter": {"data.amount": {"$gt": "ten"}},
        },
    )
    assert response.status_code == 422, response.text
    error = response.json()["error"]
    assert error["field"] == "filter.data.amount.$gt"
    assert "number" in error["message"]


async def test_the_filter_is_shown_changed_and_removed(pipeline: Pipeline) -> None:
    created = await pipeline.webhook("/shown", filter={"data.plan": "pro"})
    assert created["filter"] == {"data.plan": "pro"}
    got = await pipeline.api.get(f"/v1/webhooks/{created['id']}")
    assert got.json()["filter"] == {"data.plan": "pro"}
    changed = await pipeline.api.patch(
        f"/v1/webhooks/{created['id']}", json={"filter": {"data.seats": {"$gte": 3}}}
    )
    assert changed.status_code == 200 and changed.json()["filter"] == {"data.seats": {"$gte": 3}}
    removed = await pipeline.api.patch(f"/v1/webhooks/{created['id']}", json={"filter": None})
    assert removed.status_code == 200 and "filter" not in removed.json()
    plain = await pipeline.webhook("/plain")
    assert "filter" not in plain  # the seed's shape, unchanged without a filter


async def test_each_receiver_gets_exactly_the_events_its_filter_passes(
    pipeline: Pipeline,
) -> None:
    pro = await pipeline.webhook("/pro", filter={"data.plan": "pro"})
    big = await pipeline.webhook(
        "/big", filter={"$or": [{"data.seats": {"$gt": 10}}, {"data.vip": True}]}
    )
    pro_only = event(plan="pro", seats=5)
    big_only = event(plan="free", seats=20)
    both = event(plan="pro", seats=50)
    neither = event(plan="free", seats=1, vip=1)  # 1 is not true
    odd = event(plan=["pro"], seats="many")  # wrong types: no match, no crash
    marker = event(plan="pro", seats=99)
    produce_events(
        pipeline.settings, [pro_only, big_only, both, neither, odd, marker], key=ONE_PARTITION
    )

    for path in ("/pro", "/big"):
        await eventually(
            lambda path=path: marker["id"] in pipeline.event_ids(path),
            timeout=60,
            what=f"the marker at {path}",
        )
    assert sorted(pipeline.event_ids("/pro")) == sorted([pro_only["id"], both["id"], marker["id"]])
    assert sorted(pipeline.event_ids("/big")) == sorted([big_only["id"], both["id"], marker["id"]])
    # The match step made no attempt at all for the events the filters rejected.
    ids = {e["id"] for e in (pro_only, big_only, both, neither, odd, marker)}
    assert pipeline.attempted(ids, {pro["id"], big["id"]}) == {
        (pro_only["id"], pro["id"]),
        (both["id"], pro["id"]),
        (marker["id"], pro["id"]),
        (big_only["id"], big["id"]),
        (both["id"], big["id"]),
        (marker["id"], big["id"]),
    }
