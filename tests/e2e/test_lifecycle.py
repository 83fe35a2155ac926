"""A webhook's life against the real pipeline (API, worker, scheduler, recorder on real Kafka,
Cassandra and HTTP receivers), with compressed periods: secret rotation with dual signatures,
auto-disable (410 Gone at once, all-failing for ``disable_after``), and the operator events
on the lifecycle topic."""

from __future__ import annotations

import hashlib
import hmac
import time
import uuid
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import httpx
import pytest
from standardwebhooks import Webhook as StandardWebhook
from standardwebhooks.webhooks import WebhookVerificationError

from app.settings import Settings
from tests.support import (
    Received,
    Receiver,
    Role,
    api_client,
    api_ready,
    event,
    eventually,
    pipeline_settings,
    prepare,
    produce_events,
)

pytestmark = [pytest.mark.e2e, pytest.mark.integration]

GRACE_S = 6.0


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


@pytest.fixture(scope="module")
async def pipeline(stack_settings: Settings) -> AsyncIterator[Pipeline]:
    base = pipeline_settings(stack_settings, uuid.uuid4().hex[:10])
    settings = base.model_copy(
        update={
            "lifecycle": base.lifecycle.model_copy(
                update={
                    "secret_grace": timedelta(seconds=GRACE_S),
                    "disable_after": timedelta(seconds=3),
                }
            )
        }
    )
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


def seed_ok(request: Received, secret: str, header: str = "X-Webhook-Signature") -> bool:
    """The docs' check: hex HMAC of the raw body keyed with the secret string."""
    expected = hmac.new(secret.encode(), request.body, hashlib.sha256).hexdigest()
    offered = request.headers.get(header, "").split(" ")
    return any(hmac.compare_digest(sig, expected) for sig in offered)


def standard_ok(request: Received, verifier: StandardWebhook) -> bool:
    try:
        verifier.verify(request.body, request.headers)
    except WebhookVerificationError:
        return False
    return True


async def delivered(pipeline: Pipeline, path: str, sent: dict[str, Any]) -> Received:
    """Produce ``sent`` and await its request at ``path``."""
    produce_events(pipeline.settings, [sent])
    marker = sent["id"].encode()
    return await eventually(
        lambda: next((r for r in pipeline.receiver.at(path) if marker in r.body), None),
        timeout=30,
        what=f"{sent['id']} at {path}",
    )


async def test_rotation_signs_with_both_secrets_for_the_grace_then_only_the_new(
    pipeline: Pipeline,
) -> None:
    old = "whsec_abc123..."  # the seed's own example secret: not whsec_-base64
    webhook = await pipeline.webhook("/rotate", secret=old)
    before = await delivered(pipeline, "/rotate", event())
    assert seed_ok(before, old) and standard_ok(before, StandardWebhook(old.encode()))

    rotated_at = time.time()
    response = await pipeline.api.post(f"/v1/webhooks/{webhook['id']}/secret/rotate")
    assert response.status_code == 200, response.text
    new = response.json()["secret"]
    assert new.startswith("whsec_") and new != old
    assert len(response.json()["previous_secrets_expire_at"]) == 1
    secret = await pipeline.api.get(f"/v1/webhooks/{webhook['id']}/secret")
    assert secret.json() == {"secret": new}

    # Workers pick the rotation up from the webhooks topic: an event produced right after the
    # answer is signed with the new secret within about a second.
    async def signed_with_new() -> Received | None:
        request = await delivered(pipeline, "/rotate", event())
        return request if seed_ok(request, new) else None

    first_new = await eventually(signed_with_new, timeout=10, what="a request signed anew")
    assert first_new.at - rotated_at < 2.0, first_new.at - rotated_at
    # During the grace: a receiver holding only the new secret verifies both ways at once; one
    # holding only the old verifies webhook-signature, or the previous-signature header.
    assert standard_ok(first_new, StandardWebhook(new))
    assert standard_ok(first_new, StandardWebhook(old.encode()))
    assert seed_ok(first_new, old, "X-Webhook-Signature-Previous")
    assert not seed_ok(first_new, old)
    assert len(first_new.headers["webhook-signature"].split(" ")) == 2

    # After the grace (compressed to GRACE_S): the old secret verifies nothing any more.
    async def past_grace() -> Received | None:
        request = await delivered(pipeline, "/rotate", event())
        return request if "X-Webhook-Signature-Previous" not in request.headers else None

    after = await eventually(past_grace, timeout=GRACE_S + 15, what="the grace to end")
    assert after.at - rotated_at >= GRACE_S - 0.5
    assert seed_ok(after, new) and standard_ok(after, StandardWebhook(new))
    assert not standard_ok(after, StandardWebhook(old.encode()))
    assert len(after.headers["webhook-signature"].split(" ")) == 1


async def test_rotation_takes_a_supplied_secret_and_refuses_a_bad_one(pipeline: Pipeline) -> None:
    webhook = await pipeline.webhook("/rotate-supplied")
    bad = await pipeline.api.post(
        f"/v1/webhooks/{webhook['id']}/secret/rotate", json={"secret": "has space"}
    )
    assert bad.status_code == 422, bad.text
    good = await pipeline.api.post(
        f"/v1/webhooks/{webhook['id']}/secret/rotate", json={"secret": "my-shared-secret"}
    )
    assert good.status_code == 200 and good.json()["secret"] == "my-shared-secret"
    request = await delivered(pipeline, "/rotate-supplied", event())
    assert seed_ok(request, "my-shared-secret")
    assert standard_ok(request, StandardWebhook(b"my-shared-secret"))
    assert standard_ok(request, StandardWebhook(webhook["secret"]))  # the generated one, in grace
    missing = await pipeline.api.post("/v1/webhooks/hook_nope/secret/rotate")
    assert missing.status_code == 404
