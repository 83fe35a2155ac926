"""③ Deliveries: one event to one webhook, and the message that carries an attempt.

A delivery's id is a pure function of (event id, webhook id), so reprocessing an event after a
crash upserts the same rows and sends the same ``X-Webhook-Id``: receivers can dedupe.

On the deliveries, retry and redeliver topics a message's **value is the exact body** sent to
the receiver (serialized once, at match time) and everything else travels in headers, so no
hop re-serializes or re-signs anything but the timestamp.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from enum import StrEnum

from app.accounts import DEFAULT_ACCOUNT

HEADER_PREFIX = "hs-"


class DeliveryStatus(StrEnum):
    PENDING = "pending"
    SUCCESS = "success"
    FAILED = "failed"
    CANCELLED = "cancelled"


class Origin(StrEnum):
    """Why an attempt message exists."""

    MATCH = "match"  # the match agent fanned an event out
    RETRY = "retry"  # the scheduler forwarded a due retry
    TEST = "test"  # POST /v1/webhooks/{id}/test
    MANUAL = "manual"  # POST /v1/deliveries/{id}/retry or /recover
    REPLAY = "replay"  # POST /v1/webhooks/{id}/replay (app.replay)


# Every pair of lower-case base32 characters, by the 10 bits they spell.
_B32 = "abcdefghijklmnopqrstuvwxyz234567"
_B32_PAIRS = tuple(a + b for a in _B32 for b in _B32)
_B32_SHIFTS = tuple(range(120, -1, -10))


def delivery_id(event_id: str, webhook_id: str) -> str:
    """``del_`` + 26 base32 characters of SHA-256(event id, webhook id); stable forever.

    The characters are ``base64.b32encode(digest).rstrip("=").lower()`` (a table test keeps
    them so), spelt ten bits at a time: the standard library's encoder, pure Python in 3.11,
    was ~3 % of a draining worker's CPU (BENCHMARKS.md, session 13)."""
    digest = hashlib.sha256(f"{event_id}\x00{webhook_id}".encode()).digest()
    bits = int.from_bytes(digest[:16]) << 2  # 128 bits, padded to 26 characters' 130
    pairs = _B32_PAIRS
    return "del_" + "".join([pairs[(bits >> shift) & 1023] for shift in _B32_SHIFTS])


Headers = Sequence[tuple[str, bytes | None]]


@dataclass(frozen=True, slots=True)
class AttemptMessage:
    """One attempt to make: what the deliver agent reads and the scheduler forwards.

    ``attempt`` is the number of the attempt this message asks for (1 for a match).
    ``due_at_ms`` (UTC epoch ms) is set on retry-topic messages: the scheduler forwards the
    message to the redeliver topic once it is due. ``enqueued_at_ms`` is when the event was
    matched; it measures event → attempt latency.
    """

    delivery_id: str
    webhook_id: str
    event_id: str
    event_type: str
    attempt: int
    body: bytes
    enqueued_at_ms: int
    origin: Origin = Origin.MATCH
    due_at_ms: int | None = None
    account_id: str = DEFAULT_ACCOUNT  # the webhook's; header only when not the default
    # The event's own ``created_at``, on a match's messages only: their first attempt's
    # record carries the event to the recorder (``app.records``), so no message of its own.
    event_created_at: str | None = None

    def key(self) -> bytes:
        # Keyed by webhook id: one receiver's traffic stays on one partition, so its
        # keep-alive connections stay warm in one worker.
        return self.webhook_id.encode()

    def headers(self) -> list[tuple[str, bytes]]:
        out = [
            ("hs-delivery-id", self.delivery_id.encode()),
            ("hs-webhook-id", self.webhook_id.encode()),
            ("hs-event-id", self.event_id.encode()),
            ("hs-event-type", self.event_type.encode()),
            ("hs-attempt", str(self.attempt).encode()),
            ("hs-enqueued-at", str(self.enqueued_at_ms).encode()),
            ("hs-origin", self.origin.value.encode()),
        ]
        if self.due_at_ms is not None:
            out.append(("hs-due-at", str(self.due_at_ms).encode()))
        if self.account_id != DEFAULT_ACCOUNT:
            out.append(("hs-account", self.account_id.encode()))
        if self.event_created_at is not None:
            out.append(("hs-event-created-at", self.event_created_at.encode()))
        return out

    @classmethod
    def from_kafka(cls, value: bytes, headers: Headers | dict[str, bytes] | None) -> AttemptMessage:
        """Rebuild from a Kafka message; raises ``ValueError`` if a header is missing."""
        h = _header_dict(headers)
        try:
            due = h.get("hs-due-at")
            account = h.get("hs-account")
            created = h.get("hs-event-created-at")
            return cls(
                delivery_id=h["hs-delivery-id"].decode(),
                webhook_id=h["hs-webhook-id"].decode(),
                event_id=h["hs-event-id"].decode(),
                event_type=h["hs-event-type"].decode(),
                attempt=int(h["hs-attempt"]),
                body=value,
                enqueued_at_ms=int(h["hs-enqueued-at"]),
                origin=Origin(h.get("hs-origin", b"match").decode()),
                due_at_ms=int(due) if due is not None else None,
                account_id=account.decode() if account is not None else DEFAULT_ACCOUNT,
                event_created_at=created.decode() if created is not None else None,
            )
        except KeyError as missing:
            raise ValueError(f"attempt message without header {missing}") from None

    def next_attempt(self, due_at_ms: int) -> AttemptMessage:
        return replace(
            self,
            attempt=self.attempt + 1,
            due_at_ms=due_at_ms,
            origin=Origin.RETRY,
            event_created_at=None,  # the first attempt's record carried the event
        )


def due_at_ms(headers: Headers | dict[str, bytes] | None) -> int | None:
    """The due time (UTC epoch ms) of a retry-topic message, or None if it has none."""
    raw = _header_dict(headers).get("hs-due-at")
    return int(raw) if raw is not None else None


def dead_letter_headers(
    reason: str, detail: str, topic: str, partition: int, offset: int
) -> list[tuple[str, bytes]]:
    """Headers of a dead-topic message: why it died and where it came from."""
    return [
        ("hs-reason", reason.encode()),
        ("hs-detail", detail[:1000].encode()),
        ("hs-source-topic", topic.encode()),
        ("hs-source-partition", str(partition).encode()),
        ("hs-source-offset", str(offset).encode()),
    ]


def _header_dict(
    headers: Headers | dict[str, bytes] | Iterable[tuple[str, bytes | None]] | None,
) -> dict[str, bytes]:
    if headers is None:
        return {}
    items = headers.items() if isinstance(headers, dict) else headers
    return {k: v for k, v in items if v is not None}
