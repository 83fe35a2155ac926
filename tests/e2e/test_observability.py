"""Metrics and logs after real deliveries: the counts add up, every delivery line carries its
ids, and no secret or signature reaches a log."""

from __future__ import annotations

import os
import uuid

import httpx
import orjson
import pytest
from prometheus_client.parser import text_string_to_metric_families

from app.settings import Settings
from tests.support import (
    API_KEY,
    Receiver,
    Role,
    api_ready,
    event,
    eventually,
    free_port,
    pipeline_settings,
    prepare,
    produce_events,
)

pytestmark = [pytest.mark.e2e, pytest.mark.integration]


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    out = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            out[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return out


def niceness(role: Role) -> set[int]:
    """The niceness of every thread of a role's process."""
    assert role.proc is not None
    tasks = os.listdir(f"/proc/{role.proc.pid}/task")
    return {os.getpriority(os.PRIO_PROCESS, int(t)) for t in tasks}


async def test_metrics_count_real_deliveries_and_logs_keep_secrets_out(
    stack_settings: Settings,
) -> None:
    settings = pipeline_settings(
        stack_settings, uuid.uuid4().hex[:10], worker={"metrics_port": free_port()}
    )
    settings = settings.model_copy(
        update={"scheduler": settings.scheduler.model_copy(update={"metrics_port": free_port()})}
    )
    prepare(settings)
    receiver = Receiver()
    receiver.script["/fails"] = [500]
    await receiver.start()
    names = ("api", "worker", "scheduler", "recorder")
    roles = [Role(name, settings).start() for name in names]
    api = httpx.AsyncClient(
        base_url=f"http://127.0.0.1:{settings.api.port}",
        headers={"Authorization": f"Bearer {API_KEY}"},
        trust_env=False,
    )
    try:
        await eventually(lambda: api_ready(api), timeout=90, what="the API")
        secrets = []
        for path, types in (("/ok", ["user.created"]), ("/fails", ["user.deleted"])):
            response = await api.post(
                "/v1/webhooks", json={"url": receiver.url(path), "events": types}
            )
            assert response.status_code == 201, response.text
            secrets.append(response.json()["secret"])
        produce_events(
            settings, [event("user.created") for _ in range(3)] + [event("user.deleted")]
        )
        await eventually(
            lambda: len(receiver.at("/ok")) == 3 and len(receiver.at("/fails")) == 5,
            timeout=60,
            what="3 successes and 5 failing attempts",
        )
        metrics_url = f"http://127.0.0.1:{settings.worker.metrics_port}/metrics"

        async def scraped() -> dict[tuple[str, tuple[tuple[str, str], ...]], float] | None:
            async with httpx.AsyncClient(trust_env=False) as client:
                found = samples((await client.get(metrics_url)).text)
            done = found.get(("hookstream_deliveries_total", (("status", "failed"),)), 0)
            return found if done == 1 else None

        found = await eventually(scraped, timeout=30, what="the failed delivery counted")
        assert found[("hookstream_deliveries_total", (("status", "success"),))] == 3
        assert found[("hookstream_attempts_total", (("outcome", "success"),))] == 3
        assert found[("hookstream_attempts_total", (("outcome", "failed"),))] == 5
        assert found[("hookstream_dead_letters_total", (("reason", "exhausted"),))] == 1
        assert found[("hookstream_webhooks_known", ())] == 2
        assert found[("hookstream_event_to_first_attempt_seconds_count", ())] == 4
        assert found[("hookstream_events_total", (("result", "matched"),))] == 4

        async def lag_reported() -> dict[tuple[str, tuple[tuple[str, str], ...]], float] | None:
            async with httpx.AsyncClient(trust_env=False) as client:
                now = samples((await client.get(metrics_url)).text)
            events = [
                v
                for (name, labels), v in now.items()
                if name == "hookstream_consumer_lag"
                and dict(labels)["topic"] == settings.kafka.events_topic
            ]
            return now if len(events) == settings.kafka.partitions else None

        lagged = await eventually(lag_reported, timeout=30, what="consumer lag per partition")
        assert all(v == 0 for (name, _), v in lagged.items() if name == "hookstream_consumer_lag")

        async with httpx.AsyncClient(trust_env=False) as client:
            port = settings.scheduler.metrics_port
            scheduler = samples((await client.get(f"http://127.0.0.1:{port}/metrics")).text)
        assert scheduler[("hookstream_retries_forwarded_total", ())] == 4

        # The log yields the CPU to the delivery path (app.priority): every recorder thread
        # at the setting's niceness, the worker's as started.
        ours = os.getpriority(os.PRIO_PROCESS, 0)  # what the roles were started with
        assert {name: niceness(role) for name, role in zip(names, roles, strict=True)} == {
            "api": {ours},
            "worker": {ours},
            "scheduler": {ours},
            "recorder": {max(ours, settings.recorder.nice)},
        }

        api_metrics = samples((await api.get("/metrics")).text)
        created = (
            "hookstream_api_requests_total",
            (("method", "POST"), ("route", "/v1/webhooks"), ("status", "201")),
        )
        assert api_metrics[created] == 2
    finally:
        await api.aclose()
        for role in roles:
            await role.astop()
        await receiver.stop()

    signatures = {r.headers["X-Webhook-Signature"] for r in receiver.requests}
    signatures |= {r.headers["webhook-signature"].split(",", 1)[1] for r in receiver.requests}
    for role in roles:
        log = role.log()
        for secret in secrets:
            assert secret not in log and secret.removeprefix("whsec_") not in log, role.role
        for signature in signatures:
            assert signature not in log, role.role
        assert API_KEY not in log, role.role
    delivery_lines = [
        orjson.loads(line)
        for line in roles[1].log().splitlines()
        if line.startswith("{") and '"logger":"app.worker.deliver"' in line
    ]
    assert len(delivery_lines) >= 5  # 4 retries scheduled, 1 failed (successes log at DEBUG)
    for line in delivery_lines:
        assert {"event_id", "webhook_id", "delivery_id", "attempt"} <= set(line), line
