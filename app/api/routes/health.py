"""Liveness, readiness and metrics: no authentication (probes and scrapers call them)."""

from __future__ import annotations

import asyncio
from typing import Any, Protocol

from fastapi import APIRouter, Request, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from app.accounts import DEFAULT_ACCOUNT
from app.api.errors import error_response, error_responses
from app.api.metrics import ApiMetrics
from app.api.ports import StorePort
from app.api.schemas import Health, Readiness

router = APIRouter(tags=["health"])

PROBE_TIMEOUT_S = 3.0


class Probe(Protocol):
    """One backing service's readiness check: returns if it answered, raises otherwise."""

    async def __call__(self) -> None: ...


@router.get("/healthz", response_model=Health, summary="Liveness")
async def healthz() -> Health:
    return Health(status="ok")


@router.get(
    "/readyz",
    response_model=Readiness,
    responses=error_responses(503),
    summary="Readiness: Kafka and Cassandra answer",
    description="200 when Kafka returned metadata (with Hookstream's topics) and Cassandra "
    "answered a query; otherwise 503 whose message names what failed.",
)
async def readyz(request: Request) -> Readiness | Response:
    probes: dict[str, Probe] = request.app.state.probes
    names = list(probes)
    results = await asyncio.gather(*(_run(probes[n]) for n in names))
    report = dict(zip(names, results, strict=True))
    if all(r == "ok" for r in results):
        return Readiness(status="ok", kafka=report["kafka"], cassandra=report["cassandra"])
    failed = "; ".join(f"{n}: {r}" for n, r in report.items() if r != "ok")
    return error_response(503, f"not ready: {failed}")


async def _run(probe: Probe) -> str:
    try:
        await asyncio.wait_for(probe(), PROBE_TIMEOUT_S)
    except TimeoutError:
        return f"no answer within {PROBE_TIMEOUT_S:g}s"
    except Exception as exc:
        return f"{type(exc).__name__}: {exc}"[:300]
    return "ok"


@router.get(
    "/metrics",
    response_class=Response,
    summary="Prometheus metrics",
    responses={200: {"content": {CONTENT_TYPE_LATEST: {}}, "description": "Prometheus text."}},
)
async def metrics(request: Request) -> Response:
    api_metrics: ApiMetrics = request.app.state.metrics
    return Response(generate_latest(api_metrics.registry), media_type=CONTENT_TYPE_LATEST)


def cassandra_probe(store: StorePort) -> Probe:
    async def probe() -> None:
        await store.webhooks.list_page(1, None, DEFAULT_ACCOUNT)

    return probe


def kafka_probe(config: str | dict[str, Any], required_topics: list[str]) -> Probe:
    """Ask Kafka for metadata (in a thread: the client call blocks) and check the topics.

    ``config``: the AdminClient's config (``app.kafka.client_config``), or bootstrap servers.
    """
    from confluent_kafka.admin import AdminClient

    admin: list[AdminClient] = []

    def blocking() -> None:
        if not admin:
            admin.append(
                AdminClient(config if isinstance(config, dict) else {"bootstrap.servers": config})
            )
        topics = admin[0].list_topics(timeout=PROBE_TIMEOUT_S).topics
        missing = [t for t in required_topics if t not in topics]
        if missing:
            raise RuntimeError(f"topics missing (run migrate): {', '.join(missing)}")

    async def probe() -> None:
        await asyncio.to_thread(blocking)

    return probe
