"""Accounts through the API on the real store: every route scoped to the caller's account
(another account's ids answer 404, exactly as unknown ones), cursors that do not cross
accounts, operator keys acting for any account, keys revoked on every replica at once,
disabled accounts, the per-account webhook limit and the per-key rate limit."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
import pytest_asyncio
from confluent_kafka.admin import AdminClient
from fastapi import FastAPI

from app.api import create_app
from app.kafka import AsyncProducer, create_topics
from app.settings import ApiSettings, Settings
from app.store import Store, migrate
from app.topics import Topics
from tests.integration.test_api import API_KEY, api_settings, assert_error, seed_body

pytestmark = pytest.mark.integration

OPERATOR = {"Authorization": f"Bearer {API_KEY}"}


@dataclass
class Env:
    settings: Settings
    store: Store
    producer: AsyncProducer
    app: FastAPI
    client: httpx.AsyncClient


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
        yield Env(settings, store, producer, app, client)
    await asyncio.to_thread(producer.close)
    await asyncio.to_thread(
        store.session.execute, f"DROP KEYSPACE IF EXISTS {settings.cassandra.keyspace}"
    )
    await store.close()
    admin = AdminClient({"bootstrap.servers": settings.kafka.bootstrap_servers})
    admin.delete_topics(Topics.from_settings(settings).all())


@dataclass
class Tenant:
    id: str
    key: str
    key_id: str

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.key}"}


async def tenant(env: Env, name: str, **fields: Any) -> Tenant:
    made = await env.client.post("/v1/accounts", json={"name": name, **fields}, headers=OPERATOR)
    assert made.status_code == 201, made.text
    account_id = made.json()["id"]
    key = await env.client.post(
        "/v1/keys",
        json={"name": "ci"},
        headers={**OPERATOR, "Hookstream-Account": account_id},
    )
    assert key.status_code == 201, key.text
    body = key.json()
    assert body["account_id"] == account_id and body["key"].startswith(body["prefix"])
    return Tenant(account_id, body["key"], body["id"])


async def hook(env: Env, who: Tenant, **changes: Any) -> dict[str, Any]:
    response = await env.client.post("/v1/webhooks", json=seed_body(**changes), headers=who.auth)
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    return created


def v1_operations(app: FastAPI) -> list[tuple[str, str]]:
    return [
        (method.upper(), path)
        for path, methods in app.openapi()["paths"].items()
        if path.startswith("/v1/") and "{id}" in path
        for method in methods
    ]


async def test_every_route_answers_another_accounts_ids_with_404(env: Env) -> None:
    acme, globex = await tenant(env, "Acme"), await tenant(env, "Globex")
    webhook = await hook(env, acme)
    test = await env.client.post(f"/v1/webhooks/{webhook['id']}/test", headers=acme.auth)
    assert test.status_code == 202, test.text
    delivery_id, event_id = test.json()["delivery_id"], test.json()["event_id"]
    ids = {
        "/v1/webhooks/": webhook["id"],
        "/v1/deliveries/": delivery_id,
        "/v1/events/": event_id,
        "/v1/keys/": acme.key_id,
        "/v1/accounts/": acme.id,
    }
    replay = await env.client.post(
        f"/v1/webhooks/{webhook['id']}/replay",
        json={"since": (datetime.now(UTC) - timedelta(minutes=1)).isoformat()},
        headers=acme.auth,
    )
    if replay.status_code in (200, 201, 202):
        ids["/v1/replays/"] = replay.json()["id"]

    operations = v1_operations(env.app)
    assert len(operations) >= 15
    probed = 0
    for method, template in operations:
        prefix = next(p for p in ids if template.startswith(p))
        path = template.replace("{id}", ids[prefix])
        if method == "DELETE" and prefix == "/v1/webhooks/":
            continue  # probed last: it would remove the webhook the other routes need
        theirs = await env.client.request(method, path, json={}, headers=globex.auth)
        assert theirs.status_code == 404, (method, path, theirs.text)
        unknown = await env.client.request(
            method, template.replace("{id}", "zz_unknown_0000"), json={}, headers=globex.auth
        )
        assert unknown.status_code == 404
        # The same answer as for an id that does not exist, but for the echoed id itself.
        assert theirs.json()["error"]["type"] == unknown.json()["error"]["type"]
        if method == "GET":  # the id is real: its owner reads it (accounts: operators only)
            owner = OPERATOR if prefix == "/v1/accounts/" else acme.auth
            mine = await env.client.get(path, headers=owner)
            assert mine.status_code == 200, (path, mine.text)
        probed += 1
    gone = await env.client.delete(f"/v1/webhooks/{webhook['id']}", headers=globex.auth)
    assert gone.status_code == 404
    assert (await env.client.get(f"/v1/webhooks/{webhook['id']}", headers=acme.auth)).is_success
    assert probed >= 12


async def test_lists_and_cursors_never_cross_accounts(env: Env) -> None:
    acme, globex = await tenant(env, "Acme lists"), await tenant(env, "Globex lists")
    mine = {(await hook(env, acme))["id"] for _ in range(3)}
    theirs = {(await hook(env, globex))["id"] for _ in range(2)}

    seen: set[str] = set()
    cursor: str | None = None
    first_cursor: str | None = None
    while True:
        params: dict[str, Any] = {"limit": 1, **({"cursor": cursor} if cursor else {})}
        page = await env.client.get("/v1/webhooks", params=params, headers=acme.auth)
        assert page.status_code == 200, page.text
        seen |= {w["id"] for w in page.json()["webhooks"]}
        cursor = page.json()["next_cursor"]
        first_cursor = first_cursor or cursor
        if cursor is None:
            break
    assert seen == mine
    listed = await env.client.get("/v1/webhooks", headers=globex.auth)
    assert {w["id"] for w in listed.json()["webhooks"]} == theirs

    assert first_cursor is not None
    foreign = await env.client.get(
        "/v1/webhooks", params={"cursor": first_cursor}, headers=globex.auth
    )
    assert_error(foreign, 422, "validation_error", "cursor")


async def test_an_operator_acts_for_any_account_and_an_account_key_only_for_its_own(
    env: Env,
) -> None:
    acme, globex = await tenant(env, "Acme ops"), await tenant(env, "Globex ops")
    made = await env.client.post(
        "/v1/webhooks", json=seed_body(), headers={**OPERATOR, "Hookstream-Account": acme.id}
    )
    assert made.status_code == 201
    listed = await env.client.get("/v1/webhooks", headers=acme.auth)
    assert made.json()["id"] in {w["id"] for w in listed.json()["webhooks"]}
    # Without the header the operator acts in the default account, which does not see it.
    default = await env.client.get(f"/v1/webhooks/{made.json()['id']}", headers=OPERATOR)
    assert default.status_code == 404
    assert (await env.client.get("/v1/webhooks", headers=OPERATOR)).status_code == 200

    unknown = await env.client.get(
        "/v1/webhooks", headers={**OPERATOR, "Hookstream-Account": "nobody_at_all"}
    )
    assert_error(unknown, 404, "not_found", "hookstream-account")
    crossing = await env.client.get(
        "/v1/webhooks", headers={**acme.auth, "Hookstream-Account": globex.id}
    )
    assert_error(crossing, 403, "forbidden", "hookstream-account")
    # Account management is for operators: an account key finds no such routes.
    for method, path in (("GET", "/v1/accounts"), ("POST", f"/v1/accounts/{acme.id}/disable")):
        refused = await env.client.request(method, path, headers=acme.auth)
        assert refused.status_code == 404, (method, path)


async def test_a_revoked_key_is_refused_by_every_replica_within_a_second(env: Env) -> None:
    acme = await tenant(env, "Acme keys")
    other_replica = create_app(env.settings, env.store, env.producer)
    transport = httpx.ASGITransport(app=other_replica)
    async with httpx.AsyncClient(transport=transport, base_url="http://api2") as second:
        assert (await second.get("/v1/webhooks", headers=acme.auth)).status_code == 200
        listed = await env.client.get("/v1/keys", headers=acme.auth)
        assert [k["id"] for k in listed.json()["keys"]] == [acme.key_id]
        assert "key" not in listed.json()["keys"][0]

        revoked_at = time.monotonic()
        assert (
            await env.client.delete(f"/v1/keys/{acme.key_id}", headers=acme.auth)
        ).status_code == 204
        refused = await second.get("/v1/webhooks", headers=acme.auth)
        elapsed = time.monotonic() - revoked_at
        assert refused.status_code == 401
        assert elapsed < 1.0, elapsed
        again = await env.client.delete(f"/v1/keys/{acme.key_id}", headers=OPERATOR)
        assert again.status_code == 404  # the operator acts in the default account here


async def test_a_disabled_account_is_refused_and_can_be_enabled_again(env: Env) -> None:
    acme = await tenant(env, "Acme off")
    off = await env.client.post(
        f"/v1/accounts/{acme.id}/disable", json={"reason": "unpaid"}, headers=OPERATOR
    )
    assert off.status_code == 200
    assert off.json()["active"] is False and off.json()["disabled_reason"] == "unpaid"

    async def refused() -> bool:
        response = await env.client.get("/v1/webhooks", headers=acme.auth)
        return response.status_code == 403 and response.json()["error"]["type"] == (
            "account_disabled"
        )

    started = time.monotonic()
    while not await refused():
        assert time.monotonic() - started < 1.5, "still accepted after the account's cache TTL"
        await asyncio.sleep(0.05)
    on = await env.client.post(f"/v1/accounts/{acme.id}/enable", headers=OPERATOR)
    assert on.status_code == 200 and on.json()["active"] is True
    started = time.monotonic()
    while (await env.client.get("/v1/webhooks", headers=acme.auth)).status_code != 200:
        assert time.monotonic() - started < 1.5
        await asyncio.sleep(0.05)
    default_off = await env.client.post("/v1/accounts/default/disable", headers=OPERATOR)
    assert_error(default_off, 422, "validation_error", "id")


async def test_accounts_admin_routes(env: Env) -> None:
    made = await env.client.post(
        "/v1/accounts",
        json={"name": "Initech", "id": "initech-" + uuid.uuid4().hex[:6]},
        headers=OPERATOR,
    )
    assert made.status_code == 201, made.text
    account = made.json()
    assert account["active"] is True and account["max_webhooks"] == 100
    again = await env.client.post(
        "/v1/accounts", json={"name": "Initech", "id": account["id"]}, headers=OPERATOR
    )
    assert_error(again, 409, "conflict", "id")
    bad = await env.client.post(
        "/v1/accounts", json={"name": "x", "id": "Not.An.Id"}, headers=OPERATOR
    )
    assert_error(bad, 422, "validation_error", "id")
    listed = await env.client.get("/v1/accounts", headers=OPERATOR)
    ids = [a["id"] for a in listed.json()["accounts"]]
    assert "default" in ids and account["id"] in ids
    patched = await env.client.patch(
        f"/v1/accounts/{account['id']}", json={"max_webhooks": 7}, headers=OPERATOR
    )
    assert patched.json()["max_webhooks"] == 7 and patched.json()["name"] == "Initech"
    assert (await env.client.get(f"/v1/accounts/{account['id']}", headers=OPERATOR)).json() == (
        patched.json()
    )


async def test_an_account_has_at_most_its_webhook_limit(env: Env) -> None:
    small = await tenant(env, "Small", max_webhooks=2)
    await hook(env, small)
    await hook(env, small)
    third = await env.client.post("/v1/webhooks", json=seed_body(), headers=small.auth)
    assert_error(third, 409, "webhook_limit", None)
    assert "limit of 2 webhooks" in third.json()["error"]["message"]
    other = await tenant(env, "Other")
    await hook(env, other)  # the limit is per account


async def test_a_key_past_its_rate_gets_429_with_retry_after(env: Env) -> None:
    limited = env.settings.model_copy(
        update={"api": ApiSettings(allow_http=True, rate_limit=0.5, rate_burst=3)}  # type: ignore[call-arg]
    )
    app = create_app(limited, env.store, env.producer)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://x") as c:
        codes = [(await c.get("/v1/event-types", headers=OPERATOR)).status_code for _ in range(4)]
        assert codes == [200, 200, 200, 429]
        refused = await c.get("/v1/event-types", headers=OPERATOR)
        assert_error(refused, 429, "rate_limited", None)
        assert int(refused.headers["retry-after"]) >= 1
        # Another key has its own bucket.
        acme = await tenant(env, "Acme rate")
        assert (await c.get("/v1/event-types", headers=acme.auth)).status_code == 200
