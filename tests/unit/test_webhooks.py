"""② Webhooks: the secret format, event type lists, and the webhooks-topic record."""

from __future__ import annotations

import base64
import re
from datetime import UTC, datetime, timedelta, timezone

import pytest

from app.errors import InvalidWebhook
from app.settings import SEED_EVENT_TYPES
from app.webhooks import (
    Webhook,
    generate_secret,
    pattern_matches,
    secret_key,
    secret_scheme,
    validate_events,
    validate_secret,
    webhook_from_json,
    webhook_to_json,
)


def b64_secret(size: int) -> str:
    return "whsec_" + base64.b64encode(bytes(i % 251 for i in range(size))).decode()


# -- secrets ------------------------------------------------------------------------------------


def test_generate_secret_is_whsec_and_base64_of_32_bytes() -> None:
    secret = generate_secret()
    assert re.fullmatch(r"whsec_[A-Za-z0-9+/]{43}=", secret)
    assert len(secret_key(secret)) == 32
    assert validate_secret(secret) == secret


def test_generated_secrets_are_unique() -> None:
    secrets = {generate_secret() for _ in range(1000)}
    assert len(secrets) == 1000


@pytest.mark.parametrize("size", [24, 32, 48, 64])
def test_valid_secret_sizes(size: int) -> None:
    secret = b64_secret(size)
    assert validate_secret(secret) == secret
    assert secret_key(secret) == bytes(i % 251 for i in range(size))


@pytest.mark.parametrize(
    "secret",
    [
        "whsec_abc123...",  # the seed's own example
        "my-shared-secret",  # a secret the customer already uses elsewhere
        "12345678",  # the shortest
        "x" * 128,  # the longest
        "whsec_" + base64.urlsafe_b64encode(b"\xfb\xff" * 16).decode(),
        "!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~",
        b64_secret(8),
        b64_secret(65),
    ],
    ids=["seed-example", "plain", "8-chars", "128-chars", "urlsafe", "punctuation", "8B", "65B"],
)
def test_supplied_secrets_the_docs_way(secret: str) -> None:
    assert validate_secret(secret) == secret


@pytest.mark.parametrize(
    ("secret", "scheme", "key"),
    [
        (b64_secret(32), "base64", bytes(i % 251 for i in range(32))),
        (b64_secret(8), "base64", bytes(i % 251 for i in range(8))),
        ("whsec_" + base64.b64encode(bytes(32)).decode().rstrip("="), "base64", bytes(32)),
        ("whsec_abc123...", "utf8", b"whsec_abc123..."),
        ("my-shared-secret", "utf8", b"my-shared-secret"),
        ("whsec_" + base64.urlsafe_b64encode(b"\xfb\xff" * 16).decode(), "utf8", None),
        ("whsec_abcde", "utf8", b"whsec_abcde"),  # 4n+1 characters: not base64
        ("WHSEC_" + base64.b64encode(bytes(32)).decode(), "utf8", None),
    ],
    ids=["32B", "8B", "unpadded", "seed-example", "plain", "urlsafe", "4n+1", "upper-prefix"],
)
def test_the_standard_webhooks_key_of_each_kind_of_secret(
    secret: str, scheme: str, key: bytes | None
) -> None:
    assert secret_scheme(secret) == scheme
    assert secret_key(secret) == (key if key is not None else secret.encode())


@pytest.mark.parametrize(
    ("secret", "says"),
    [
        ("", "is 0 characters"),
        ("1234567", "is 7 characters"),
        ("x" * 129, "is 129 characters"),
        ("whsec_" + base64.b64encode(bytes(100)).decode(), "is 142 characters"),
        ("has a space", "without whitespace"),
        ("whsec_" + base64.b64encode(bytes(32)).decode() + "\n", "without whitespace"),
        ("tab\tinside", "without whitespace"),
        ("caf\u00e9-secret", "visible ASCII"),
        ("nul\x00inside", "visible ASCII"),
    ],
    ids=[
        "empty",
        "7-chars",
        "129-chars",
        "100-bytes",
        "space",
        "newline",
        "tab",
        "non-ascii",
        "nul",
    ],
)
def test_invalid_secrets(secret: str, says: str) -> None:
    with pytest.raises(InvalidWebhook) as caught:
        validate_secret(secret)
    assert caught.value.field == "secret"
    assert says in caught.value.message


# -- event type lists ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("events", "expected"),
    [
        (["user.created"], ["user.created"]),
        (
            ["user.created", "user.updated", "project.created"],
            ["user.created", "user.updated", "project.created"],
        ),
        (["*"], ["*"]),
        (["user.*"], ["user.*"]),
        (["payment.*", "file.uploaded", "*"], ["payment.*", "file.uploaded", "*"]),
        (["webhook.test"], ["webhook.test"]),
        (["webhook.*"], ["webhook.*"]),
        (["user.created", "user.created"], ["user.created"]),
        (["*", "user.*", "*", "user.*", "user.created"], ["*", "user.*", "user.created"]),
        (list(SEED_EVENT_TYPES), list(SEED_EVENT_TYPES)),
    ],
)
def test_valid_event_lists_are_deduplicated_in_order(
    events: list[str], expected: list[str]
) -> None:
    assert validate_events(events, SEED_EVENT_TYPES) == expected


@pytest.mark.parametrize(
    ("events", "field", "says"),
    [
        ([], "events", "at least one"),
        (["user.signed_in"], "events[0]", "unknown event type"),
        (["user.created", "order.created"], "events[1]", "unknown event type"),
        (["invoice.*"], "events[0]", "matches no known event type"),
        (["user.created.*"], "events[0]", "matches no known event type"),
        (["user"], "events[0]", "is not an event type"),
        (["User.Created"], "events[0]", "is not an event type"),
        (["user.**"], "events[0]", "is not an event type"),
        (["*.created"], "events[0]", "is not an event type"),
        (["us*"], "events[0]", "is not an event type"),
        (["user.*.created"], "events[0]", "is not an event type"),
        ([""], "events[0]", "is not an event type"),
        (["user.created\n"], "events[0]", ""),
        (["user.*\n"], "events[0]", ""),
        (["*\n"], "events[0]", ""),
        ([5], "events[0]", "is not an event type"),
        (["user.created", None], "events[1]", "is not an event type"),
    ],
)
def test_invalid_event_lists(events: list[str], field: str, says: str) -> None:
    with pytest.raises(InvalidWebhook) as caught:
        validate_events(events, SEED_EVENT_TYPES)
    assert caught.value.field == field
    assert says in caught.value.message


def test_the_catalogue_decides_what_is_known() -> None:
    assert validate_events(["order.*"], ("order.created",)) == ["order.*"]
    with pytest.raises(InvalidWebhook):
        validate_events(["user.created"], ("order.created",))


@pytest.mark.parametrize(
    ("pattern", "event_type", "matches"),
    [
        ("*", "user.created", True),
        ("user.*", "user.created", True),
        ("user.*", "user.profile.updated", True),
        ("user.*", "users.created", False),
        ("user.*", "user", False),
        ("user.created", "user.created", True),
        ("user.created", "user.created_x", False),
    ],
)
def test_pattern_matches(pattern: str, event_type: str, matches: bool) -> None:
    assert pattern_matches(pattern, event_type) is matches


# -- the webhooks-topic record ------------------------------------------------------------------

T0 = datetime(2026, 1, 15, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    "webhook",
    [
        Webhook(
            id="hook_123",
            url="https://yourapp.com/webhook",
            events=("user.created", "user.updated", "project.created"),
            secret=b64_secret(32),
            active=True,
            created_at=T0,
            updated_at=T0,
        ),
        Webhook(
            id="hook_456",
            url="https://example.com/h?x=1&y=\u00e9",
            events=("*",),
            secret=b64_secret(64),
            active=False,
            created_at=T0.replace(microsecond=123456),
            updated_at=T0 + timedelta(days=1, microseconds=1),
            description="Caf\u00e9 \U0001f600 hooks",
            metadata={"team": "billing", "env": "prod"},
        ),
        Webhook(
            id="hook_789",
            url="https://example.com/",
            events=("payment.*",),
            secret=b64_secret(24),
            active=True,
            created_at=datetime(2026, 1, 15, 14, 0, tzinfo=timezone(timedelta(hours=2))),
            updated_at=T0,
            description="",
        ),
    ],
    ids=["seed", "everything-set", "offset-zone"],
)
def test_webhook_json_round_trip(webhook: Webhook) -> None:
    raw = webhook_to_json(webhook)
    assert webhook_from_json(raw) == webhook
    assert webhook_to_json(webhook_from_json(raw)) == raw


def test_webhook_json_carries_the_secret_for_the_workers() -> None:
    secret = b64_secret(32)
    webhook = Webhook("hook_1", "https://a.example/", ("*",), secret, True, T0, T0)
    assert secret.encode() in webhook_to_json(webhook)


def test_webhook_from_json_tolerates_absent_optional_fields() -> None:
    raw = (
        b'{"id":"hook_1","url":"https://a.example/","events":["*"],"secret":"whsec_x",'
        b'"active":true,"created_at":"2026-01-15T12:00:00+00:00",'
        b'"updated_at":"2026-01-15T12:00:00Z"}'
    )
    got = webhook_from_json(raw)
    assert (got.description, got.metadata) == (None, {})
    assert got.created_at == got.updated_at == T0


@pytest.mark.parametrize(
    ("events", "event_type", "subscribed"),
    [
        (("*",), "user.created", True),
        (("*",), "webhook.test", False),
        (("webhook.*",), "webhook.test", False),
        (("webhook.test",), "webhook.test", False),
        (("user.*",), "user.deleted", True),
        (("user.created",), "user.updated", False),
    ],
)
def test_subscribes_to(events: tuple[str, ...], event_type: str, subscribed: bool) -> None:
    webhook = Webhook("hook_1", "https://a.example/", events, b64_secret(32), True, T0, T0)
    assert webhook.subscribes_to(event_type) is subscribed
