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
import orjson
import pytest
from standardwebhooks import Webhook as StandardWebhook
from standardwebhooks.webhooks import WebhookVerificationError

from app.settings import Settings
from app.topics import Topics
from tests.support import (
    Received,
    Receiver,
    event,
    eventually,
    pipeline_settings,
    produce_events,
    read_topic,
    running,
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
    async with running(settings) as run:
        yield Pipeline(settings, run.receiver, run.api)


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


def lifecycle_events(pipeline: Pipeline, webhook_id: str) -> list[tuple[dict[str, Any], str]]:
    """(event, hookstream-account header) of every operator event about ``webhook_id``."""
    topic = Topics.from_settings(pipeline.settings).lifecycle
    out = []
    for message in read_topic(pipeline.settings, topic, timeout=5):
        value = orjson.loads(message.value())
        if value["data"]["webhook_id"] == webhook_id:
            headers = dict(message.headers() or [])
            out.append((value, headers.get("hookstream-account", b"").decode()))
    return out


async def lifecycle_types(pipeline: Pipeline, webhook_id: str, *wanted: str) -> list[str]:
    async def probe() -> list[str] | None:
        types = [e["type"] for e, _ in lifecycle_events(pipeline, webhook_id)]
        return types if all(t in types for t in wanted) else None

    return await eventually(probe, timeout=30, what=f"operator events {wanted}")


async def webhook_state(pipeline: Pipeline, webhook_id: str) -> dict[str, Any]:
    response = await pipeline.api.get(f"/v1/webhooks/{webhook_id}")
    assert response.status_code == 200, response.text
    result: dict[str, Any] = response.json()
    return result


async def test_a_410_disables_at_once_and_re_enabling_offers_recovery(pipeline: Pipeline) -> None:
    pipeline.receiver.script["/gone"] = [410, 200]
    webhook = await pipeline.webhook("/gone")
    first = event()
    await delivered(pipeline, "/gone", first)

    async def disabled() -> dict[str, Any] | None:
        state = await webhook_state(pipeline, webhook["id"])
        return state if not state["active"] else None

    state = await eventually(disabled, timeout=15, what="the webhook to be disabled")
    assert "410" in state["disabled_reason"] and state["disabled_at"]
    assert state["health"]["consecutive_failures"] == 1
    assert state["health"]["last_status_code"] == 410

    # A later event does not match it any more: the other webhooks of the pipeline get it,
    # this one has no delivery of it and no request.
    later = event()
    await delivered(pipeline, "/rotate", later)

    async def recorded() -> list[dict[str, Any]] | None:
        response = await pipeline.api.get(f"/v1/events/{later['id']}/deliveries")
        items: list[dict[str, Any]] = response.json().get("deliveries", [])
        return items if any(d["status"] == "success" for d in items) else None

    assert webhook["id"] not in {d["webhook_id"] for d in await eventually(recorded)}
    assert not any(later["id"].encode() in r.body for r in pipeline.receiver.at("/gone"))

    # Re-enabling answers how to recover what failed; recovering redelivers the 410'd one.
    enabled = await pipeline.api.patch(f"/v1/webhooks/{webhook['id']}", json={"active": True})
    assert enabled.status_code == 200, enabled.text
    body = enabled.json()
    assert body["active"] is True and "disabled_reason" not in body
    hint = body["recover"]
    assert hint["path"] == f"/v1/webhooks/{webhook['id']}/recover"
    # From the first failure of the streak (the 410'd delivery), which is before the disable.
    assert hint["body"]["since"] <= state["disabled_at"]
    recovered = await pipeline.api.post(hint["path"], json=hint["body"])
    assert recovered.status_code == 202 and recovered.json()["count"] == 1, recovered.text
    await eventually(
        lambda: (
            len([r for r in pipeline.receiver.at("/gone") if first["id"].encode() in r.body]) == 2
        ),
        timeout=15,
        what="the recovered delivery",
    )

    types = await lifecycle_types(
        pipeline, webhook["id"], "delivery.exhausted", "webhook.disabled", "webhook.enabled",
        "delivery.recovered",
    )  # fmt: skip
    assert types.index("webhook.disabled") < types.index("webhook.enabled")
    events = {e["type"]: (e, account) for e, account in lifecycle_events(pipeline, webhook["id"])}
    disabled_event, account = events["webhook.disabled"]
    assert account == "default" and disabled_event["data"]["account_id"] == "default"
    assert set(disabled_event) == {"id", "type", "created_at", "data"}
    assert disabled_event["data"]["automatic"] is True and "410" in disabled_event["data"]["reason"]
    exhausted = events["delivery.exhausted"][0]["data"]
    assert exhausted["event_id"] == first["id"] and exhausted["status_code"] == 410
    assert events["delivery.recovered"][0]["data"]["event_id"] == first["id"]
    assert events["webhook.enabled"][0]["data"]["recover"] == hint


async def test_a_webhook_failing_for_the_whole_period_is_disabled(pipeline: Pipeline) -> None:
    # disable_after is compressed to 3 s; the retry schedule is 0, 1, 2, 3, 4 s: the 4th
    # attempt (6 s after the first) finds every attempt failed for longer than the period.
    pipeline.receiver.script["/down"] = [500]
    healthy = await pipeline.webhook("/up")
    webhook = await pipeline.webhook("/down")
    sent = event()
    produce_events(pipeline.settings, [sent])

    async def disabled() -> dict[str, Any] | None:
        state = await webhook_state(pipeline, webhook["id"])
        return state if not state["active"] else None

    state = await eventually(disabled, timeout=30, what="the failing webhook disabled")
    assert state["disabled_reason"].startswith("every attempt failed for 3s")
    health = (await pipeline.api.get(f"/v1/webhooks/{webhook['id']}/health")).json()
    assert health["success_rate"] == 0.0 and health["last_success_at"] is None
    assert health["consecutive_failures"] >= 3 and health["failing_since"] is not None
    await lifecycle_types(pipeline, webhook["id"], "webhook.disabled")

    # Its retry still scheduled when it was disabled ends cancelled, with the reason.
    async def cancelled() -> dict[str, Any] | None:
        response = await pipeline.api.get(f"/v1/events/{sent['id']}/deliveries")
        items = [
            d for d in response.json().get("deliveries", []) if d["webhook_id"] == webhook["id"]
        ]
        return items[0] if items and items[0]["status"] == "cancelled" else None

    delivery = await eventually(cancelled, timeout=20, what="the pending retry cancelled")
    assert delivery["error"] == "webhook disabled: " + state["disabled_reason"]
    attempts = [r for r in pipeline.receiver.at("/down") if sent["id"].encode() in r.body]
    assert len(attempts) == delivery["attempts"] and 3 <= len(attempts) <= 4

    # The healthy webhook beside it stays enabled, its health says so.
    await delivered(pipeline, "/up", event())

    async def healthy_health() -> dict[str, Any] | None:
        body: dict[str, Any] = (
            await pipeline.api.get(f"/v1/webhooks/{healthy['id']}/health")
        ).json()
        return body if body["success_rate"] == 1.0 else None

    good = await eventually(healthy_health, timeout=10, what="the healthy webhook's health")
    assert good["consecutive_failures"] == 0 and good["last_success_at"] is not None
    assert (await webhook_state(pipeline, healthy["id"]))["active"] is True


async def test_rotation_and_pausing_are_announced_on_the_lifecycle_topic(
    pipeline: Pipeline,
) -> None:
    webhook = await pipeline.webhook("/announced")
    rotated = await pipeline.api.post(f"/v1/webhooks/{webhook['id']}/secret/rotate")
    assert rotated.status_code == 200
    paused = await pipeline.api.patch(f"/v1/webhooks/{webhook['id']}", json={"active": False})
    assert paused.status_code == 200 and "recover" not in paused.json()
    await lifecycle_types(pipeline, webhook["id"], "webhook.secret_rotated", "webhook.disabled")
    events = {e["type"]: e for e, _ in lifecycle_events(pipeline, webhook["id"])}
    rotation = events["webhook.secret_rotated"]
    assert (
        rotation["data"]["previous_secrets_expire_at"]
        == (rotated.json()["previous_secrets_expire_at"])
    )
    assert rotated.json()["secret"] not in orjson.dumps(rotation).decode()
    assert webhook["secret"] not in orjson.dumps(rotation).decode()
    assert events["webhook.disabled"]["data"]["automatic"] is False


async def test_operator_events_are_delivered_to_a_webhook_subscribed_to_them(
    pipeline: Pipeline,
) -> None:
    operator = await pipeline.webhook("/operator", events=["hookstream.webhook.disabled"])
    everything = await pipeline.webhook("/everything", events=["*"])
    pipeline.receiver.script["/gone-too"] = [410]
    webhook = await pipeline.webhook("/gone-too")
    await delivered(pipeline, "/gone-too", event())

    def disabled_notice() -> Received | None:
        for request in pipeline.receiver.at("/operator"):
            body = orjson.loads(request.body)
            if body["data"]["webhook_id"] == webhook["id"]:
                return request
        return None

    request = await eventually(disabled_notice, timeout=20, what="the operator's notice")
    body = orjson.loads(request.body)
    assert body["type"] == "hookstream.webhook.disabled" and "410" in body["data"]["reason"]
    assert set(body) == {"id", "type", "created_at", "data"}
    # Signed like any delivery, with the operator webhook's own secret.
    assert seed_ok(request, operator["secret"])
    assert standard_ok(request, StandardWebhook(operator["secret"]))

    # A customer's "*" never gets operator events: once the notice's deliveries are
    # recorded, the "*" webhook has none of it.
    async def recorded() -> list[dict[str, Any]] | None:
        response = await pipeline.api.get(f"/v1/events/{body['id']}/deliveries")
        items: list[dict[str, Any]] = response.json().get("deliveries", [])
        return items if any(d["status"] == "success" for d in items) else None

    deliveries = await eventually(recorded, timeout=15, what="the notice's delivery log")
    assert {d["webhook_id"] for d in deliveries} == {operator["id"]}
    assert everything["id"] not in {d["webhook_id"] for d in deliveries}
    assert not any(body["id"].encode() in r.body for r in pipeline.receiver.at("/everything"))


async def test_custom_headers_reach_the_receiver_and_are_redacted_in_the_log(
    pipeline: Pipeline,
) -> None:
    refused = await pipeline.api.post(
        "/v1/webhooks",
        json={
            "url": pipeline.receiver.url("/custom"),
            "events": ["user.created"],
            "headers": {"X-Webhook-Signature": "forged"},
        },
    )
    assert refused.status_code == 422, refused.text
    assert refused.json()["error"]["field"] == "headers.X-Webhook-Signature"
    webhook = await pipeline.webhook(
        "/custom", headers={"Authorization": "Bearer endpoint-token", "X-Tenant": "acme"}
    )
    assert webhook["headers"] == {"Authorization": "Bearer endpoint-token", "X-Tenant": "acme"}
    sent = event()
    request = await delivered(pipeline, "/custom", sent)
    assert request.headers["Authorization"] == "Bearer endpoint-token"
    assert request.headers["X-Tenant"] == "acme"
    assert seed_ok(request, webhook["secret"])

    async def logged() -> dict[str, Any] | None:
        response = await pipeline.api.get(f"/v1/events/{sent['id']}/deliveries")
        mine = [
            d for d in response.json().get("deliveries", []) if d["webhook_id"] == webhook["id"]
        ]
        if not mine or mine[0]["status"] != "success":
            return None
        detail: dict[str, Any] = (await pipeline.api.get(f"/v1/deliveries/{mine[0]['id']}")).json()
        return detail

    detail = await eventually(logged, timeout=15, what="the delivery's attempt log")
    sent_headers = detail["attempt_log"][0]["request_headers"]
    assert (
        sent_headers["Authorization"] == "[redacted]" and sent_headers["X-Tenant"] == "[redacted]"
    )
    assert "endpoint-token" not in orjson.dumps(detail).decode()
    # PATCH replaces them; {} removes them all.
    patched = await pipeline.api.patch(f"/v1/webhooks/{webhook['id']}", json={"headers": {}})
    assert patched.status_code == 200 and "headers" not in patched.json()


async def test_a_rate_limited_webhook_gets_every_delivery_spaced_at_its_rate(
    pipeline: Pipeline,
) -> None:
    webhook = await pipeline.webhook("/limited", events=["project.created"], rate_limit=2)
    assert webhook["rate_limit"] == 2
    sent = [event("project.created") for _ in range(8)]
    produce_events(pipeline.settings, sent)
    ids = {e["id"].encode() for e in sent}

    def arrived() -> list[Received] | None:
        got = [r for r in pipeline.receiver.at("/limited") if any(i in r.body for i in ids)]
        return got if len(got) == len(sent) else None

    requests = await eventually(arrived, timeout=30, what="all 8 rate-limited deliveries")
    times = sorted(r.at for r in requests)
    # A bucket of 2 tokens refilled at 2/s lets at most 2 + 2t through in any t seconds: the
    # 8 take at least 3 s, and any 5 in a row at least 1.5 s (less a little for the clocks).
    assert times[-1] - times[0] >= 2.8, times
    assert all(times[i + 4] - times[i] >= 1.3 for i in range(len(times) - 4)), times
    cleared = await pipeline.api.patch(f"/v1/webhooks/{webhook['id']}", json={"rate_limit": None})
    assert cleared.status_code == 200 and "rate_limit" not in cleared.json()
    refused = await pipeline.api.patch(f"/v1/webhooks/{webhook['id']}", json={"rate_limit": 0})
    assert refused.status_code == 422
