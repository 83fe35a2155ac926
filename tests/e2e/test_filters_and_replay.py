"""Payload filters and replay through the real pipeline: events produced to Kafka, real
roles, real receivers. "Did not get X" is proven by ordering: everything is produced to one
partition, so once a later marker arrived every earlier event was matched, and the
deliveries topic shows no attempt was ever made for X."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import orjson
import pytest

from app.accounts import ACCOUNT_HEADER
from app.settings import ReplaySettings, Settings
from app.topics import Topics
from tests.support import (
    PIPELINE_ROLES,
    Receiver,
    Role,
    event,
    eventually,
    pipeline_settings,
    produce_events,
    read_topic,
    running,
)

pytestmark = [pytest.mark.e2e, pytest.mark.integration]

ONE_PARTITION = b"same-key"  # every event of a test on one partition: matched in order
REPLAY_RATE = 20.0  # attempts a second: slow enough to cancel a replay midway


class Pipeline:
    def __init__(self, settings: Settings, receiver: Receiver, api: httpx.AsyncClient):
        self.settings = settings
        self.receiver = receiver
        self.api = api
        self.sentinel: dict[str, Any] | None = None
        self.roles: dict[str, Role] = {}

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

    async def settle(self) -> None:
        """Return once the worker matched every event produced so far to ONE_PARTITION: a
        sentinel event behind them reached the sentinel webhook. A webhook created after
        this sees those events by replay only, never by the live match step."""
        if self.sentinel is None:
            self.sentinel = await self.webhook(
                "/sentinel", events=["*"], filter={"data.sentinel": True}
            )
        marker = event(sentinel=True)
        produce_events(self.settings, [marker], key=ONE_PARTITION)
        await eventually(
            lambda: marker["id"] in self.event_ids("/sentinel"), timeout=60, what="the sentinel"
        )

    def attempt_count(self, event_ids: set[str], webhook_id: str) -> int:
        """Attempt messages on the deliveries topic for these events to this webhook."""
        topic = Topics.from_settings(self.settings).deliveries
        count = 0
        for message in read_topic(self.settings, topic):
            headers = dict(message.headers() or [])
            if (
                headers["hs-event-id"].decode() in event_ids
                and headers["hs-webhook-id"].decode() == webhook_id
            ):
                count += 1
        return count

    async def replay(self, webhook_id: str, **body: Any) -> dict[str, Any]:
        response = await self.api.post(f"/v1/webhooks/{webhook_id}/replay", json=body)
        assert response.status_code == 202, response.text
        job: dict[str, Any] = response.json()
        return job

    async def replay_state(self, replay_id: str) -> dict[str, Any]:
        response = await self.api.get(f"/v1/replays/{replay_id}")
        assert response.status_code == 200, response.text
        job: dict[str, Any] = response.json()
        return job

    async def finished(self, replay_id: str, timeout: float = 60) -> dict[str, Any]:
        async def probe() -> dict[str, Any] | None:
            job = await self.replay_state(replay_id)
            return job if job["status"] not in ("queued", "running") else None

        return await eventually(probe, timeout=timeout, what=f"replay {replay_id} to finish")

    async def statuses(self, webhook_id: str) -> dict[str, str]:
        """event id → delivery status, from the API's delivery log."""
        response = await self.api.get(
            f"/v1/webhooks/{webhook_id}/deliveries", params={"limit": 100}
        )
        assert response.status_code == 200, response.text
        return {d["event_id"]: d["status"] for d in response.json()["deliveries"]}


@pytest.fixture(scope="module")
async def pipeline(stack_settings: Settings) -> AsyncIterator[Pipeline]:
    token = uuid.uuid4().hex[:10]
    replay = ReplaySettings(
        metrics_port=0, consumer_group=f"t{token}-replayer", rate=REPLAY_RATE, batch=50
    )
    settings = pipeline_settings(stack_settings, token, replay=replay)
    async with running(settings, (*PIPELINE_ROLES, "replayer")) as run:
        pipeline = Pipeline(settings, run.receiver, run.api)
        pipeline.roles = run.roles  # a test may replace one (the replayer takeover)
        yield pipeline


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


def a_while_ago() -> str:
    # Kafka timestamps are the producer's clock (this machine's): a margin for rounding.
    return (datetime.now(UTC) - timedelta(seconds=2)).isoformat()


def produce_with_headers(
    settings: Settings, events: list[tuple[dict[str, Any], list[tuple[str, bytes]]]]
) -> None:
    from confluent_kafka import Producer

    producer = Producer({"bootstrap.servers": settings.kafka.bootstrap_servers, "acks": "all"})
    for value, headers in events:
        producer.produce(
            settings.kafka.events_topic, orjson.dumps(value), key=ONE_PARTITION, headers=headers
        )
    assert producer.flush(30) == 0


async def test_a_webhook_created_after_its_events_gets_them_by_replay(pipeline: Pipeline) -> None:
    run = uuid.uuid4().hex[:8]
    since = a_while_ago()
    wanted = [event(run=run, n=i) for i in range(3)]
    filtered_out = event(run="another-run")
    other_type = event("project.created", run=run)
    foreign = event(run=run, n=99)  # the same payload, but another account's event
    produce_with_headers(
        pipeline.settings,
        [(e, []) for e in [*wanted, filtered_out, other_type]]
        + [(foreign, [(ACCOUNT_HEADER, b"someone-else")])],
    )
    await pipeline.settle()
    webhook = await pipeline.webhook("/backfill", filter={"data.run": run})
    job = await pipeline.replay(webhook["id"], since=since)
    assert job["status"] == "queued" and job["mode"] == "missing"

    done = await pipeline.finished(job["id"])
    assert done["status"] == "done", done
    assert done["matched"] == 3 and done["enqueued"] == 3 and done["skipped"] == 0
    assert done["scanned"] >= 6 and done["progress"] == 1.0
    await eventually(
        lambda: len(pipeline.event_ids("/backfill")) >= 3, timeout=30, what="the backfill"
    )
    assert sorted(pipeline.event_ids("/backfill")) == sorted(e["id"] for e in wanted)
    # Done means every attempt was enqueued: the topic shows none for the others.
    others = {filtered_out["id"], other_type["id"], foreign["id"]}
    assert pipeline.attempted(others, {webhook["id"]}) == set()
    sent = pipeline.receiver.at("/backfill")
    assert {r.headers["webhook-id"] for r in sent} == {e["id"] for e in wanted}
    assert {r.headers["X-Webhook-Attempt"] for r in sent} == {"1"}


async def test_a_missing_replay_after_an_outage_sends_only_what_was_not_delivered(
    pipeline: Pipeline,
) -> None:
    run = uuid.uuid4().hex[:8]
    since = a_while_ago()
    # Two events delivered, then the receiver is down for two events' five attempts each.
    pipeline.receiver.script["/outage"] = [200, 200] + [500] * 10 + [200]
    webhook = await pipeline.webhook("/outage", filter={"data.run": run})
    delivered = [event(run=run, phase="before") for _ in range(2)]
    produce_events(pipeline.settings, delivered, key=ONE_PARTITION)
    await eventually(
        lambda: len(pipeline.receiver.at("/outage")) >= 2, timeout=30, what="the first two"
    )
    lost = [event(run=run, phase="outage") for _ in range(2)]
    produce_events(pipeline.settings, lost, key=ONE_PARTITION)

    async def outage_over() -> bool:
        states = await pipeline.statuses(webhook["id"])
        return all(states.get(e["id"]) == "success" for e in delivered) and all(
            states.get(e["id"]) == "failed" for e in lost
        )

    await eventually(outage_over, timeout=60, what="two delivered, two failed")
    before = len(pipeline.receiver.at("/outage"))
    assert before == 12

    job = await pipeline.replay(webhook["id"], since=since, mode="missing")
    done = await pipeline.finished(job["id"])
    assert done["status"] == "done", done
    assert (done["matched"], done["enqueued"], done["skipped"]) == (4, 2, 2)
    await eventually(
        lambda: len(pipeline.receiver.at("/outage")) >= before + 2, timeout=30, what="resends"
    )
    resent = pipeline.receiver.at("/outage")[before:]
    assert sorted(orjson.loads(r.body)["id"] for r in resent) == sorted(e["id"] for e in lost)
    assert {r.headers["X-Webhook-Attempt"] for r in resent} == {"6"}  # the chain continues
    await eventually(
        lambda: _all_success(pipeline, webhook["id"], [*delivered, *lost]),
        timeout=30,
        what="all four delivered in the log",
    )


async def _all_success(pipeline: Pipeline, webhook_id: str, events: list[dict[str, Any]]) -> bool:
    states = await pipeline.statuses(webhook_id)
    return all(states.get(e["id"]) == "success" for e in events)


async def test_an_all_replay_resends_delivered_events_with_the_same_ids(
    pipeline: Pipeline,
) -> None:
    run = uuid.uuid4().hex[:8]
    since = a_while_ago()
    webhook = await pipeline.webhook("/again", filter={"data.run": run})
    sent = [event(run=run) for _ in range(2)]
    produce_events(pipeline.settings, sent, key=ONE_PARTITION)
    await eventually(lambda: _all_success(pipeline, webhook["id"], sent), what="delivered")
    first = {
        r.headers["webhook-id"]: r.headers["X-Webhook-Id"] for r in pipeline.receiver.at("/again")
    }

    job = await pipeline.replay(webhook["id"], since=since, mode="all")
    done = await pipeline.finished(job["id"])
    assert (done["status"], done["enqueued"]) == ("done", 2), done
    got = await eventually(
        lambda: len(pipeline.receiver.at("/again")) >= 4 and pipeline.receiver.at("/again"),
        what="the resends",
    )
    again = {r.headers["webhook-id"]: r.headers["X-Webhook-Id"] for r in got[2:]}
    assert again == first  # same webhook-id and delivery id: receivers dedupe
    assert {r.headers["X-Webhook-Attempt"] for r in got[2:]} == {"2"}


async def test_a_cancelled_replay_stops(pipeline: Pipeline) -> None:
    run = uuid.uuid4().hex[:8]
    since = a_while_ago()
    total = 200  # ten seconds at the test's replay rate
    produced = [event("user.updated", run=run) for _ in range(total)]
    produce_events(pipeline.settings, produced, key=ONE_PARTITION)
    await pipeline.settle()
    webhook = await pipeline.webhook(
        "/cancelled", events=["user.updated"], filter={"data.run": run}
    )
    job = await pipeline.replay(webhook["id"], since=since)

    async def underway() -> bool:
        return (await pipeline.replay_state(job["id"]))["enqueued"] >= 5

    await eventually(underway, timeout=30, what="the replay to be underway")
    cancel = await pipeline.api.post(f"/v1/replays/{job['id']}/cancel")
    assert cancel.status_code == 202 and cancel.json()["cancel_requested"] is True
    done = await pipeline.finished(job["id"])
    assert done["status"] == "cancelled", done
    assert 5 <= done["enqueued"] < total
    # Stopped means nothing more is enqueued: the topic holds exactly what the job counted.
    attempts = pipeline.attempted({e["id"] for e in produced}, {webhook["id"]})
    assert len(attempts) == done["enqueued"]
    again = await pipeline.api.post(f"/v1/replays/{job['id']}/cancel")
    assert again.status_code == 409


async def test_a_replay_taken_over_resumes_where_it_stopped(pipeline: Pipeline) -> None:
    run = uuid.uuid4().hex[:8]
    since = a_while_ago()
    total = 300  # fifteen seconds at the test's replay rate
    produced = [event("user.deleted", run=run) for _ in range(total)]
    produce_events(pipeline.settings, produced, key=ONE_PARTITION)
    await pipeline.settle()
    webhook = await pipeline.webhook("/takeover", events=["user.deleted"], filter={"data.run": run})
    # mode all: a replayer starting over would send the first events again.
    job = await pipeline.replay(webhook["id"], since=since, mode="all")

    async def underway() -> bool:
        return (await pipeline.replay_state(job["id"]))["enqueued"] >= 20

    await eventually(underway, timeout=30, what="the replay to be underway")
    # SIGTERM: the replayer stops after its batch and leaves the group; the job stays running.
    assert await pipeline.roles["replayer"].astop() == 0
    stopped = await pipeline.replay_state(job["id"])
    assert stopped["status"] == "running" and 20 <= stopped["enqueued"] < total, stopped
    pipeline.roles["replayer"] = Role("replayer", pipeline.settings).start()

    done = await pipeline.finished(job["id"], timeout=90)
    assert (done["status"], done["enqueued"], done["progress"]) == ("done", total, 1.0), done
    # Resumed, not restarted: every event enqueued exactly once over both replayers.
    ids = {e["id"] for e in produced}
    assert pipeline.attempt_count(ids, webhook["id"]) == total


async def test_a_replay_beyond_retention_says_how_far_back_it_could_go(pipeline: Pipeline) -> None:
    """Runs after the tests that replay earlier events: it deletes the events topic's older
    records, as retention would."""
    from confluent_kafka import TopicPartition
    from confluent_kafka.admin import AdminClient

    run = uuid.uuid4().hex[:8]
    gone = event(run=run)  # older than the retention cut below
    produce_events(pipeline.settings, [gone], key=ONE_PARTITION)
    topic = pipeline.settings.kafka.events_topic
    admin = AdminClient({"bootstrap.servers": pipeline.settings.kafka.bootstrap_servers})
    partitions = admin.list_topics(topic, timeout=10).topics[topic].partitions
    # Offset -1: delete everything up to the partition's current end.
    doomed = [TopicPartition(topic, p, -1) for p in partitions]
    for future in admin.delete_records(doomed).values():
        future.result(30)
    kept = [event(run=run) for _ in range(2)]
    produce_events(pipeline.settings, kept, key=ONE_PARTITION)
    await pipeline.settle()
    webhook = await pipeline.webhook("/retention", filter={"data.run": run})
    day_ago = (datetime.now(UTC) - timedelta(days=1)).isoformat()

    job = await pipeline.replay(webhook["id"], since=day_ago)
    done = await pipeline.finished(job["id"])
    assert (done["status"], done["enqueued"]) == ("done", 2), done  # not the deleted one
    earliest = done["earliest_available"]
    assert earliest is not None
    moment = datetime.fromisoformat(earliest.replace("Z", "+00:00"))
    assert datetime.now(UTC) - timedelta(minutes=2) < moment <= datetime.now(UTC)


async def test_replay_requests_are_checked(pipeline: Pipeline) -> None:
    webhook = await pipeline.webhook("/checked")
    path = f"/v1/webhooks/{webhook['id']}/replay"
    soon = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
    future = await pipeline.api.post(path, json={"since": soon})
    assert future.status_code == 422 and future.json()["error"]["field"] == "since"
    backwards = await pipeline.api.post(
        path, json={"since": a_while_ago(), "until": "2020-01-01T00:00:00Z"}
    )
    assert backwards.status_code == 422 and backwards.json()["error"]["field"] == "since"
    mode = await pipeline.api.post(path, json={"since": a_while_ago(), "mode": "some"})
    assert mode.status_code == 422
    unknown = await pipeline.api.post("/v1/webhooks/hook_nope/replay", json={"since": soon})
    assert unknown.status_code == 404
    paused = await pipeline.api.patch(f"/v1/webhooks/{webhook['id']}", json={"active": False})
    assert paused.status_code == 200
    refused = await pipeline.api.post(path, json={"since": a_while_ago()})
    assert refused.status_code == 409
    assert (await pipeline.api.get("/v1/replays/rpl_nope")).status_code == 404
    assert (await pipeline.api.delete("/v1/replays/rpl_nope")).status_code == 404
