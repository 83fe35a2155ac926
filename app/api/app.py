"""⑥ The FastAPI application: ``create_app(settings, store, producer)``.

Everything it talks to is passed in (no connection opens here or at import); ``app.api.main``
adds the lifespan that connects from settings for the ``hookstream api`` role.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from contextlib import AbstractAsyncContextManager

from fastapi import FastAPI, Security

from app.api.auth import ApiKeyAuth, AuthenticatedRoute, bearer_scheme
from app.api.errors import install_error_handlers
from app.api.limits import BodyLimit
from app.api.metrics import ApiMetrics, MetricsMiddleware
from app.api.ports import ProducerPort, StorePort
from app.api.ratelimit import RateLimiter
from app.api.routes import accounts, deliveries, events, health, replays, webhooks
from app.api.routes.health import Probe, cassandra_probe, kafka_probe
from app.console import routes as console
from app.kafka import client_config
from app.settings import Settings
from app.topics import Topics

DESCRIPTION = """\
Webhook management and delivery logs for Hookstream.

Every `/v1` route needs `Authorization: Bearer <API key>`. Every 4xx and 5xx response has the
body `{"error": {"type", "message", "field"}}`; `field` names the offending request field
(`url`, `events[0]`, `limit`, `cursor`, …) or is null. Values echoed in a message are cut to
64 characters. A request body over `HOOKSTREAM_API__MAX_BODY_BYTES` (1 MiB by default) gets 413,
unread.

Secrets: `POST /v1/webhooks` returns the webhook's `secret`; other reads omit it, and
`GET /v1/webhooks/{id}/secret` returns it.
"""


# Each carries its full /v1/... prefix, so route templates (metrics labels) are complete.
V1_ROUTERS = (
    webhooks.router,
    deliveries.webhook_router,
    deliveries.router,
    events.router,
    accounts.router,
    accounts.keys_router,
    replays.router,
)


def create_app(
    settings: Settings,
    store: StorePort,
    producer: ProducerPort,
    *,
    probes: Mapping[str, Probe] | None = None,
) -> FastAPI:
    """The API over an already connected store and producer (the caller closes them)."""
    app = build(settings, lifespan=None)
    attach(app, store, producer, probes)
    return app


def attach(
    app: FastAPI,
    store: StorePort,
    producer: ProducerPort,
    probes: Mapping[str, Probe] | None = None,
) -> None:
    """Give the app its store and producer (at creation, or from a lifespan)."""
    settings: Settings = app.state.settings
    app.state.store = store
    app.state.producer = producer
    app.state.auth = ApiKeyAuth(
        settings.api_keys,
        store.api_keys,
        store.accounts,
        RateLimiter(settings.api.rate_limit, settings.api.rate_burst),
    )
    topics: Topics = app.state.topics
    app.state.probes = dict(
        probes
        or {
            "kafka": kafka_probe(client_config(settings), [topics.webhooks, topics.deliveries]),
            "cassandra": cassandra_probe(store),
        }
    )


def build(
    settings: Settings,
    lifespan: Callable[[FastAPI], AbstractAsyncContextManager[None]] | None,
) -> FastAPI:
    """The app without its store and producer; ``attach`` (or a lifespan calling it) adds them."""
    app = FastAPI(
        title="Hookstream",
        version="0.1.0",
        description=DESCRIPTION,
        lifespan=lifespan,
        # /docs and /redoc are the console's (app.console), on locally served assets.
        docs_url=None,
        redoc_url=None,
        redirect_slashes=False,
        # No OpenTelemetry here (metrics are Prometheus, app.api.metrics); FastAPI otherwise
        # looks for a configured provider in os.environ on every request.
        telemetry={"tracing": False, "metrics": False, "logs": False},
    )
    app.state.settings = settings
    app.state.topics = Topics.from_settings(settings)
    app.state.metrics = ApiMetrics()
    install_error_handlers(app)
    app.add_middleware(BodyLimit, limit=settings.api.max_body_bytes)
    app.add_middleware(MetricsMiddleware, metrics=app.state.metrics)  # outermost: counts 413s

    for router in V1_ROUTERS:
        # Authentication lives in the route class; a /v1 route without it would be open.
        if not all(isinstance(r, AuthenticatedRoute) for r in router.routes):
            raise RuntimeError(f"{router.prefix}: every /v1 route must be an AuthenticatedRoute")
        # Security(bearer_scheme) documents the scheme; AuthenticatedRoute enforces it.
        app.include_router(router, dependencies=[Security(bearer_scheme)])
    app.include_router(health.router)
    console.install(app)
    return app
