"""Accounts end to end, through real Kafka, Cassandra, role processes and receivers: two
accounts with webhooks on the same types and wildcards each receive exactly their own events;
events naming an unknown, malformed or disabled account are dead-lettered with the reason; the
default account still works with no header at all."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from app.settings import Settings
from app.topics import Topics
from tests.support import (
    API_KEY,
    Receiver,
    event,
    eventually,
    pipeline_settings,
    produce_events,
    read_topic,
    running,
    settings_env,
)

pytestmark = [pytest.mark.e2e, pytest.mark.integration]


class Tenancy:
    def __init__(self, settings: Settings, receiver: Receiver, operator: httpx.AsyncClient):
        self.settings = settings
        self.receiver = receiver
        self.operator = operator  # the test's operator key, acting in the default account

    async def account(self, name: str) -> str:
        response = await self.operator.post("/v1/accounts", json={"name": name})
        assert response.status_code == 201, response.text
        account_id: str = response.json()["id"]
        return account_id

    async def webhook(self, account: str | None, path: str, events: list[str]) -> dict[str, Any]:
        headers = {"Hookstream-Account": account} if account else {}
        response = await self.operator.post(
            "/v1/webhooks",
            json={"url": self.receiver.url(path), "events": events},
            headers=headers,
        )
        assert response.status_code == 201, response.text
        result: dict[str, Any] = response.json()
        return result


@pytest.fixture(scope="module")
async def tenancy(stack_settings: Settings) -> AsyncIterator[Tenancy]:
    settings = pipeline_settings(stack_settings, uuid.uuid4().hex[:10])
    async with running(settings, ("api", "worker", "recorder")) as run:
        yield Tenancy(settings, run.receiver, run.api)


def _ids(received: list[Any]) -> list[str]:
    return [r.headers["webhook-id"] for r in received]


async def settle(tenancy: Tenancy, path: str) -> set[str]:
    """Wait until the worker knows every change published so far: a default-account probe
    event reaches ``path``, a webhook created last (the webhooks topic is one ordered
    partition, and account changes were published before it). Returns the probes' ids."""
    probes: set[str] = set()

    def arrived() -> bool:
        if probes & set(_ids(tenancy.receiver.at(path))):
            return True
        probe = event("user.created")
        probes.add(probe["id"])
        produce_events(tenancy.settings, [probe])
        return False

    await eventually(arrived, timeout=30, interval=0.5, what=f"a probe at {path}")
    return probes


async def test_each_account_receives_exactly_its_own_events(tenancy: Tenancy) -> None:
    acme, globex = await tenancy.account("Acme"), await tenancy.account("Globex")
    # The same types and wildcards in both accounts (and in the default account).
    for account, tag in ((acme, "a"), (globex, "g"), (None, "d")):
        await tenancy.webhook(account, f"/{tag}/exact", ["user.created"])
        await tenancy.webhook(account, f"/{tag}/user", ["user.*"])
        await tenancy.webhook(account, f"/{tag}/all", ["*"])
    probes = await settle(tenancy, "/d/all")

    sent: dict[str | None, list[dict[str, Any]]] = {}
    for account in (acme, globex, None):
        batch = [event("user.created"), event("payment.failed")]
        sent[account] = batch
        produce_events(tenancy.settings, batch, account=account)
    # The same event id in two accounts is two events, one per account.
    shared = event("user.created")
    produce_events(tenancy.settings, [shared], account=acme)
    produce_events(tenancy.settings, [shared], account=globex)

    expected = {
        "a": {
            "exact": [sent[acme][0]["id"], shared["id"]],
            "user": [sent[acme][0]["id"], shared["id"]],
            "all": [sent[acme][0]["id"], sent[acme][1]["id"], shared["id"]],
        },
        "g": {
            "exact": [sent[globex][0]["id"], shared["id"]],
            "user": [sent[globex][0]["id"], shared["id"]],
            "all": [sent[globex][0]["id"], sent[globex][1]["id"], shared["id"]],
        },
        "d": {
            "exact": [sent[None][0]["id"]],
            "user": [sent[None][0]["id"]],
            "all": [sent[None][0]["id"], sent[None][1]["id"]],
        },
    }

    def complete() -> bool:
        return all(
            len(tenancy.receiver.at(f"/{tag}/{name}")) >= len(ids)
            for tag, hooks in expected.items()
            for name, ids in hooks.items()
        )

    await eventually(complete, timeout=60, what="every account's deliveries")
    # Ordering proves nothing more arrives: a marker per account, after everything else.
    markers = {}
    for account, tag in ((acme, "a"), (globex, "g"), (None, "d")):
        markers[tag] = event("user.created")
        produce_events(tenancy.settings, [markers[tag]], account=account)

    def marked() -> bool:
        return all(
            markers[tag]["id"] in _ids(tenancy.receiver.at(f"/{tag}/all")) for tag in markers
        )

    await eventually(marked, timeout=30, what="the markers")
    for tag, hooks in expected.items():
        for name, ids in hooks.items():
            ignored = {markers[tag]["id"], *probes}
            got = [i for i in _ids(tenancy.receiver.at(f"/{tag}/{name}")) if i not in ignored]
            assert sorted(got) == sorted(ids), (tag, name, got)
    # The body of the shared id is each account's own event (its own data, its own bytes).
    copies = [
        [r for r in tenancy.receiver.at(path) if r.headers["webhook-id"] == shared["id"]]
        for path in ("/a/exact", "/g/exact")
    ]
    assert [len(c) for c in copies] == [1, 1]
    # One delivery per (event, webhook): distinct delivery ids for the two accounts' copies.
    assert copies[0][0].headers["X-Webhook-Id"] != copies[1][0].headers["X-Webhook-Id"]


async def test_events_of_unknown_bad_or_disabled_accounts_are_dead_lettered(
    tenancy: Tenancy,
) -> None:
    gone = await tenancy.account("Soon disabled")
    await tenancy.webhook(gone, "/gone", ["*"])
    disabled = await tenancy.operator.post(
        f"/v1/accounts/{gone}/disable", json={"reason": "unpaid"}
    )
    assert disabled.status_code == 200 and disabled.json()["active"] is False
    await tenancy.webhook(None, "/watcher", ["user.created"])
    await settle(tenancy, "/watcher")  # the worker has heard of the disabling by now

    unknown, disabled_event, bad = event(), event(), event()
    produce_events(tenancy.settings, [unknown], account="nobody_here")
    produce_events(tenancy.settings, [disabled_event], account=gone)
    produce_events(tenancy.settings, [bad], account="Not An Id!")
    after = event()
    produce_events(tenancy.settings, [after])  # no header: the default account
    await eventually(
        lambda: after["id"] in _ids(tenancy.receiver.at("/watcher")),
        timeout=30,
        what="the default account's event",
    )
    assert tenancy.receiver.at("/gone") == []

    topics = Topics.from_settings(tenancy.settings)

    def reasons() -> dict[str, bytes] | None:
        found: dict[str, bytes] = {}
        for message in read_topic(tenancy.settings, topics.dead):
            for sent in (unknown, disabled_event, bad):
                if sent["id"].encode() in (message.value() or b""):
                    found[sent["id"]] = dict(message.headers() or [])["hs-reason"]
        return found if len(found) == 3 else None

    found = await eventually(reasons, timeout=30, what="three dead letters")
    assert found == {
        unknown["id"]: b"unknown_account",
        disabled_event["id"]: b"account_disabled",
        bad["id"]: b"bad_account",
    }


def hookstream(settings: Settings, *args: str) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        **settings_env(settings),
        "HOOKSTREAM_API_URL": f"http://127.0.0.1:{settings.api.port}",
        "HOOKSTREAM_API_KEY": API_KEY,
    }
    return subprocess.run(
        [sys.executable, "-m", "app.cli", *args],
        check=False,
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )


async def test_the_cli_manages_accounts_and_their_keys(tenancy: Tenancy) -> None:
    account_id = "cli-" + uuid.uuid4().hex[:8]
    made = await asyncio.to_thread(
        hookstream, tenancy.settings, "accounts", "create", "From the CLI", "--id", account_id
    )
    assert made.returncode == 0, made.stderr
    assert json.loads(made.stdout)["id"] == account_id
    listed = await asyncio.to_thread(hookstream, tenancy.settings, "accounts", "list")
    assert account_id in {a["id"] for a in json.loads(listed.stdout)["accounts"]}

    key = await asyncio.to_thread(
        hookstream, tenancy.settings, "apikey", "create", "--account", account_id
    )
    assert key.returncode == 0, key.stderr
    plain = key.stdout.strip()
    assert plain.startswith("hsk_") and plain not in key.stderr
    own = httpx.AsyncClient(
        base_url=f"http://127.0.0.1:{tenancy.settings.api.port}",
        headers={"Authorization": f"Bearer {plain}"},
        trust_env=False,
    )
    async with own:
        assert (await own.get("/v1/webhooks")).status_code == 200
        keys = await asyncio.to_thread(
            hookstream, tenancy.settings, "apikey", "list", "--account", account_id
        )
        [line] = keys.stdout.strip().splitlines()
        key_id = line.split()[0]
        assert key_id.startswith("key_") and plain[:8] in line and plain not in line
        revoked = await asyncio.to_thread(hookstream, tenancy.settings, "apikey", "revoke", key_id)
        assert revoked.returncode == 0, revoked.stderr
        assert (await own.get("/v1/webhooks")).status_code == 401

    nobody = await asyncio.to_thread(
        hookstream, tenancy.settings, "apikey", "create", "--account", "no-such-account"
    )
    assert nobody.returncode == 1 and "no account" in nobody.stderr
    off = await asyncio.to_thread(hookstream, tenancy.settings, "accounts", "disable", account_id)
    assert off.returncode == 0 and json.loads(off.stdout)["active"] is False
