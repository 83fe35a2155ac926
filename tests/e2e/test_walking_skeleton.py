"""The whole path, real at every step: API → Kafka → Faust worker → HTTP receiver →
Cassandra → API. Roles run as real processes, exactly as ``hookstream up`` runs them."""

from __future__ import annotations

import hashlib
import hmac
import time
from collections.abc import AsyncIterator
from datetime import timedelta

import httpx
import orjson
import pytest
from confluent_kafka import Producer

from app.kafka import create_topics
from app.settings import Settings, parse_duration
from app.store.schema import migrate
from tests.support import Receiver, Role, eventually, free_port, isolated

pytestmark = [pytest.mark.e2e, pytest.mark.integration]

API_KEY = "e2e-key-0123456789"


@pytest.fixture(scope="module")
async def pipeline(stack_settings: Settings) -> AsyncIterator[tuple[Settings, Receiver]]:
    import uuid

    settings = isolated(stack_settings, uuid.uuid4().hex[:10]).model_copy(
        update={
            "retry_schedule": tuple(parse_duration(d) for d in ("0", "1s", "2s", "3s", "4s")),
            "allowed_networks": (__import__("ipaddress").ip_network("127.0.0.0/8"),),
            "api_keys": (__import__("pydantic").SecretStr(API_KEY),),
            "api": stack_settings.api.model_copy(update={"port": free_port(), "allow_http": True}),
            "worker": stack_settings.worker.model_copy(
                update={"metrics_port": 0, "webhook_reload_interval": timedelta(seconds=5)}
            ),
            "scheduler": stack_settings.scheduler.model_copy(update={"metrics_port": 0}),
        }
    )
    migrate(settings)
    create_topics(settings)
    receiver = Receiver()
    await receiver.start()
    roles = [Role(name, settings).start() for name in ("api", "worker", "scheduler", "recorder")]
    try:
        yield settings, receiver
    finally:
        for role in roles:
            await role.astop()
        await receiver.stop()


def produce(settings: Settings, event: dict[str, object]) -> None:
    producer = Producer({"bootstrap.servers": settings.kafka.bootstrap_servers, "acks": "all"})
    producer.produce(settings.kafka.events_topic, orjson.dumps(event))
    assert producer.flush(15) == 0


async def test_an_event_is_delivered_signed_and_logged(
    pipeline: tuple[Settings, Receiver],
) -> None:
    settings, receiver = pipeline
    base = f"http://127.0.0.1:{settings.api.port}"
    auth = {"Authorization": f"Bearer {API_KEY}"}
    async with httpx.AsyncClient(base_url=base, headers=auth, trust_env=False) as api:
        await eventually(lambda: _ready(api), timeout=90, what="the API to answer /readyz with 200")
        created = await api.post(
            "/v1/webhooks",
            json={
                "url": receiver.url("/skeleton"),
                "events": ["user.created", "user.updated", "project.created"],
                "active": True,
            },
        )
        assert created.status_code == 201, created.text
        webhook = created.json()
        assert webhook["id"].startswith("hook_")
        assert webhook["secret"].startswith("whsec_")

        event = {
            "id": f"evt_{int(time.time() * 1000)}",
            "type": "user.created",
            "created_at": "2026-01-15T12:30:00Z",
            "data": {"id": "user_123", "name": "John Doe", "email": "john@example.com"},
        }
        produce(settings, event)

        requests = await eventually(
            lambda: receiver.at("/skeleton"), timeout=60, what="the receiver to get the event"
        )
        got = requests[0]
        assert got.body == orjson.dumps(event)  # the standard format, compact, key order kept
        expected = hmac.new(webhook["secret"].encode(), got.body, hashlib.sha256).hexdigest()
        assert got.headers["X-Webhook-Signature"] == expected
        assert got.headers["X-Webhook-Event"] == "user.created"
        assert got.headers["webhook-id"] == event["id"]

        async def logged() -> list[dict[str, object]]:
            response = await api.get(f"/v1/webhooks/{webhook['id']}/deliveries")
            assert response.status_code == 200, response.text
            items = response.json()["deliveries"]
            return [d for d in items if d["status"] == "success"]

        deliveries = await eventually(logged, timeout=30, what="the delivery in the log")
        assert len(deliveries) == 1
        delivery = deliveries[0]
        assert delivery["id"] == got.headers["X-Webhook-Id"]
        assert delivery["event_id"] == event["id"]
        assert delivery["status_code"] == 200
        assert delivery["attempts"] == 1
        assert delivery["delivered_at"]


async def _ready(api: httpx.AsyncClient) -> bool:
    try:
        return (await api.get("/readyz")).status_code == 200
    except httpx.TransportError:
        return False
