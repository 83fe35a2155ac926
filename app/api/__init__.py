"""⑥ The read/write API (FastAPI): webhook management and delivery logs.

app.py          create_app(settings, store, producer): routers, error handlers, metrics
main.py         build_app(settings): the same app, connecting from settings in its lifespan
routes/         webhooks, deliveries (logs, retry, recover), events, health + metrics
schemas.py      public shapes (Create / Update / Public), never storage rows
validation.py   webhook fields checked against settings (URL policy, catalogue, secret)
publish.py      webhook change notices and attempt messages to Kafka
auth.py         Bearer API keys, checked in constant time before the body is read
errors.py       the one error shape {"error": {type, message, field}} and its handlers
deps.py         named dependencies (SettingsDep, StoreDep, ProducerDep, WebhookDep, …)
paging.py       limit / cursor / time-range query parameters
ports.py        the store and producer methods the API uses (structural types)
metrics.py      request counts and latency by route template
"""

from app.api.app import create_app

__all__ = ["create_app"]
