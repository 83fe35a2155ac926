"""Pure parts of the API: error field names, bearer parsing, key matching, page sizes, and the
public shapes' key sets (the seed's delivery examples omit keys rather than send nulls)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from pydantic import SecretStr

from app.api.auth import ApiKeyAuth, bearer_token
from app.api.errors import Unauthorized, field_name
from app.api.paging import page_size
from app.api.schemas import DeliveryPublic, WebhookCreate, WebhookCreated, WebhookUpdate
from app.api.validation import new_webhook, updated_webhook
from app.deliveries import DeliveryStatus
from app.errors import InvalidWebhook
from app.settings import ApiSettings, Settings
from app.store.records import DeliveryRecord

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
