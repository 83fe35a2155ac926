"""Schemathesis against the live app (real Cassandra and Kafka behind it): no server errors,
and every response — status, content type, headers, body — is one the OpenAPI document
declares. Bounded: a few dozen examples per operation, so the module runs in well under two
minutes.
"""

from __future__ import annotations

import ipaddress
import random
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import orjson
import pytest
import schemathesis
from confluent_kafka.admin import AdminClient
from hypothesis import HealthCheck, settings
from pydantic import SecretStr
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from app.api.app import attach, build
from app.deliveries import DeliveryStatus, delivery_id
from app.kafka import AsyncProducer, create_topics
from app.settings import ApiSettings, Settings
from app.store import Store, migrate
from app.store.records import DeliveryRecord, EventRecord
from app.topics import Topics
from app.webhooks import Webhook, generate_secret, new_webhook_id
from tests.support import isolated

pytestmark = pytest.mark.integration

API_KEY = "schema-key-" + uuid.uuid4().hex
AUTH = {"Authorization": f"Bearer {API_KEY}"}
# Not negative_data_rejection: the API ignores unknown query parameters (as most do), and
# our fixed Authorization header fills in the one a negative case means to leave out, so that
# check would report accepted requests that are in fact valid.
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
]


class Known:
    """Ids that exist, so generated requests reach past the 404 as well."""

    webhook_id = ""
    delivery_id = ""
    event_id = ""


def _settings() -> Settings:
    base: Settings = isolated(Settings(), uuid.uuid4().hex[:10])
    return base.model_copy(
        update={
            "api_keys": (SecretStr(API_KEY),),
            "allowed_networks": (ipaddress.ip_network("127.0.0.0/8"),),
            "api": ApiSettings(allow_http=True, page_limit=50),  # type: ignore[call-arg]
        }
    )


# The app exists at collection (schemathesis reads its OpenAPI document then) without any
# connection; the fixture attaches the real store and producer before the first request.
# (schemathesis.pytest.from_fixture would be the natural loader, but it fails on pytest 9:
# it reads the removed ``Function._nodeid``.)
CFG = _settings()
APP = build(CFG, lifespan=None)
schema = schemathesis.openapi.from_asgi("/openapi.json", APP)


@pytest.fixture(scope="module", autouse=True)
def live_backends(stack_settings: Settings) -> Iterator[None]:
    migrate(CFG)
    create_topics(CFG)
    store = Store.connect_blocking(CFG)
    producer = AsyncProducer(CFG)
    _seed(store)
    attach(APP, store, producer)
    try:
        yield
    finally:
        producer.close()
        store.session.execute(f"DROP KEYSPACE IF EXISTS {CFG.cassandra.keyspace}")
        store.session.cluster.shutdown()
        admin = AdminClient({"bootstrap.servers": CFG.kafka.bootstrap_servers})
        admin.delete_topics(Topics.from_settings(CFG).all())


def _seed(store: Store) -> None:
    """One webhook with one failed delivery of a saved event (written off any event loop)."""
    import asyncio

    async def write() -> None:
        now = datetime.now(UTC)
        hook = Webhook(
            id=new_webhook_id(),
            url="https://example.com/hook",
            events=("user.created",),
            secret=generate_secret(),
            active=True,
            created_at=now,
            updated_at=now,
        )
        await store.webhooks.create(hook)
        event_id = "evt_" + uuid.uuid4().hex
        body = orjson.dumps({"id": event_id, "type": "user.created", "data": {}})
        await store.deliveries.save_event(
            EventRecord(event_id, "user.created", "2026-01-15T12:30:00Z", body, now)
        )
        record = DeliveryRecord(
            id=delivery_id(event_id, hook.id),
            webhook_id=hook.id,
            event_id=event_id,
            event_type="user.created",
            status=DeliveryStatus.FAILED,
            attempts=5,
            created_at=now,
            updated_at=now,
            status_code=500,
            error="HTTP 500",
        )
        await store.deliveries.record(record, None)
        Known.webhook_id, Known.delivery_id, Known.event_id = hook.id, record.id, event_id

    asyncio.run(write())


@schema.parametrize()
@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=list(HealthCheck),
)
def test_api_conforms_to_its_openapi(case: Any) -> None:
    # Half of the id-taking requests use ids that exist (never for DELETE, which would
    # remove the shared webhook); the rest exercise the 404 path.
    if case.path_parameters and "id" in case.path_parameters and random.random() < 0.5:
        path = case.path
        if path.startswith("/v1/webhooks/") and case.method.upper() != "DELETE":
            case.path_parameters["id"] = Known.webhook_id
        elif path.startswith("/v1/deliveries/"):
            case.path_parameters["id"] = Known.delivery_id
        elif path.startswith("/v1/events/"):
            case.path_parameters["id"] = Known.event_id
    case.call_and_validate(headers=AUTH, checks=CHECKS)
