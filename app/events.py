"""① Events: bytes from the events topic → a validated ``Event``, or ``InvalidEvent`` saying why.

The standard format is ``{id, type, created_at, data}``. The body sent to receivers is that
object serialized once (``app.body``: compact, in JavaScript's canonical form): the same bytes
are signed and sent on every attempt, and they are exactly what the Node.js example's
``JSON.stringify`` re-creates, so its verification passes too.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson

from app.body import to_body
from app.errors import InvalidEvent

_TYPE = re.compile(r"^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)+$")
_RFC3339 = re.compile(
    r"^\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(\.\d{1,9})?([Zz]|[+-]\d{2}:\d{2})$"
)
MAX_ID_LENGTH = 255
# Printable ASCII without "." or space: it travels in HTTP headers (webhook-id) and in the
# Standard Webhooks signature input "{id}.{timestamp}.{body}", which a "." would make ambiguous.
_ID = re.compile(r"[\x21-\x2d\x2f-\x7e]+")
_INT64 = 2**63


@dataclass(frozen=True, slots=True)
class Event:
    id: str
    type: str
    created_at: str
    data: dict[str, Any]
    body: bytes  # the exact bytes every attempt sends and signs


def format_timestamp(moment: datetime) -> str:
    """RFC 3339 in UTC with a ``Z``, as the public docs show (``2026-01-15T12:30:00Z``)."""
    text = moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    return text.replace(".000Z", "Z")


def build_event(event_id: str, event_type: str, created_at: str, data: dict[str, Any]) -> Event:
    body = to_body({"id": event_id, "type": event_type, "created_at": created_at, "data": data})
    return Event(event_id, event_type, created_at, data, body)


def parse_event(raw: bytes | None, *, max_bytes: int, kafka_timestamp_ms: int | None) -> Event:
    """Validate one message value. Raises ``InvalidEvent(reason, detail)``; never anything else."""
    if raw is None:
        raise InvalidEvent("empty", "the message has no value")
    if len(raw) > max_bytes:
        raise InvalidEvent("too_large", f"{len(raw)} bytes exceeds the limit of {max_bytes}")
    try:
        obj = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise InvalidEvent("not_json", str(exc)[:200]) from None
    if not isinstance(obj, dict):
        raise InvalidEvent("not_object", f"expected a JSON object, got {type(obj).__name__}")
    if _has_huge_float(obj.get("data")) and _has_int_beyond_64_bits(raw):
        # orjson reads such integers as floats: sending them would change the data.
        raise InvalidEvent("bad_data", "an integer in data is outside the 64-bit range")
    return validate_fields(obj, kafka_timestamp_ms=kafka_timestamp_ms)


def _has_huge_float(value: Any) -> bool:
    if isinstance(value, float):
        return abs(value) >= _INT64 and value.is_integer()
    if isinstance(value, dict):
        return any(_has_huge_float(v) for v in value.values())
    if isinstance(value, list):
        return any(_has_huge_float(v) for v in value)
    return False


def _has_int_beyond_64_bits(raw: bytes) -> bool:
    """Re-parse (rare path) keeping integers exact, and look for ones orjson cannot keep."""
    found = False

    def exact(text: str) -> int:
        nonlocal found
        number = int(text)
        found = found or not -_INT64 <= number < 2**64
        return number

    json.loads(raw, parse_int=exact)
    return found


def validate_fields(obj: dict[str, Any], *, kafka_timestamp_ms: int | None) -> Event:
    event_id = obj.get("id")
    if not isinstance(event_id, str) or not event_id or len(event_id) > MAX_ID_LENGTH:
        raise InvalidEvent("bad_id", "id must be a non-empty string of at most 255 characters")
    if not _ID.fullmatch(event_id):
        raise InvalidEvent("bad_id", "id must be printable ASCII without '.' or whitespace")
    event_type = obj.get("type")
    if not isinstance(event_type, str) or not _TYPE.fullmatch(event_type):
        raise InvalidEvent("bad_type", "type must be a dotted name such as user.created")
    created_at = obj.get("created_at")
    if created_at is None:
        moment = (
            datetime.fromtimestamp(kafka_timestamp_ms / 1000, UTC)
            if kafka_timestamp_ms is not None and kafka_timestamp_ms > 0
            else datetime.now(UTC)
        )
        created_at = format_timestamp(moment)
    elif not isinstance(created_at, str) or not _RFC3339.fullmatch(created_at):
        raise InvalidEvent("bad_created_at", "created_at must be an RFC 3339 timestamp")
    else:
        try:
            datetime.fromisoformat(created_at.replace("z", "Z"))
        except ValueError:
            raise InvalidEvent("bad_created_at", f"{created_at!r} is not a valid date") from None
    data = obj.get("data")
    if not isinstance(data, dict):
        raise InvalidEvent("bad_data", "data must be a JSON object")
    return build_event(event_id, event_type, created_at, data)
