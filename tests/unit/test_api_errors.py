"""Pure parts of the API: error field names, bearer parsing, key matching, page sizes, the
public shapes' key sets (the seed's delivery examples omit keys rather than send nulls), and
the limits on what an error echoes and how much of a body is read (the app over stand-ins for
the store and producer, driven through ASGI: no sockets)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import orjson
import pytest
from fastapi import FastAPI
from pydantic import SecretStr
from starlette.types import Message

from app.api import create_app
from app.api.auth import ApiKeyAuth, bearer_token
from app.api.errors import ECHO_CHARS, Unauthorized, echo, field_name
from app.api.paging import page_size
from app.api.schemas import DeliveryPublic, WebhookCreate, WebhookCreated, WebhookUpdate
from app.api.validation import new_webhook, updated_webhook
from app.deliveries import DeliveryStatus
from app.errors import InvalidWebhook
from app.settings import ApiSettings, Settings
from app.store.records import DeliveryRecord
from app.webhooks import Webhook

NOW = datetime(2026, 1, 15, 12, 30, tzinfo=UTC)


@pytest.mark.parametrize(
    ("loc", "name"),
    [
        (("body", "url"), "url"),
        (("query", "limit"), "limit"),
        (("path", "id"), "id"),
        (("body", "events", 0), "events[0]"),
        (("body", "metadata", "team"), "metadata.team"),
        (("body", "metadata", "team", "[key]"), "metadata.team"),
        (("body",), "body"),
        ((), None),
    ],
)
def test_field_name_from_a_validation_location(loc: tuple[int | str, ...], name: str) -> None:
    assert field_name(loc) == name


@pytest.mark.parametrize(
    ("header", "key"),
    [
        ("Bearer abc", "abc"),
        ("bearer abc", "abc"),
        ("Bearer  abc ", "abc"),
        ("Basic abc", None),
        ("Bearer", None),
        ("Bearer ", None),
        ("abc", None),
        ("", None),
        (None, None),
        ("Bearer a b", None),
        ("Bearer " + "k" * 513, None),
        ("Bearer clé", None),
    ],
)
def test_bearer_token(header: str | None, key: str | None) -> None:
    assert bearer_token(header) == key


async def test_configured_keys_are_matched_by_digest() -> None:
    auth = ApiKeyAuth([SecretStr("one"), SecretStr("two")], None)
    assert auth.matches_configured("two")
    assert not auth.matches_configured("three")
    await auth.check("Bearer one")
    for header in ("Bearer three", None, "Token one"):
        with pytest.raises(Unauthorized):
            await auth.check(header)
    # Only digests are kept: no attribute holds a plain key.
    assert all(value not in ("one", "two") for value in vars(auth).values())
    assert all(isinstance(d, bytes) and len(d) == 32 for d in vars(auth)["_digests"])


def test_page_size_defaults_and_clamps() -> None:
    settings = Settings(api=ApiSettings(page_limit=100))  # type: ignore[call-arg]
    assert page_size(None, settings) == 50
    assert page_size(7, settings) == 7
    assert page_size(10**12, settings) == 100


def _delivery(status: DeliveryStatus, **changes: object) -> DeliveryRecord:
    fields: dict[str, object] = {
        "id": "del_123",
        "webhook_id": "hook_123",
        "event_id": "evt_abc",
        "event_type": "user.created",
        "status": status,
        "attempts": 1,
        "created_at": NOW,
        "updated_at": NOW,
    }
    fields.update(changes)
    return DeliveryRecord(**fields)  # type: ignore[arg-type]


def test_delivery_items_have_the_seed_keys() -> None:
    ok = DeliveryPublic.of(_delivery(DeliveryStatus.SUCCESS, status_code=200, delivered_at=NOW))
    assert ok.model_dump(mode="json") == {
        "id": "del_123",
        "event_id": "evt_abc",
        "status": "success",
        "status_code": 200,
        "attempts": 1,
        "delivered_at": "2026-01-15T12:30:00Z",
        "event_type": "user.created",
        "webhook_id": "hook_123",
        "created_at": "2026-01-15T12:30:00Z",
        "next_attempt_at": None,
    }
    failed = DeliveryPublic.of(
        _delivery(DeliveryStatus.FAILED, status_code=500, attempts=3, error="Connection timeout")
    ).model_dump(mode="json")
    assert "delivered_at" not in failed and failed["error"] == "Connection timeout"


def test_created_webhook_keys_follow_the_seed_order() -> None:
    settings = Settings()
    body = WebhookCreate(url="https://yourapp.com/webhook", events=["user.created"])
    shown = WebhookCreated.of(new_webhook(body, settings)).model_dump()
    assert list(shown)[:6] == ["id", "url", "events", "secret", "active", "created_at"]


def test_update_refuses_null_for_fields_that_cannot_be_empty() -> None:
    settings = Settings()
    hook = new_webhook(
        WebhookCreate(url="https://yourapp.com/webhook", events=["user.created"]), settings
    )
    with pytest.raises(InvalidWebhook) as refused:
        updated_webhook(hook, WebhookUpdate.model_validate({"url": None}), settings)
    assert refused.value.field == "url"
    same = updated_webhook(hook, WebhookUpdate(), settings)
    assert same is hook
    cleared = updated_webhook(
        hook, WebhookUpdate.model_validate({"description": None, "active": False}), settings
    )
    assert cleared.active is False and cleared.updated_at >= hook.updated_at


# -- item 8: echoed values are cut, bodies past the limit are refused unread ----------------

LIMIT = 4096
KEY = "unit-key-0123456789"


class _Webhooks:
    def __init__(self) -> None:
        self.created: list[Webhook] = []

    async def create(self, webhook: Webhook) -> None:
        self.created.append(webhook)

    async def get(self, webhook_id: str) -> Webhook | None:
        return None

    async def count(self, account_id: str, up_to: int) -> int:
        return len(self.created)


class _Store:
    """Just enough store for these routes: creates are kept, every lookup finds nothing."""

    def __init__(self) -> None:
        self.webhooks = _Webhooks()
        self.deliveries = None
        self.api_keys = None
        self.accounts = None


class _Producer:
    async def send(self, *_args: object, **_kwargs: object) -> None:
        return None


async def _up() -> None:
    return None


def _app(store: _Store | None = None) -> FastAPI:
    settings = Settings(
        api_keys=(SecretStr(KEY),),
        api=ApiSettings(max_body_bytes=LIMIT),  # type: ignore[call-arg]
    )
    return create_app(
        settings,
        store or _Store(),  # type: ignore[arg-type]
        _Producer(),
        probes={"kafka": _up, "cassandra": _up},
    )


def test_echo_quotes_short_values_and_cuts_long_ones() -> None:
    assert echo("hook_1") == "'hook_1'"
    assert echo("x" * ECHO_CHARS) == repr("x" * ECHO_CHARS)
    assert echo("y" * 100_000) == repr("y" * ECHO_CHARS) + "…"


@pytest.mark.parametrize(
    "path",
    [
        "/v1/webhooks/{id}",
        "/v1/webhooks/{id}/secret",
        "/v1/deliveries/{id}",
        "/v1/events/{id}/deliveries",
    ],
)
async def test_a_100_kb_id_is_not_echoed_back_whole(path: str) -> None:
    # Straight through ASGI: httpx itself refuses URLs past 64 KB; servers such as uvicorn
    # with httptools pass them on.
    huge = "h" * 100_000
    scope = _http_scope([], method="GET", path=path.format(id=huge))
    status, _headers, body, _taken = await _call(_app(), scope, iter([]))
    assert status == 404
    error = body["error"]
    assert error["type"] == "not_found" and error["field"] is None
    assert error["message"].endswith(repr("h" * ECHO_CHARS) + "…"), error["message"]
    assert len(error["message"]) < 100


def _http_scope(
    headers: list[tuple[bytes, bytes]], *, method: str = "POST", path: str = "/v1/webhooks"
) -> dict[str, Any]:
    return {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": [
            (b"host", b"api"),
            (b"authorization", f"Bearer {KEY}".encode()),
            (b"content-type", b"application/json"),
            *headers,
        ],
        "client": ("127.0.0.1", 1),
        "server": ("api", 80),
    }


async def _call(
    app: FastAPI, scope: dict[str, Any], chunks: Iterator[bytes]
) -> tuple[int, dict[str, str], Any, int]:
    """Run one request through the ASGI app; returns status, headers, JSON body and the body
    bytes the app took from ``receive``."""
    taken = 0
    sent: list[dict[str, Any]] = []

    async def receive() -> Message:
        nonlocal taken
        chunk = next(chunks, None)
        if chunk is None:
            return {"type": "http.request", "body": b"", "more_body": False}
        taken += len(chunk)
        return {"type": "http.request", "body": chunk, "more_body": True}

    async def send(message: Message) -> None:
        sent.append(dict(message))

    await app(scope, receive, send)
    start = next(m for m in sent if m["type"] == "http.response.start")
    body = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    headers = {k.decode().lower(): v.decode() for k, v in start["headers"]}
    return start["status"], headers, orjson.loads(body), taken


def _assert_too_large(status: int, headers: dict[str, str], body: Any) -> None:
    assert status == 413
    assert body == {
        "error": {
            "type": "payload_too_large",
            "message": f"the request body is larger than {LIMIT} bytes",
            "field": "body",
        }
    }
    assert headers["connection"] == "close"


async def test_a_declared_content_length_past_the_limit_is_refused_before_any_read() -> None:
    def never() -> Iterator[bytes]:
        raise AssertionError("the body was read")
        yield b""  # pragma: no cover

    scope = _http_scope([(b"content-length", str(10 * 1024 * 1024).encode())])
    status, headers, body, taken = await _call(_app(), scope, never())
    _assert_too_large(status, headers, body)
    assert taken == 0


async def test_a_chunked_body_is_read_only_until_it_passes_the_limit() -> None:
    chunk = b" " * 1000
    ten_mb = (chunk for _ in range(10_000))
    status, headers, body, taken = await _call(_app(), _http_scope([]), ten_mb)
    _assert_too_large(status, headers, body)
    assert LIMIT < taken <= LIMIT + len(chunk)


async def test_a_body_of_exactly_the_limit_is_accepted() -> None:
    document = orjson.dumps({"url": "https://yourapp.com/webhook", "events": ["user.created"]})
    padded = document + b" " * (LIMIT - len(document))
    store = _Store()
    scope = _http_scope([(b"content-length", str(LIMIT).encode())])
    status, _headers, body, taken = await _call(_app(store), scope, iter([padded]))
    assert status == 201, body
    assert taken == LIMIT and len(store.webhooks.created) == 1


def test_every_authenticated_operation_documents_the_rate_limit() -> None:
    """Any /v1 route can answer 429 before its own code runs (``AuthenticatedRoute``), so
    OpenAPI lists 429 for each; the schema test once got an undocumented 429 under load."""
    from app.api.app import build

    spec = build(Settings(), lifespan=None).openapi()
    operations = [
        (method, path, op["responses"])
        for path, methods in spec["paths"].items()
        if path.startswith("/v1/")
        for method, op in methods.items()
    ]
    assert len(operations) > 20
    for method, path, responses in operations:
        assert "429" in responses, (method, path)
        assert responses["429"]["description"].startswith("Too many requests"), (method, path)
    assert "429" not in spec["paths"]["/healthz"]["get"]["responses"]
