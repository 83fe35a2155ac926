"""⑤ The record log: what the worker hands to Kafka instead of writing Cassandra itself.

Kafka is the log, Cassandra the view. Every state a delivery reaches (with the attempt that
led to it, if any) and every event kept for redelivery is one message on the plain topic
``hookstream.records``; the **recorder** role (``app.recorder``) reads it in large batches
and writes the Cassandra views. ``RecordLog`` is the publisher; ``encode_*`` and ``decode``
are the message format.

Keys: a delivery message is keyed by the delivery id, so every state of one delivery lands
in one partition, in the order it was produced; an event message by its store key
(``app.accounts.event_key``).

The value is one compact JSON header (orjson; it never contains a raw newline), a ``\\n``,
and for an event its body, raw::

    {"v":2,"k":"d","d":[…12 delivery fields, the account 13th…],"a":[…9 attempt fields…] | null}
    {"v":2,"k":"e","id":"evt_…","t":"user.created","c":"2026-…Z","r":<µs>,"a":"acme"}\\n<body>

The account is left out for the default account (version 1 had none).

Records are positional arrays (field order of ``app.store.records``), times are integer
microseconds since the epoch (exact, no float round trip), and an event's body travels as
the very bytes that are signed and sent — never re-serialised, never base64-ed. ``v`` is the
format version: a reader refuses a version it does not know (``InvalidRecord``) rather than
guess, so a new field means a new version and readers are deployed before writers.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson

from app.accounts import DEFAULT_ACCOUNT, event_key
from app.deliveries import DeliveryStatus
from app.errors import HandOffError, HookstreamError
from app.kafka import AsyncProducer
from app.store.records import AttemptRecord, DeliveryRecord, EventRecord
from app.topics import Topics

VERSION = 2  # 2 added the account (13th delivery field, event "a")
READABLE = (1, 2)  # a v1 record is the default account's
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_US = timedelta(microseconds=1)
_SEP = b"\n"


class InvalidRecord(HookstreamError):
    """A records-topic message that cannot be decoded. ``reason`` is a short code:
    ``json`` (not a header), ``version`` (unknown format version), ``kind`` (unknown message
    kind), ``shape`` (fields missing or of the wrong type)."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


@dataclass(frozen=True, slots=True)
class DeliveryMessage:
    """A delivery's state, and the attempt that led to it (None for pending or cancelled)."""

    delivery: DeliveryRecord
    attempt: AttemptRecord | None


@dataclass(frozen=True, slots=True)
class EventMessage:
    event: EventRecord


Record = DeliveryMessage | EventMessage


# ── times ─────────────────────────────────────────────────────────────────────────────────


def to_us(moment: datetime) -> int:
    """Microseconds since the epoch, exact (naive datetimes are taken as UTC)."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return (moment - _EPOCH) // _US


def from_us(us: int) -> datetime:
    return _EPOCH + timedelta(microseconds=us)


def _opt_us(moment: datetime | None) -> int | None:
    return None if moment is None else to_us(moment)


def _opt_dt(us: int | None) -> datetime | None:
    return None if us is None else from_us(us)


# ── encode ────────────────────────────────────────────────────────────────────────────────


def encode_delivery(delivery: DeliveryRecord, attempt: AttemptRecord | None) -> bytes:
    """The value of a delivery message (key it with ``delivery.id``)."""
    d = delivery
    fields = [
        d.id, d.webhook_id, d.event_id, d.event_type, d.status.value, d.attempts,
        to_us(d.created_at), to_us(d.updated_at), d.status_code, d.error,
        _opt_us(d.delivered_at), _opt_us(d.next_attempt_at),
    ]  # fmt: skip
    if d.account_id != DEFAULT_ACCOUNT:
        fields.append(d.account_id)  # 13th field, absent for the default account
    a: list[Any] | None = None
    if attempt is not None:
        a = [
            attempt.delivery_id, attempt.number, to_us(attempt.started_at), attempt.duration_ms,
            attempt.outcome, attempt.status_code, attempt.error, attempt.response_excerpt,
            attempt.request_headers or None,
        ]  # fmt: skip
    return orjson.dumps({"v": VERSION, "k": "d", "d": fields, "a": a})


def encode_event(event: EventRecord) -> bytes:
    """The value of an event message (key it with ``event.id``): header, newline, body."""
    header = orjson.dumps(
        {
            "v": VERSION,
            "k": "e",
            "id": event.id,
            "t": event.type,
            "c": event.created_at,
            "r": to_us(event.received_at),
            **({} if event.account_id == DEFAULT_ACCOUNT else {"a": event.account_id}),
        }
    )
    return b"".join((header, _SEP, event.body))


# ── decode ────────────────────────────────────────────────────────────────────────────────


def decode(value: bytes | None) -> Record:
    """A message value back into its record; ``InvalidRecord`` if it is not one."""
    if not value:
        raise InvalidRecord("json", "empty message")
    cut = value.find(_SEP)
    head, body = (value, b"") if cut < 0 else (value[:cut], value[cut + 1 :])
    try:
        header = orjson.loads(head)
    except orjson.JSONDecodeError as exc:
        raise InvalidRecord("json", str(exc)) from None
    if not isinstance(header, dict):
        raise InvalidRecord("json", "the header is not an object")
    version = header.get("v")
    if version not in READABLE:
        raise InvalidRecord("version", f"format version {version!r}, this reader knows {READABLE}")
    kind = header.get("k")
    try:
        if kind == "d":
            if cut >= 0:
                raise InvalidRecord("shape", "a delivery message has no body")
            return DeliveryMessage(_delivery(header["d"]), _attempt(header["a"]))
        if kind == "e":
            return EventMessage(
                EventRecord(
                    id=_str(header["id"]),
                    type=_str(header["t"]),
                    created_at=_str(header["c"]),
                    body=body,
                    received_at=from_us(_int(header["r"])),
                    account_id=_str(header.get("a", DEFAULT_ACCOUNT)),
                )
            )
    except (KeyError, TypeError, ValueError, OverflowError) as exc:
        raise InvalidRecord("shape", f"{type(exc).__name__}: {exc}") from None
    raise InvalidRecord("kind", f"unknown message kind {kind!r}")


def _delivery(fields: Any) -> DeliveryRecord:
    if not isinstance(fields, list) or len(fields) not in (12, 13):
        raise TypeError("a delivery is a list of 12 fields (13 with an account)")
    account = fields[12] if len(fields) == 13 else DEFAULT_ACCOUNT
    (id_, webhook, event, event_type, status, attempts, created, updated,
     code, error, delivered, next_at) = fields[:12]  # fmt: skip
    return DeliveryRecord(
        id=_str(id_),
        webhook_id=_str(webhook),
        event_id=_str(event),
        event_type=_str(event_type),
        status=DeliveryStatus(status),
        attempts=_int(attempts),
        created_at=from_us(_int(created)),
        updated_at=from_us(_int(updated)),
        status_code=_opt_int(code),
        error=_opt_str(error),
        delivered_at=_opt_dt(_opt_int(delivered)),
        next_attempt_at=_opt_dt(_opt_int(next_at)),
        account_id=_str(account),
    )


def _attempt(fields: Any) -> AttemptRecord | None:
    if fields is None:
        return None
    (delivery_id, number, started, duration, outcome, code, error, excerpt,
     headers) = fields  # fmt: skip
    if headers is not None and not (
        isinstance(headers, dict)
        and all(isinstance(k, str) and isinstance(v, str) for k, v in headers.items())
    ):
        raise TypeError("request headers are not a string map")
    return AttemptRecord(
        delivery_id=_str(delivery_id),
        number=_int(number),
        started_at=from_us(_int(started)),
        duration_ms=_int(duration),
        outcome=_str(outcome),
        status_code=_opt_int(code),
        error=_opt_str(error),
        response_excerpt=_opt_str(excerpt),
        request_headers=dict(headers or {}),
    )


def _str(value: Any) -> str:
    if not isinstance(value, str):
        raise TypeError(f"expected a string, got {type(value).__name__}")
    return value


def _int(value: Any) -> int:
    if not isinstance(value, int) or isinstance(value, bool):
        raise TypeError(f"expected an integer, got {type(value).__name__}")
    return value


def _opt_str(value: Any) -> str | None:
    return None if value is None else _str(value)


def _opt_int(value: Any) -> int | None:
    return None if value is None else _int(value)


# ── the publisher ─────────────────────────────────────────────────────────────────────────


class RecordLog:
    """Hands records to the records topic: the worker's replacement for writing Cassandra.

    The two awaitables have the shapes of ``DeliveryRepository.record`` and ``save_event``,
    so the write path swaps one call for the other. Each is one produce on the shared
    idempotent, acks=all producer (librdkafka batches them) and returns once Kafka
    acknowledged the message; it raises ``HandOffError`` otherwise, and then nothing was
    recorded — the caller must not acknowledge its source message. Repeating a call is
    harmless: the recorder's writes are idempotent upserts stamped with the record's own
    time, so a replayed older state never overwrites a newer one.

    Ordering: states of one delivery are keyed alike, so they stay in order as long as the
    caller awaits one before producing the next (the worker owning the delivery does).
    """

    def __init__(self, producer: AsyncProducer, topics: Topics) -> None:
        self._producer = producer
        self._topic = topics.records

    async def record(
        self, delivery: DeliveryRecord, attempt: AttemptRecord | None, *, first: bool = False
    ) -> None:
        """Log a delivery's state and the attempt (if any) that led to it.

        ``first`` is accepted for the repository's signature and not needed: the delivery
        log has no per-status rows to clean up any more, whatever came before.
        """
        await self._send(delivery.id, encode_delivery(delivery, attempt))

    async def save_event(self, event: EventRecord) -> None:
        """Log an event's payload for tests and manual redelivery (keyed by its store key,
        ``event_key``: two accounts may use the same event id)."""
        await self._send(event_key(event.account_id, event.id), encode_event(event))

    async def _send(self, key: str, value: bytes) -> None:
        try:
            await self._producer.send(self._topic, value, key.encode())
        except HandOffError:
            raise
        except Exception as exc:  # e.g. KafkaException: message too large, unknown topic
            raise HandOffError(f"kafka: cannot log a record: {exc}") from exc
