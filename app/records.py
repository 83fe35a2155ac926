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

    {"v":3,"k":"d","d":[…12 delivery fields, the account 13th…],"a":[…9 attempt fields…] | null}
    {"v":3,"k":"d","d":[…],"a":[…],"e":{"id":…,"t":…,"c":…,"r":<µs>,"a":…}}\\n<body>
    {"v":3,"k":"e","id":"evt_…","t":"user.created","c":"2026-…Z","r":<µs>,"a":"acme"}\\n<body>

The account is left out for the default account (version 1 had none).

**The event rides with its deliveries' first records** (version 3): the first attempt of a
match (or its cancellation) carries the event's header fields under ``"e"`` and its body, so
a matched event costs the worker no produce of its own: two messages per delivery instead of
three. Every delivery of the event carries it (the recorder writes it once per batch), so a
delivery visible in the log always has its event stored for redelivery. A standalone event
message (``"k":"e"``) remains for the test endpoint and replays.

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

VERSION = 3  # 2 added the account (13th delivery field, event "a"); 3 the event in "e"
READABLE = (1, 2, 3)  # a v1 record is the default account's
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
    event: EventRecord | None = None  # carried by a match's first record (version 3)


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


def encode_delivery(
    delivery: DeliveryRecord, attempt: AttemptRecord | None, event: EventRecord | None = None
) -> bytes:
    """The value of a delivery message (key it with ``delivery.id``), with ``event`` (its
    header under ``"e"``, its body after the newline) when given."""
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
    if event is None:
        return orjson.dumps({"v": VERSION, "k": "d", "d": fields, "a": a})
    header = orjson.dumps({"v": VERSION, "k": "d", "d": fields, "a": a, "e": _event_fields(event)})
    return b"".join((header, _SEP, event.body))


def encode_event(event: EventRecord) -> bytes:
    """The value of an event message (key it with ``event.id``): header, newline, body."""
    header = orjson.dumps({"v": VERSION, "k": "e", **_event_fields(event)})
    return b"".join((header, _SEP, event.body))


def _event_fields(event: EventRecord) -> dict[str, Any]:
    fields: dict[str, Any] = {
        "id": event.id,
        "t": event.type,
        "c": event.created_at,
        "r": to_us(event.received_at),
    }
    if event.account_id != DEFAULT_ACCOUNT:
        fields["a"] = event.account_id
    return fields


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
            carried = header.get("e")
            if (cut >= 0) != (carried is not None):
                raise InvalidRecord("shape", "a delivery message has a body only with its event")
            event = None if carried is None else _event(carried, body)
            return DeliveryMessage(_delivery(header["d"]), _attempt(header["a"]), event)
        if kind == "e":
            return EventMessage(_event(header, body))
    except (KeyError, TypeError, ValueError, OverflowError) as exc:
        raise InvalidRecord("shape", f"{type(exc).__name__}: {exc}") from None
    raise InvalidRecord("kind", f"unknown message kind {kind!r}")


def _event(fields: Any, body: bytes) -> EventRecord:
    if not isinstance(fields, dict):
        raise TypeError("an event's fields are an object")
    return EventRecord(
        id=_str(fields["id"]),
        type=_str(fields["t"]),
        created_at=_str(fields["c"]),
        body=body,
        received_at=from_us(_int(fields["r"])),
        account_id=_str(fields.get("a", DEFAULT_ACCOUNT)),
    )


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
        self,
        delivery: DeliveryRecord,
        attempt: AttemptRecord | None,
        *,
        first: bool = False,
        event: EventRecord | None = None,
    ) -> None:
        """Log a delivery's state and the attempt (if any) that led to it, and ``event``
        with it (a match's first record: see the module docstring).

        ``first`` is accepted for the repository's signature and not needed: the delivery
        log has no per-status rows to clean up any more, whatever came before.
        """
        await self._send(delivery.id, encode_delivery(delivery, attempt, event))

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
