"""④ Signing: exactly the headers the contract lists, both schemes, a new signature per attempt."""

from __future__ import annotations

import base64
import hashlib
import hmac
import re

import pytest

from app import __version__
from app.deliveries import delivery_id
from app.events import build_event
from app.signing import attempt_headers, loggable_headers, seed_signature, standard_signature
from app.webhooks import secret_key

SECRET = "whsec_" + base64.b64encode(bytes(range(32))).decode()
EVENT = build_event(
    "evt_abc123",
    "user.created",
    "2026-01-15T12:30:00Z",
    {"id": "user_123", "name": "John Doe", "email": "john@example.com", "status": "active"},
)
DELIVERY = delivery_id(EVENT.id, "hook_123")
TS = 1_768_480_200


def headers(
    *, attempt: int = 1, timestamp: int = TS, body: bytes = EVENT.body, secret: str = SECRET
) -> dict[str, str]:
    return attempt_headers(
        secret=secret,
        body=body,
        event_id=EVENT.id,
        event_type=EVENT.type,
        delivery_id=DELIVERY,
        attempt=attempt,
        timestamp=timestamp,
    )


def test_exactly_the_contracts_headers() -> None:
    got = headers(attempt=3)
    assert list(got) == [
        "Content-Type",
        "User-Agent",
        "X-Webhook-Signature",
        "X-Webhook-Id",
        "X-Webhook-Event",
        "X-Webhook-Attempt",
        "webhook-id",
        "webhook-timestamp",
        "webhook-signature",
    ]
    assert got["Content-Type"] == "application/json"
    assert got["User-Agent"] == f"Hookstream/{__version__}"
    assert re.fullmatch(r"[0-9a-f]{64}", got["X-Webhook-Signature"])
    assert got["X-Webhook-Id"] == DELIVERY
    assert got["X-Webhook-Event"] == "user.created"
    assert got["X-Webhook-Attempt"] == "3"
    assert got["webhook-id"] == "evt_abc123"  # the event id, not the delivery id
    assert got["webhook-timestamp"] == str(TS)
    assert re.fullmatch(r"v1,[A-Za-z0-9+/]{43}=", got["webhook-signature"])
    assert all(isinstance(v, str) and v.isascii() for v in got.values())


def test_x_webhook_signature_is_the_seeds_hex_hmac_keyed_with_the_secret_string() -> None:
    expected = hmac.new(SECRET.encode(), EVENT.body, hashlib.sha256).hexdigest()
    assert headers()["X-Webhook-Signature"] == expected == seed_signature(SECRET, EVENT.body)


def test_webhook_signature_is_standard_webhooks_keyed_with_the_decoded_secret() -> None:
    signed = f"{EVENT.id}.{TS}.".encode() + EVENT.body
    mac = hmac.new(bytes(range(32)), signed, hashlib.sha256).digest()
    expected = "v1," + base64.b64encode(mac).decode()
    assert headers()["webhook-signature"] == expected
    assert standard_signature(secret_key(SECRET), EVENT.id, TS, EVENT.body) == expected


def test_a_retry_keeps_the_body_signature_and_ids_but_signs_its_new_timestamp() -> None:
    # Row 24: same webhook-id, new webhook-timestamp, new webhook-signature.
    first = headers(attempt=1, timestamp=TS)
    retry = headers(attempt=2, timestamp=TS + 30)
    assert retry["X-Webhook-Signature"] == first["X-Webhook-Signature"]
    assert retry["X-Webhook-Id"] == first["X-Webhook-Id"]
    assert retry["webhook-id"] == first["webhook-id"]
    assert retry["webhook-timestamp"] == str(TS + 30) != first["webhook-timestamp"]
    assert retry["webhook-signature"] != first["webhook-signature"]
    assert retry["X-Webhook-Attempt"] == "2"


@pytest.mark.parametrize(
    ("change", "value"),
    [("body", EVENT.body + b" "), ("secret", "whsec_" + base64.b64encode(bytes(32)).decode())],
)
def test_both_signatures_depend_on_body_and_secret(change: str, value: object) -> None:
    base = headers()
    other = headers(**{change: value})  # type: ignore[arg-type]
    assert other["X-Webhook-Signature"] != base["X-Webhook-Signature"]
    assert other["webhook-signature"] != base["webhook-signature"]


@pytest.mark.parametrize(
    "given",
    [
        {"X-Webhook-Signature": "ab", "webhook-signature": "v1,x", "X-Webhook-Id": "del_1"},
        {"x-webhook-signature": "ab", "WEBHOOK-SIGNATURE": "v1,x", "X-Webhook-Id": "del_1"},
    ],
)
def test_loggable_headers_drop_both_signatures_in_any_case(given: dict[str, str]) -> None:
    assert loggable_headers(given) == {"X-Webhook-Id": "del_1"}


def test_loggable_attempt_headers() -> None:
    got = loggable_headers(headers())
    assert set(got) == {
        "Content-Type",
        "User-Agent",
        "X-Webhook-Id",
        "X-Webhook-Event",
        "X-Webhook-Attempt",
        "webhook-id",
        "webhook-timestamp",
    }
    assert SECRET not in str(got)
