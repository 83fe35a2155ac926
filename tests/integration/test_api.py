"""The API against the real Cassandra and Kafka, in process (httpx over ASGITransport).

One keyspace and topic prefix for the module; every test makes its own webhooks, so tests
never see each other's rows. Messages the API produces are read back with confluent-kafka.
"""

from __future__ import annotations

import asyncio
import ipaddress
import re
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import orjson
import pytest
import pytest_asyncio
from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition
from confluent_kafka.admin import AdminClient
from fastapi import FastAPI
from pydantic import SecretStr

from app.api import create_app
from app.api.app import V1_ROUTERS
from app.api.log_page import simple_log_query
from app.deliveries import DeliveryStatus, delivery_id
from app.errors import HandOffError
from app.kafka import AsyncProducer, create_topics
from app.settings import ApiSettings, Settings
from app.store import Store, migrate
from app.store.records import AttemptRecord, DeliveryRecord, EventRecord
from app.topics import Topics
from app.webhooks import validate_secret, webhook_from_json
from tests.support import isolated

pytestmark = pytest.mark.integration

API_KEY = "test-key-" + uuid.uuid4().hex
AUTH = {"Authorization": f"Bearer {API_KEY}"}
PAGE_LIMIT = 20
SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSwMfKQ9r8GKYo="  # 34 bytes
RFC3339_Z = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{3})?Z$")
SEED_TYPES = [
    "user.created",
    "user.updated",
    "user.deleted",
    "project.created",
    "project.updated",
    "project.deleted",
    "file.uploaded",
    "payment.succeeded",
    "payment.failed",
]
UNAUTHORIZED = {
    "error": {
        "type": "unauthorized",
        "message": "missing or invalid API key; send Authorization: Bearer <key>",
        "field": None,
    }
}


@dataclass
class Env:
    settings: Settings
    topics: Topics
    store: Store
    producer: AsyncProducer
    app: FastAPI
    client: httpx.AsyncClient


def api_settings(stack_settings: Settings, token: str, *, allow_http: bool = True) -> Settings:
    base: Settings = isolated(stack_settings, token)
    return base.model_copy(
        update={
            "api_keys": (SecretStr(API_KEY),),
            "allowed_networks": (ipaddress.ip_network("127.0.0.0/8"),),
            "api": ApiSettings(allow_http=allow_http, page_limit=PAGE_LIMIT),  # type: ignore[call-arg]
        }
    )


@pytest_asyncio.fixture(scope="module")
async def env(stack_settings: Settings) -> AsyncIterator[Env]:
    settings = api_settings(stack_settings, uuid.uuid4().hex[:10])
    await asyncio.to_thread(migrate, settings)
    await asyncio.to_thread(create_topics, settings)
    store = await Store.connect(settings)
    producer = AsyncProducer(settings)
    app = create_app(settings, store, producer)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://api") as client:
        yield Env(settings, Topics.from_settings(settings), store, producer, app, client)
    await asyncio.to_thread(producer.close)
    await asyncio.to_thread(
        store.session.execute, f"DROP KEYSPACE IF EXISTS {settings.cassandra.keyspace}"
    )
    await store.close()
    admin = AdminClient({"bootstrap.servers": settings.kafka.bootstrap_servers})
    admin.delete_topics(Topics.from_settings(settings).all())


# -- helpers --------------------------------------------------------------------------------


def seed_body(**changes: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "url": "https://yourapp.com/webhook",
        "events": ["user.created", "user.updated", "project.created"],
        "secret": SECRET,
        "active": True,
    }
    body.update(changes)
    return body


async def new_hook(env: Env, **changes: Any) -> dict[str, Any]:
    response = await env.client.post("/v1/webhooks", json=seed_body(**changes), headers=AUTH)
    assert response.status_code == 201, response.text
    hook: dict[str, Any] = response.json()
    return hook


def without_health(webhook: dict[str, Any]) -> dict[str, Any]:
    """A webhook's GET minus its endpoint health (which only the GET of one webhook has)."""
    assert "health" in webhook
    return {k: v for k, v in webhook.items() if k != "health"}


def assert_error(response: httpx.Response, status: int, type_: str, field: str | None) -> None:
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error"}
    assert set(body["error"]) == {"type", "message", "field"}
    assert body["error"]["type"] == type_
    assert body["error"]["message"]
    if field is not None:
        assert body["error"]["field"] == field, body


@dataclass
class Received:
    key: bytes | None
    value: bytes | None
    headers: dict[str, bytes]


def consume(
    settings: Settings,
    topic: str,
    want: Callable[[Received], bool],
    count: int = 1,
    timeout: float = 20.0,
) -> list[Received]:
    """Read ``topic`` from the beginning (no group offsets) until ``count`` messages match."""
    consumer = Consumer(
        {
            "bootstrap.servers": settings.kafka.bootstrap_servers,
            "group.id": "api-test-" + uuid.uuid4().hex,
            "enable.auto.commit": False,
        }
    )
    try:
        partitions = consumer.list_topics(topic, timeout=10).topics[topic].partitions
        consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in partitions])
        found: list[Received] = []
        end = datetime.now(UTC) + timedelta(seconds=timeout)
        while datetime.now(UTC) < end and len(found) < count:
            message = consumer.poll(0.5)
            if message is None or message.error():
                continue
            item = Received(
                message.key(), message.value(), {k: v for k, v in message.headers() or [] if v}
            )
            if want(item):
                found.append(item)
        assert len(found) >= count, f"only {len(found)} of {count} messages on {topic}"
        return found
    finally:
        consumer.close()


def record_for(
    webhook_id: str,
    event_id: str,
    status: DeliveryStatus,
    created_at: datetime,
    *,
    attempts: int = 1,
    event_type: str = "user.created",
) -> DeliveryRecord:
    return DeliveryRecord(
        id=delivery_id(event_id, webhook_id),
        webhook_id=webhook_id,
        event_id=event_id,
        event_type=event_type,
        status=status,
        attempts=attempts,
        created_at=created_at,
        updated_at=created_at,
        status_code={DeliveryStatus.SUCCESS: 200, DeliveryStatus.FAILED: 500}.get(status),
        error="Connection timeout" if status is DeliveryStatus.FAILED else None,
        delivered_at=created_at if status is DeliveryStatus.SUCCESS else None,
    )


async def save_event(env: Env, event_id: str, event_type: str = "user.created") -> bytes:
    body = orjson.dumps(
        {"id": event_id, "type": event_type, "created_at": "2026-01-15T12:30:00Z", "data": {}}
    )
    await env.store.deliveries.save_event(
        EventRecord(event_id, event_type, "2026-01-15T12:30:00Z", body, datetime.now(UTC))
    )
    return body


# -- create, read, update, delete ----------------------------------------------------------


async def test_create_returns_the_seed_shape(env: Env) -> None:
    response = await env.client.post("/v1/webhooks", json=seed_body(), headers=AUTH)
    assert response.status_code == 201, response.text
    hook = response.json()
    assert list(hook) == [
        "id",
        "url",
        "events",
        "secret",
        "active",
        "created_at",
        "updated_at",
        "description",
        "metadata",
    ]
    assert re.fullmatch(r"hook_[0-9a-f]{24}", hook["id"])
    assert hook["url"] == "https://yourapp.com/webhook"
    assert hook["events"] == ["user.created", "user.updated", "project.created"]
    assert hook["secret"] == SECRET
    assert hook["active"] is True
    assert RFC3339_Z.match(hook["created_at"])
    assert hook["updated_at"] == hook["created_at"]
    assert hook["description"] is None
    assert hook["metadata"] == {}
    stored = await env.store.webhooks.get(hook["id"])
    assert stored is not None and stored.secret == SECRET


async def test_create_generates_a_secret_and_publishes_the_webhook(env: Env) -> None:
    body = seed_body(description="billing", metadata={"team": "payments"})
    del body["secret"]
    response = await env.client.post("/v1/webhooks", json=body, headers=AUTH)
    assert response.status_code == 201, response.text
    hook = response.json()
    assert validate_secret(hook["secret"]).startswith("whsec_")
    assert hook["description"] == "billing" and hook["metadata"] == {"team": "payments"}
    [notice] = await asyncio.to_thread(
        consume, env.settings, env.topics.webhooks, lambda m: m.key == hook["id"].encode()
    )
    assert notice.value is not None
    published = webhook_from_json(notice.value)
    assert published == await env.store.webhooks.get(hook["id"])
    assert published.secret == hook["secret"] and published.metadata == {"team": "payments"}


async def test_create_accepts_loopback_when_allowed_networks_cover_it(env: Env) -> None:
    hook = await new_hook(env, url="http://127.0.0.1:8765/hook")
    assert hook["url"] == "http://127.0.0.1:8765/hook"


@pytest.mark.parametrize(
    "secret", ["whsec_abc123...", "my-shared-secret", "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"]
)
async def test_the_seeds_own_secret_and_any_supplied_string_are_accepted(
    env: Env, secret: str
) -> None:
    # The docs' create request, verbatim: its placeholder secret was refused before.
    hook = await new_hook(env, secret=secret)
    assert hook["secret"] == secret
    got = await env.client.get(f"/v1/webhooks/{hook['id']}/secret", headers=AUTH)
    assert got.json() == {"secret": secret}


async def test_reads_omit_the_secret_and_the_secret_route_returns_it(env: Env) -> None:
    hook = await new_hook(env)
    got = (await env.client.get(f"/v1/webhooks/{hook['id']}", headers=AUTH)).json()
    assert "secret" not in got
    assert without_health(got) == {k: v for k, v in hook.items() if k != "secret"}
    secret = await env.client.get(f"/v1/webhooks/{hook['id']}/secret", headers=AUTH)
    assert secret.status_code == 200 and secret.json() == {"secret": SECRET}


async def test_patch_changes_only_the_fields_present(env: Env) -> None:
    hook = await new_hook(env, description="old", metadata={"a": "1"})
    path = f"/v1/webhooks/{hook['id']}"
    response = await env.client.patch(
        path, json={"active": False, "events": ["user.*"]}, headers=AUTH
    )
    assert response.status_code == 200, response.text
    patched = response.json()
    assert patched["active"] is False and patched["events"] == ["user.*"]
    assert patched["url"] == hook["url"] and patched["description"] == "old"
    assert patched["metadata"] == {"a": "1"} and "secret" not in patched
    assert patched["updated_at"] >= hook["updated_at"]
    assert patched["created_at"] == hook["created_at"]

    cleared = await env.client.patch(
        path,
        json={"description": None, "metadata": {}, "url": "https://example.org/h"},
        headers=AUTH,
    )
    assert cleared.status_code == 200, cleared.text
    assert cleared.json()["description"] is None and cleared.json()["metadata"] == {}
    assert without_health((await env.client.get(path, headers=AUTH)).json()) == cleared.json()

    rotated = "whsec_" + "B" * 44  # 33 bytes
    response = await env.client.patch(path, json={"secret": rotated}, headers=AUTH)
    assert response.status_code == 200 and "secret" not in response.json()
    secret = (await env.client.get(f"{path}/secret", headers=AUTH)).json()["secret"]
    assert secret == rotated


async def test_list_walks_every_page_without_duplicates_or_gaps(env: Env) -> None:
    created = {(await new_hook(env))["id"] for _ in range(5)}
    seen: list[str] = []
    cursor: str | None = None
    pages = 0
    while True:
        params: dict[str, Any] = {"limit": 2}
        if cursor:
            params["cursor"] = cursor
        response = await env.client.get("/v1/webhooks", params=params, headers=AUTH)
        assert response.status_code == 200, response.text
        page = response.json()
        assert set(page) == {"webhooks", "next_cursor"}
        assert len(page["webhooks"]) <= 2
        assert all("secret" not in w for w in page["webhooks"])
        seen += [w["id"] for w in page["webhooks"]]
        pages += 1
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert pages > 1
    assert len(seen) == len(set(seen))
    assert created <= set(seen)


async def test_list_clamps_a_huge_limit_and_refuses_bad_ones(env: Env) -> None:
    response = await env.client.get("/v1/webhooks", params={"limit": 10**9}, headers=AUTH)
    assert response.status_code == 200
    assert len(response.json()["webhooks"]) <= PAGE_LIMIT
    for bad in ("0", "-1", "ten"):
        response = await env.client.get("/v1/webhooks", params={"limit": bad}, headers=AUTH)
        assert_error(response, 422, "validation_error", "limit")
    response = await env.client.get("/v1/webhooks", params={"cursor": "garbage!"}, headers=AUTH)
    assert_error(response, 422, "validation_error", "cursor")


async def test_delete_then_404_everywhere(env: Env) -> None:
    hook = await new_hook(env)
    hook_id = hook["id"]
    event_id = "evt_" + uuid.uuid4().hex
    await save_event(env, event_id)
    record = record_for(hook_id, event_id, DeliveryStatus.FAILED, datetime.now(UTC))
    await env.store.deliveries.record(record, None)

    response = await env.client.delete(f"/v1/webhooks/{hook_id}", headers=AUTH)
    assert response.status_code == 204 and response.content == b""
    assert await env.store.webhooks.get(hook_id) is None
    since = {"since": "2020-01-01T00:00:00Z"}
    for method, path, body in [
        ("GET", f"/v1/webhooks/{hook_id}", None),
        ("PATCH", f"/v1/webhooks/{hook_id}", {"active": False}),
        ("DELETE", f"/v1/webhooks/{hook_id}", None),
        ("GET", f"/v1/webhooks/{hook_id}/secret", None),
        ("POST", f"/v1/webhooks/{hook_id}/test", None),
        ("GET", f"/v1/webhooks/{hook_id}/deliveries", None),
        ("POST", f"/v1/webhooks/{hook_id}/recover", since),
        ("GET", f"/v1/deliveries/{record.id}", None),
        ("POST", f"/v1/deliveries/{record.id}/retry", None),
        ("GET", f"/v1/events/{event_id}/deliveries", None),
    ]:
        response = await env.client.request(method, path, json=body, headers=AUTH)
        if path.startswith("/v1/events/"):
            # The event still exists; the deleted webhook's delivery is no longer listed.
            assert response.status_code == 200 and response.json()["deliveries"] == []
            continue
        assert_error(response, 404, "not_found", None)
    [tombstone] = await asyncio.to_thread(
        consume,
        env.settings,
        env.topics.webhooks,
        lambda m: m.key == hook_id.encode() and m.value is None,
    )
    assert tombstone.value is None


async def test_a_read_delivery_log_is_404_right_after_its_webhook_is_deleted(env: Env) -> None:
    # The log's page route keeps webhooks for a second (app.api.deps.WebhookCache); a delete
    # through this API must not wait for that.
    hook = await new_hook(env)
    log = f"/v1/webhooks/{hook['id']}/deliveries"
    assert (await env.client.get(log, headers=AUTH)).status_code == 200
    assert (await env.client.get(log, headers=AUTH)).status_code == 200
    deleted = await env.client.delete(f"/v1/webhooks/{hook['id']}", headers=AUTH)
    assert deleted.status_code == 204
    assert_error(await env.client.get(log, headers=AUTH), 404, "not_found", None)


async def test_unknown_ids_are_404(env: Env) -> None:
    for path in (
        "/v1/webhooks/hook_000000000000000000000000",
        "/v1/webhooks/not%20an%20id",
        "/v1/deliveries/del_nope",
        "/v1/events/evt_nope/deliveries",
    ):
        assert_error(await env.client.get(path, headers=AUTH), 404, "not_found", None)


# -- validation ------------------------------------------------------------------------------

BAD_CREATE: list[tuple[str, dict[str, Any], str]] = [
    ("scheme file", {"url": "file:///etc/passwd"}, "url"),
    ("scheme ftp", {"url": "ftp://example.com/x"}, "url"),
    ("scheme gopher", {"url": "gopher://example.com/"}, "url"),
    ("userinfo", {"url": "https://user:pw@example.com/"}, "url"),
    ("userinfo to loopback", {"url": "http://evil.com@10.0.0.1/"}, "url"),
    ("crlf", {"url": "https://example.com/\r\nX-Evil: 1"}, "url"),
    ("space", {"url": "https://exa mple.com/"}, "url"),
    ("missing host", {"url": "https:///path"}, "url"),
    ("relative", {"url": "/webhook"}, "url"),
    ("port 0", {"url": "https://example.com:0/"}, "url"),
    ("port 65536", {"url": "https://example.com:65536/"}, "url"),
    ("private literal", {"url": "https://10.1.2.3/"}, "url"),
    ("metadata service", {"url": "http://169.254.169.254/latest"}, "url"),
    ("ipv6 loopback (not allowed)", {"url": "http://[::1]/"}, "url"),
    ("legacy ipv4 spelling", {"url": "http://0x0a000001/"}, "url"),
    ("url not a string", {"url": 42}, "url"),
    ("events empty", {"events": []}, "events"),
    ("events unknown", {"events": ["user.created", "nope.nothing"]}, "events[1]"),
    ("events bad wildcard", {"events": ["user*"]}, "events[0]"),
    ("events wildcard matching nothing", {"events": ["nope.*"]}, "events[0]"),
    ("events not a list", {"events": "user.created"}, "events"),
    ("secret 7 characters", {"secret": "1234567"}, "secret"),
    ("secret with a space", {"secret": "my shared secret"}, "secret"),
    ("secret not ascii", {"secret": "caf\u00e9-secret"}, "secret"),
    ("secret 100 bytes", {"secret": "whsec_" + "A" * 136}, "secret"),
    ("description too long", {"description": "x" * 1001}, "description"),
    ("metadata non-string", {"metadata": {"team": 7}}, "metadata.team"),
    ("metadata nested", {"metadata": {"team": {"a": "b"}}}, "metadata.team"),
    ("metadata too many keys", {"metadata": {f"k{i}": "v" for i in range(51)}}, "metadata"),
    ("active not a bool", {"active": "yes"}, "active"),
    ("unknown field", {"colour": "blue"}, "colour"),
]


@pytest.mark.parametrize(("case", "changes", "field"), BAD_CREATE, ids=[c[0] for c in BAD_CREATE])
async def test_create_refuses_each_invalid_field(
    env: Env, case: str, changes: dict[str, Any], field: str
) -> None:
    response = await env.client.post("/v1/webhooks", json=seed_body(**changes), headers=AUTH)
    assert_error(response, 422, "validation_error", field)


@pytest.mark.parametrize(("case", "changes", "field"), BAD_CREATE, ids=[c[0] for c in BAD_CREATE])
async def test_patch_refuses_each_invalid_field(
    env: Env, case: str, changes: dict[str, Any], field: str
) -> None:
    hook = await new_hook(env)
    response = await env.client.patch(f"/v1/webhooks/{hook['id']}", json=changes, headers=AUTH)
    assert_error(response, 422, "validation_error", field)
    unchanged = (await env.client.get(f"/v1/webhooks/{hook['id']}", headers=AUTH)).json()
    assert without_health(unchanged) == {k: v for k, v in hook.items() if k != "secret"}


@pytest.mark.parametrize("field", ["url", "events", "active", "metadata", "secret"])
async def test_patch_refuses_null_for_required_fields(env: Env, field: str) -> None:
    hook = await new_hook(env)
    response = await env.client.patch(
        f"/v1/webhooks/{hook['id']}", json={field: None}, headers=AUTH
    )
    assert_error(response, 422, "validation_error", field)


async def test_create_refuses_missing_fields_and_bad_json(env: Env) -> None:
    response = await env.client.post(
        "/v1/webhooks", json={"events": ["user.created"]}, headers=AUTH
    )
    assert_error(response, 422, "validation_error", "url")
    response = await env.client.post(
        "/v1/webhooks",
        content=b'{"url": ',
        headers={**AUTH, "Content-Type": "application/json"},
    )
    assert_error(response, 422, "validation_error", "body")


async def test_http_is_refused_when_https_only(env: Env) -> None:
    strict = env.settings.model_copy(
        update={"api": ApiSettings(allow_http=False, page_limit=PAGE_LIMIT)}  # type: ignore[call-arg]
    )
    app = create_app(strict, env.store, env.producer)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://api") as client:
        response = await client.post(
            "/v1/webhooks", json=seed_body(url="http://example.com/hook"), headers=AUTH
        )
        assert_error(response, 422, "validation_error", "url")
        ok = await client.post("/v1/webhooks", json=seed_body(), headers=AUTH)
        assert ok.status_code == 201


# -- authentication --------------------------------------------------------------------------


def v1_operations(app: FastAPI) -> list[tuple[str, str]]:
    ops = []
    for path, methods in app.openapi()["paths"].items():
        if path.startswith("/v1/"):
            concrete = path.replace("{id}", "hook_000000000000000000000000")
            ops += [(method.upper(), concrete) for method in methods]
    return ops


async def test_every_v1_route_refuses_missing_and_wrong_keys_identically(env: Env) -> None:
    operations = v1_operations(env.app)
    # Every route of every /v1 router is probed (the list comes from the OpenAPI document).
    assert len(operations) == sum(
        len(route.methods) for router in V1_ROUTERS for route in router.routes
    )
    assert ("POST", "/v1/accounts") in operations and ("GET", "/v1/keys") in operations
    bad_headers: list[dict[str, str]] = [
        {},
        {"Authorization": "Bearer wrong-key"},
        {"Authorization": f"Bearer {API_KEY}x"},
        {"Authorization": f"Basic {API_KEY}"},
        {"Authorization": "Bearer "},
        {"Authorization": API_KEY},
    ]
    for method, path in operations:
        for headers in bad_headers:
            # A body that would be invalid: authentication must come first.
            response = await env.client.request(method, path, content=b"{", headers=headers)
            assert response.status_code == 401, (method, path, headers, response.text)
            assert response.json() == UNAUTHORIZED
            assert response.headers["www-authenticate"] == "Bearer"


async def test_keys_created_in_the_store_work_until_revoked(env: Env) -> None:
    key, stored = await env.store.api_keys.create("ci")
    headers = {"Authorization": f"Bearer {key}"}
    assert (await env.client.get("/v1/event-types", headers=headers)).status_code == 200
    await env.store.api_keys.revoke(stored.id)
    response = await env.client.get("/v1/event-types", headers=headers)
    assert response.status_code == 401 and response.json() == UNAUTHORIZED


# -- deliveries ------------------------------------------------------------------------------


async def test_delivery_log_has_the_seed_shape(env: Env) -> None:
    hook = await new_hook(env)
    now = datetime.now(UTC).replace(microsecond=0) - timedelta(seconds=5)
    ok = record_for(hook["id"], "evt_abc" + uuid.uuid4().hex[:6], DeliveryStatus.SUCCESS, now)
    bad = record_for(
        hook["id"],
        "evt_def" + uuid.uuid4().hex[:6],
        DeliveryStatus.FAILED,
        now + timedelta(seconds=1),
        attempts=3,
    )
    await env.store.deliveries.record(ok, None)
    await env.store.deliveries.record(bad, None)

    response = await env.client.get(f"/v1/webhooks/{hook['id']}/deliveries", headers=AUTH)
    assert response.status_code == 200, response.text
    page = response.json()
    assert set(page) == {"deliveries", "next_cursor"} and page["next_cursor"] is None
    failed, success = page["deliveries"]  # newest first
    common = {"event_type", "webhook_id", "created_at", "next_attempt_at"}
    assert (
        set(success)
        == {"id", "event_id", "status", "status_code", "attempts", "delivered_at"} | common
    )
    assert set(failed) == {"id", "event_id", "status", "status_code", "attempts", "error"} | common
    assert success["id"] == ok.id and success["id"].startswith("del_")
    assert success["event_id"] == ok.event_id
    assert success["status"] == "success" and success["status_code"] == 200
    assert success["attempts"] == 1 and RFC3339_Z.match(success["delivered_at"])
    assert failed["status"] == "failed" and failed["status_code"] == 500
    assert failed["attempts"] == 3 and failed["error"] == "Connection timeout"
    assert failed["event_type"] == "user.created" and failed["webhook_id"] == hook["id"]

    only_failed = await env.client.get(
        f"/v1/webhooks/{hook['id']}/deliveries", params={"status": "failed"}, headers=AUTH
    )
    assert [d["id"] for d in only_failed.json()["deliveries"]] == [bad.id]
    for params, field in [
        ({"status": "lost"}, "status"),
        ({"since": "yesterday"}, "since"),
        ({"cursor": "not-a-cursor"}, "cursor"),
        ({"limit": "0"}, "limit"),
        ({"since": "2026-01-02T00:00:00Z", "until": "2026-01-01T00:00:00Z"}, "until"),
    ]:
        response = await env.client.get(
            f"/v1/webhooks/{hook['id']}/deliveries", params=params, headers=AUTH
        )
        assert_error(response, 422, "validation_error", field)


async def seed_log(
    env: Env, hook_id: str, count: int, start: datetime, step: timedelta
) -> list[DeliveryRecord]:
    """``count`` deliveries of the hook, ``step`` apart from ``start``: every other one
    failed, every third a ``project.created`` (the rest ``user.created``)."""
    records = [
        record_for(
            hook_id,
            f"evt_{i:03d}_{uuid.uuid4().hex[:6]}",
            DeliveryStatus.SUCCESS if i % 2 else DeliveryStatus.FAILED,
            start + step * i,
            event_type="user.created" if i % 3 else "project.created",
        )
        for i in range(count)
    ]
    for record in records:
        await env.store.deliveries.record(record, None)
    return records


async def test_delivery_log_pages_newest_first_without_duplicates_or_gaps(env: Env) -> None:
    hook = await new_hook(env)
    start = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=1)
    records = await seed_log(env, hook["id"], 7, start, timedelta(minutes=1))
    expected = [r.id for r in sorted(records, key=lambda r: r.created_at, reverse=True)]

    seen: list[str] = []
    cursor: str | None = None
    pages = 0
    while True:
        params: dict[str, Any] = {"limit": 3}
        if cursor:
            params["cursor"] = cursor
        response = await env.client.get(
            f"/v1/webhooks/{hook['id']}/deliveries", params=params, headers=AUTH
        )
        assert response.status_code == 200, response.text
        page = response.json()
        assert len(page["deliveries"]) <= 3
        seen += [d["id"] for d in page["deliveries"]]
        pages += 1
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert pages >= 3
    assert seen == expected

    typed = await env.client.get(
        f"/v1/webhooks/{hook['id']}/deliveries",
        params={"event_type": "project.created"},
        headers=AUTH,
    )
    want = [r.id for r in records if r.event_type == "project.created"]
    assert sorted(d["id"] for d in typed.json()["deliveries"]) == sorted(want)
    window = await env.client.get(
        f"/v1/webhooks/{hook['id']}/deliveries",
        params={
            "since": (start + timedelta(minutes=2)).isoformat(),
            "until": (start + timedelta(minutes=4)).isoformat(),
        },
        headers=AUTH,
    )
    assert [d["id"] for d in window.json()["deliveries"]] == [
        records[4].id,
        records[3].id,
        records[2].id,
    ]
    huge = await env.client.get(
        f"/v1/webhooks/{hook['id']}/deliveries", params={"limit": 10**12}, headers=AUTH
    )
    assert huge.status_code == 200 and len(huge.json()["deliveries"]) == 7


async def test_delivery_log_route_answers_as_fastapis_handler_does(env: Env) -> None:
    """``LogPageRoute`` reads most queries itself; with a dependency override it must hand
    every request to FastAPI's handler. Both answer every query with the same bytes."""
    hook = await new_hook(env)
    start = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=30)
    await seed_log(env, hook["id"], 6, start, timedelta(minutes=1, milliseconds=7))
    log = f"/v1/webhooks/{hook['id']}/deliveries"
    first = (await env.client.get(log, params={"limit": 2}, headers=AUTH)).json()
    assert first["next_cursor"]
    queries: list[tuple[str, str, bool, int]] = [  # path, query, read by the route, status
        (log, "", True, 200),
        (log, "status=success", True, 200),
        (log, "status=failed&limit=1", True, 200),
        (log, "event_type=project.created", True, 200),
        (log, f"limit=2&cursor={first['next_cursor']}", True, 200),
        (log, "limit=1000000", True, 200),
        (log, "other=1&limit=2", True, 200),
        (log, "cursor=not-a-cursor", True, 422),
        ("/v1/webhooks/hook_nope/deliveries", "", True, 404),
        ("/v1/webhooks/no%20such/deliveries", "", True, 404),
        (log, "status=lost", False, 422),
        (log, "limit=0", False, 422),
        (log, "limit=+2", False, 200),
        (log, "since=yesterday", False, 422),
        (log, f"since={start.isoformat()}&limit=2".replace("+", "%2B"), False, 200),
        (log, "status=failed&status=success", False, 200),
        (log, "event_type=" + "x" * 256, False, 422),
    ]

    async def answers() -> list[tuple[int, bytes]]:
        out = []
        for path, query, _, _ in queries:
            response = await env.client.get(f"{path}?{query}", headers=AUTH)
            out.append((response.status_code, response.content))
        return out

    for _, query, own, _ in queries:
        assert (simple_log_query(query.encode()) is not None) is own, query
    fast = await answers()
    env.app.dependency_overrides[object] = object  # any override: FastAPI's handler answers
    try:
        full = await answers()
    finally:
        env.app.dependency_overrides.clear()
    assert [status for status, _ in fast] == [status for *_, status in queries], fast
    assert fast == full


async def test_delivery_detail_lists_its_attempts(env: Env) -> None:
    hook = await new_hook(env)
    now = datetime.now(UTC).replace(microsecond=0)
    record = record_for(hook["id"], "evt_" + uuid.uuid4().hex, DeliveryStatus.FAILED, now)
    attempt = AttemptRecord(
        delivery_id=record.id,
        number=1,
        started_at=now,
        duration_ms=120,
        outcome="failed",
        status_code=500,
        error="HTTP 500",
        response_excerpt="oops",
        request_headers={"content-type": "application/json", "webhook-id": record.event_id},
    )
    await env.store.deliveries.record(record, attempt)
    response = await env.client.get(f"/v1/deliveries/{record.id}", headers=AUTH)
    assert response.status_code == 200, response.text
    detail = response.json()
    assert detail["id"] == record.id and detail["status"] == "failed"
    assert detail["error"] == "Connection timeout" and "delivered_at" not in detail
    [logged] = detail["attempt_log"]
    assert logged == {
        "number": 1,
        "started_at": detail["created_at"],
        "duration_ms": 120,
        "outcome": "failed",
        "status_code": 500,
        "error": "HTTP 500",
        "response_excerpt": "oops",
        "request_headers": {"content-type": "application/json", "webhook-id": record.event_id},
    }


async def test_test_event_goes_to_the_deliveries_topic(env: Env) -> None:
    hook = await new_hook(env)
    response = await env.client.post(f"/v1/webhooks/{hook['id']}/test", headers=AUTH)
    assert response.status_code == 202, response.text
    accepted = response.json()
    assert set(accepted) == {"event_id", "delivery_id"}
    assert accepted["event_id"].startswith("evt_test_")
    assert accepted["delivery_id"] == delivery_id(accepted["event_id"], hook["id"])

    [message] = await asyncio.to_thread(
        consume,
        env.settings,
        env.topics.deliveries,
        lambda m: m.headers.get("hs-delivery-id") == accepted["delivery_id"].encode(),
    )
    assert message.key == hook["id"].encode()
    assert message.headers["hs-webhook-id"] == hook["id"].encode()
    assert message.headers["hs-origin"] == b"test"
    assert message.headers["hs-attempt"] == b"1"
    assert message.headers["hs-event-type"] == b"webhook.test"
    saved = await env.store.deliveries.get_event(accepted["event_id"])
    assert saved is not None and message.value == saved.body
    event = orjson.loads(saved.body)
    assert event["type"] == "webhook.test" and event["data"]["webhook_id"] == hook["id"]
    assert RFC3339_Z.match(event["created_at"])

    pending = await env.client.get(f"/v1/deliveries/{accepted['delivery_id']}", headers=AUTH)
    assert pending.status_code == 200 and pending.json()["status"] == "pending"


async def test_retry_enqueues_the_next_attempt_or_404s_an_expired_event(env: Env) -> None:
    hook = await new_hook(env)
    event_id = "evt_" + uuid.uuid4().hex
    body = await save_event(env, event_id)
    record = record_for(hook["id"], event_id, DeliveryStatus.FAILED, datetime.now(UTC), attempts=5)
    await env.store.deliveries.record(record, None)

    response = await env.client.post(f"/v1/deliveries/{record.id}/retry", headers=AUTH)
    assert response.status_code == 202, response.text
    assert response.json() == {"delivery_id": record.id, "event_id": event_id, "attempt": 6}
    [message] = await asyncio.to_thread(
        consume,
        env.settings,
        env.topics.deliveries,
        lambda m: m.headers.get("hs-delivery-id") == record.id.encode(),
    )
    assert message.value == body
    assert message.headers["hs-origin"] == b"manual"
    assert message.headers["hs-attempt"] == b"6"

    expired = record_for(
        hook["id"], "evt_gone_" + uuid.uuid4().hex, DeliveryStatus.FAILED, datetime.now(UTC)
    )
    await env.store.deliveries.record(expired, None)
    response = await env.client.post(f"/v1/deliveries/{expired.id}/retry", headers=AUTH)
    assert_error(response, 404, "not_found", None)
    assert "expired" in response.json()["error"]["message"]


async def test_recover_reenqueues_failed_deliveries_in_range(env: Env) -> None:
    hook = await new_hook(env)
    now = datetime.now(UTC).replace(microsecond=0)
    failed = []
    for i in range(2):
        event_id = f"evt_r{i}_{uuid.uuid4().hex[:8]}"
        await save_event(env, event_id)
        failed.append(
            record_for(
                hook["id"], event_id, DeliveryStatus.FAILED, now - timedelta(minutes=i), attempts=5
            )
        )
    old_id = "evt_old_" + uuid.uuid4().hex[:8]
    await save_event(env, old_id)
    old = record_for(hook["id"], old_id, DeliveryStatus.FAILED, now - timedelta(hours=3))
    ok_id = "evt_ok_" + uuid.uuid4().hex[:8]
    ok = record_for(hook["id"], ok_id, DeliveryStatus.SUCCESS, now)
    for record in [*failed, old, ok]:
        await env.store.deliveries.record(record, None)

    since = (now - timedelta(hours=1)).isoformat()
    response = await env.client.post(
        f"/v1/webhooks/{hook['id']}/recover", json={"since": since}, headers=AUTH
    )
    assert response.status_code == 202, response.text
    assert response.json() == {"count": 2}
    wanted = {r.id.encode() for r in failed}
    messages = await asyncio.to_thread(
        consume,
        env.settings,
        env.topics.deliveries,
        lambda m: m.headers.get("hs-delivery-id") in wanted,
        2,
    )
    assert {m.headers["hs-delivery-id"] for m in messages} == wanted
    assert all(m.headers["hs-origin"] == b"manual" for m in messages)
    assert all(m.headers["hs-attempt"] == b"6" for m in messages)

    for body, field in [
        ({}, "since"),
        ({"since": "not a time"}, "since"),
        ({"since": since, "until": (now - timedelta(hours=2)).isoformat()}, "until"),
    ]:
        response = await env.client.post(
            f"/v1/webhooks/{hook['id']}/recover", json=body, headers=AUTH
        )
        assert_error(response, 422, "validation_error", field)


async def test_event_deliveries_lists_every_webhook_that_got_it(env: Env) -> None:
    hooks = [await new_hook(env) for _ in range(2)]
    event_id = "evt_" + uuid.uuid4().hex
    await save_event(env, event_id)
    for hook in hooks:
        await env.store.deliveries.record(
            record_for(hook["id"], event_id, DeliveryStatus.SUCCESS, datetime.now(UTC)), None
        )
    response = await env.client.get(f"/v1/events/{event_id}/deliveries", headers=AUTH)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["event_id"] == event_id
    assert sorted(d["webhook_id"] for d in body["deliveries"]) == sorted(h["id"] for h in hooks)


# -- catalogue, health, errors -----------------------------------------------------------------


async def test_event_types_are_the_seed_nine_and_webhook_test(env: Env) -> None:
    response = await env.client.get("/v1/event-types", headers=AUTH)
    assert response.status_code == 200
    types = response.json()["event_types"]
    assert [t["type"] for t in types] == [*SEED_TYPES, "webhook.test"]
    assert types[0] == {"type": "user.created", "description": "New user registered"}
    assert all(t["description"] for t in types)


async def test_health_readiness_and_metrics_need_no_key(env: Env) -> None:
    assert (await env.client.get("/healthz")).json() == {"status": "ok"}
    ready = await env.client.get("/readyz")
    assert ready.status_code == 200, ready.text
    assert ready.json() == {"status": "ok", "kafka": "ok", "cassandra": "ok"}
    metrics = await env.client.get("/metrics")
    assert metrics.status_code == 200
    assert 'hookstream_api_requests_total{method="GET",route="/readyz",status="200"}' in (
        metrics.text
    )


async def test_readyz_names_what_failed(env: Env) -> None:
    async def down() -> None:
        raise ConnectionError("broker unreachable")

    async def up() -> None:
        return None

    app = create_app(env.settings, env.store, env.producer, probes={"kafka": down, "cassandra": up})
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://a") as c:
        response = await c.get("/readyz")
    assert_error(response, 503, "service_unavailable", None)
    assert "kafka" in response.json()["error"]["message"]
    assert "cassandra" not in response.json()["error"]["message"]


async def test_unknown_routes_and_methods_use_the_error_shape(env: Env) -> None:
    assert_error(await env.client.get("/v1/nothing", headers=AUTH), 404, "not_found", None)
    assert_error(await env.client.get("/nothing"), 404, "not_found", None)
    response = await env.client.put("/v1/webhooks", headers=AUTH)
    assert_error(response, 405, "method_not_allowed", None)
    assert response.headers["allow"] == "GET, POST"


class RefusingProducer:
    """Kafka refusing every message (as AsyncProducer.send does once its timeout passed)."""

    async def send(
        self,
        topic: str,
        value: bytes | None,
        key: bytes | None = None,
        headers: Any = (),
    ) -> None:
        raise HandOffError("kafka: broker down")


async def test_writes_stand_when_kafka_refuses_but_enqueues_answer_503(env: Env) -> None:
    app = create_app(env.settings, env.store, RefusingProducer())
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://a") as c:
        created = await c.post("/v1/webhooks", json=seed_body(), headers=AUTH)
        assert created.status_code == 201, created.text
        hook_id = created.json()["id"]
        assert await env.store.webhooks.get(hook_id) is not None
        patched = await c.patch(f"/v1/webhooks/{hook_id}", json={"active": False}, headers=AUTH)
        assert patched.status_code == 200
        test = await c.post(f"/v1/webhooks/{hook_id}/test", headers=AUTH)
        assert_error(test, 503, "service_unavailable", None)
        deleted = await c.delete(f"/v1/webhooks/{hook_id}", headers=AUTH)
        assert deleted.status_code == 204
        assert await env.store.webhooks.get(hook_id) is None
