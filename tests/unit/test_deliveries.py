"""③ Deliveries: a stable id per (event, webhook) and an attempt message that round-trips."""

from __future__ import annotations

import base64
import hashlib
import re

import pytest

from app.deliveries import AttemptMessage, Origin, dead_letter_headers, delivery_id, due_at_ms

DELIVERY_ID = re.compile(r"del_[a-z2-7]{26}")


def test_delivery_id_is_deterministic() -> None:
    assert delivery_id("evt_abc123", "hook_123") == delivery_id("evt_abc123", "hook_123")


@pytest.mark.parametrize(
    ("event_id", "webhook_id"),
    [
        ("evt_abc123", "hook_123"),
        ("evt_def", "hook_123"),
        ("evt_abc123", "hook_456"),
        ("a", "b"),
        ("x" * 255, "hook_" + "f" * 24),
        ("evt_\u00e9", "hook_1"),
    ],
)
def test_delivery_id_format(event_id: str, webhook_id: str) -> None:
    assert DELIVERY_ID.fullmatch(delivery_id(event_id, webhook_id))


def test_delivery_ids_differ_per_event_and_per_webhook() -> None:
    pairs = [(f"evt_{e}", f"hook_{w}") for e in range(50) for w in range(20)]
    # Concatenation must not collide: ("ab", "c") and ("a", "bc") are different deliveries.
    pairs += [("evt_ab", "hook_c"), ("evt_a", "bhook_c"), ("evt_abhook_", "c")]
    assert len({delivery_id(e, w) for e, w in pairs}) == len(pairs)


@pytest.mark.parametrize(
    ("event_id", "webhook_id"),
    [(f"evt_{n}", f"hook_{n * 7919 % 1000}") for n in range(300)]
    + [("", ""), ("evt_\u00e9", "hook_\u2603"), ("x" * 1000, "y")],
)
def test_delivery_id_spells_the_standard_base32(event_id: str, webhook_id: str) -> None:
    # The ten-bits-at-a-time spelling must be the standard encoder's, for every digest.
    digest = hashlib.sha256(f"{event_id}\x00{webhook_id}".encode()).digest()[:16]
    expected = "del_" + base64.b32encode(digest).decode().rstrip("=").lower()
    assert delivery_id(event_id, webhook_id) == expected


def test_delivery_id_is_not_symmetric() -> None:
    assert delivery_id("x_1", "x_2") != delivery_id("x_2", "x_1")


def test_delivery_id_is_pinned() -> None:
    # Stable forever: rows and X-Webhook-Id written before an upgrade must keep matching.
    assert delivery_id("evt_abc123", "hook_123") == "del_6gqudycwyawjoluvh4owpekiwu"
    digest = hashlib.sha256(b"evt_abc123\x00hook_123").digest()[:16]
    assert base64.b32encode(digest).decode().rstrip("=").lower() == "6gqudycwyawjoluvh4owpekiwu"


MESSAGES = [
    AttemptMessage(
        delivery_id=delivery_id("evt_abc123", "hook_123"),
        webhook_id="hook_123",
        event_id="evt_abc123",
        event_type="user.created",
        attempt=1,
        body=b'{"id":"evt_abc123","type":"user.created","created_at":"2026-01-15T12:30:00Z","data":{}}',
        enqueued_at_ms=1_768_480_200_000,
        event_created_at="2026-01-15T12:30:00Z",  # a match's: its first record carries it
    ),
    AttemptMessage(
        delivery_id=delivery_id("evt_def", "hook_456"),
        webhook_id="hook_456",
        event_id="evt_def",
        event_type="payment.failed",
        attempt=3,
        body='{"name":"Jos\u00e9 \U0001f600"}'.encode(),
        enqueued_at_ms=1,
        origin=Origin.RETRY,
        due_at_ms=1_768_480_500_000,
    ),
    AttemptMessage(
        delivery_id=delivery_id("evt_t", "hook_1"),
        webhook_id="hook_1",
        event_id="evt_t",
        event_type="webhook.test",
        attempt=1,
        body=b"",
        enqueued_at_ms=0,
        origin=Origin.TEST,
    ),
    AttemptMessage(
        delivery_id=delivery_id("evt_m", "hook_1"),
        webhook_id="hook_1",
        event_id="evt_m",
        event_type="user.deleted",
        attempt=6,
        body=b"{}",
        enqueued_at_ms=5,
        origin=Origin.MANUAL,
        due_at_ms=0,
    ),
]


@pytest.mark.parametrize("message", MESSAGES, ids=[m.origin.value for m in MESSAGES])
def test_attempt_message_round_trips_through_kafka_headers(message: AttemptMessage) -> None:
    headers = message.headers()
    assert all(name.startswith("hs-") and isinstance(v, bytes) for name, v in headers)
    assert AttemptMessage.from_kafka(message.body, headers) == message
    assert AttemptMessage.from_kafka(message.body, dict(headers)) == message
    assert due_at_ms(headers) == message.due_at_ms
    assert message.key() == message.webhook_id.encode()


def test_the_value_is_the_body_untouched() -> None:
    message = MESSAGES[1]
    assert AttemptMessage.from_kafka(message.body, message.headers()).body is message.body


def test_from_kafka_ignores_headers_without_value_and_defaults_the_origin() -> None:
    headers = [(n, v) for n, v in MESSAGES[0].headers() if n != "hs-origin"]
    headers_with_none: list[tuple[str, bytes | None]] = [*headers, ("hs-due-at", None)]
    got = AttemptMessage.from_kafka(b"{}", headers_with_none)
    assert got.origin is Origin.MATCH
    assert got.due_at_ms is None


@pytest.mark.parametrize(
    "missing",
    [
        "hs-delivery-id",
        "hs-webhook-id",
        "hs-event-id",
        "hs-event-type",
        "hs-attempt",
        "hs-enqueued-at",
    ],
)
def test_a_missing_header_is_a_value_error(missing: str) -> None:
    headers = [(n, v) for n, v in MESSAGES[0].headers() if n != missing]
    with pytest.raises(ValueError, match=missing):
        AttemptMessage.from_kafka(b"{}", headers)


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("hs-attempt", b"two"),
        ("hs-enqueued-at", b""),
        ("hs-origin", b"carrier-pigeon"),
        ("hs-due-at", b"soon"),
        ("hs-event-id", b"\xff"),
    ],
)
def test_a_garbled_header_is_a_value_error(name: str, value: bytes) -> None:
    headers = {**dict(MESSAGES[0].headers()), name: value}
    with pytest.raises(ValueError):
        AttemptMessage.from_kafka(b"{}", headers)


def test_no_headers_at_all() -> None:
    assert due_at_ms(None) is None
    with pytest.raises(ValueError):
        AttemptMessage.from_kafka(b"{}", None)


@pytest.mark.parametrize("message", MESSAGES, ids=[m.origin.value for m in MESSAGES])
def test_next_attempt(message: AttemptMessage) -> None:
    nxt = message.next_attempt(due_at_ms=1_768_480_230_000)
    assert nxt.attempt == message.attempt + 1
    assert nxt.due_at_ms == 1_768_480_230_000
    assert nxt.origin is Origin.RETRY
    # Everything else, above all the body and the delivery id, is the same.
    assert (nxt.delivery_id, nxt.webhook_id, nxt.event_id, nxt.event_type) == (
        message.delivery_id,
        message.webhook_id,
        message.event_id,
        message.event_type,
    )
    assert nxt.body is message.body
    assert nxt.enqueued_at_ms == message.enqueued_at_ms
    assert nxt.event_created_at is None  # only a first attempt's record carries the event
    assert AttemptMessage.from_kafka(nxt.body, nxt.headers()) == nxt


def test_dead_letter_headers() -> None:
    got = dict(dead_letter_headers("not_json", "x" * 5000, "events", 3, 42))
    assert got == {
        "hs-reason": b"not_json",
        "hs-detail": b"x" * 1000,
        "hs-source-topic": b"events",
        "hs-source-partition": b"3",
        "hs-source-offset": b"42",
    }
