"""⑤ Time in the store: millisecond timestamps, UTC day buckets and the opaque list cursor.

Cassandra keeps timestamps in milliseconds. Everything the store compares (bucket, cursor,
since/until) is an integer count of milliseconds since the epoch, so a cursor never suffers a
float round trip; ``from_cql`` turns what the driver returns (a naive UTC datetime, possibly a
microsecond off after its float arithmetic) back into an aware datetime on the millisecond.
"""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
DAY_MS = 86_400_000


def to_ms(moment: datetime) -> int:
    """Milliseconds since the epoch (naive datetimes are taken as UTC), truncated like CQL."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    delta = moment - EPOCH
    micros = (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds
    return micros // 1000


def from_ms(ms: int) -> datetime:
    return EPOCH + timedelta(milliseconds=ms)


def from_cql(value: datetime | None) -> datetime | None:
    """A driver timestamp as an aware UTC datetime, rounded to the stored millisecond."""
    if value is None:
        return None
    # The usual value is at most a few µs off its millisecond: round it in one replace()
    # (a delivery-log page converts 150 of these; the arithmetic below costs twice as much).
    micros = value.microsecond
    off = micros % 1000
    if off == 0:  # most are exact: one keyword for replace() is a quarter cheaper than two
        return value.replace(tzinfo=UTC)
    if off <= 10:
        return value.replace(microsecond=micros - off, tzinfo=UTC)
    if off >= 990 and micros < 999_000:
        return value.replace(microsecond=micros - off + 1000, tzinfo=UTC)
    delta = value.replace(tzinfo=UTC) - EPOCH
    micros = (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds
    return from_ms((micros + 500) // 1000)


def day_bucket(ms: int) -> int:
    """The UTC day (days since the epoch) a timestamp falls in: the partition's time bucket."""
    return ms // DAY_MS


@dataclass(frozen=True, slots=True)
class Position:
    """Where a newest-first walk stands: in ``bucket``, after row (``created_ms``, ``id``).

    ``created_ms`` and ``delivery_id`` are None at the top of a bucket (nothing read yet).
    """

    bucket: int
    created_ms: int | None = None
    delivery_id: str | None = None


def encode_cursor(position: Position) -> str:
    raw = json.dumps(
        {"b": position.bucket, "t": position.created_ms, "d": position.delivery_id},
        separators=(",", ":"),
    ).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> Position:
    """The position a cursor names; ``ValueError`` if it is not one this module made."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        data = json.loads(raw)
    except (binascii.Error, ValueError, UnicodeDecodeError):
        raise ValueError("malformed cursor") from None
    if not isinstance(data, dict) or set(data) != {"b", "t", "d"}:
        raise ValueError("malformed cursor")
    bucket, created, delivery = data["b"], data["t"], data["d"]
    if not _is_int(bucket):
        raise ValueError("malformed cursor")
    if created is None and delivery is None:
        return Position(bucket)
    if not _is_int(created) or not isinstance(delivery, str) or not delivery:
        raise ValueError("malformed cursor")
    if day_bucket(created) != bucket:
        raise ValueError("malformed cursor")
    return Position(bucket, created, delivery)


def encode_id(value: str) -> str:
    """An id as an opaque URL-safe cursor."""
    return base64.urlsafe_b64encode(value.encode()).decode().rstrip("=")


def decode_id(cursor: str) -> str:
    """The id an ``encode_id`` cursor names; ``ValueError`` if it is not one."""
    try:
        value = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
    except (binascii.Error, ValueError):  # UnicodeDecodeError is a ValueError
        raise ValueError("malformed cursor") from None
    if not value or not value.isprintable():
        raise ValueError("malformed cursor")
    return value


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)
