"""The delivery log's page, from the store's rows straight to the response's bytes.

``GET /v1/webhooks/{id}/deliveries`` polls (dashboards, the record-lag probe), so its cost
per page is the API's: a ``DeliveryRecord`` per row (a frozen dataclass, three timestamps
rounded by ``from_cql``), then ``delivery_item`` of it, cost 800-1,000 µs of a page of 50 on
the bench machine; ``log_item`` makes each row's JSON item directly, in about a quarter of
that (BENCHMARKS.md, "Session 7: the API's page CPU"). The bytes are ``delivery_list_json``
of the same rows' records, which is FastAPI's serialisation of a ``DeliveryList`` (unit
tests hold both).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from datetime import datetime
from typing import NamedTuple
from urllib.parse import parse_qsl

import orjson

from app.api.paging import CURSOR_MAX
from app.api.schemas import log_timestamp
from app.deliveries import DeliveryStatus
from app.store.session import Row
from app.store.timeline import from_cql

_STATUSES = frozenset(status.value for status in DeliveryStatus)
_WITH_MS = "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ"
_WHOLE = "%04d-%02d-%02dT%02d:%02d:%02dZ"


def log_stamp(value: datetime) -> str:
    """``log_timestamp(from_cql(value))`` of a driver timestamp (naive UTC, a few µs off its
    millisecond at most), without building the rounded datetime."""
    micros = value.microsecond
    if micros % 1000 > 10:  # above its millisecond (rounds up) or not the driver's: exactly
        return log_timestamp(from_cql(value))  # type: ignore[arg-type]
    ms = micros // 1000  # on the millisecond, or a few µs past it: truncate
    fields = (value.year, value.month, value.day, value.hour, value.minute, value.second)
    if ms:
        return _WITH_MS % (*fields, ms)
    return _WHOLE % fields


def log_item(row: Row) -> dict[str, object]:
    """``delivery_item(delivery_record(row, "delivery_id"))`` of a delivery-log row: the same
    keys in the same order, ``delivered_at`` and ``error`` left out when None; an unknown
    status raises ``ValueError`` as the record would."""
    status = row["status"]
    if status not in _STATUSES:
        DeliveryStatus(status)  # raises ValueError, as delivery_record does
    item: dict[str, object] = {
        "id": row["delivery_id"],
        "event_id": row["event_id"],
        "status": status,
        "status_code": row["status_code"],
        "attempts": row["attempts"],
    }
    delivered = row["delivered_at"]
    if delivered is not None:
        item["delivered_at"] = log_stamp(delivered)
    error = row["error"]
    if error is not None:
        item["error"] = error
    item["event_type"] = row["event_type"]
    item["webhook_id"] = row["webhook_id"]
    item["created_at"] = log_stamp(row["created_at"])
    next_at = row["next_attempt_at"]
    item["next_attempt_at"] = None if next_at is None else log_stamp(next_at)
    return item


def page_json(items: Iterable[dict[str, object]], next_cursor: str | None) -> bytes:
    """The page's bytes: ``delivery_list_json`` of the same rows' records."""
    return orjson.dumps({"deliveries": list(items), "next_cursor": next_cursor})


EVENT_TYPE_MAX = 255  # characters of the event_type filter


class LogQuery(NamedTuple):
    """The page's query parameters, as the route's endpoint receives them."""

    status: DeliveryStatus | None = None
    event_type: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    limit: int | None = None
    cursor: str | None = None


_FIRST_PAGE = LogQuery()
_LIMIT = re.compile(r"[1-9][0-9]{0,8}")  # what pydantic reads as that int, and nothing else
_KNOWN = frozenset(("status", "event_type", "since", "until", "limit", "cursor"))


def simple_log_query(query_string: bytes) -> LogQuery | None:
    """The query's parameters exactly as FastAPI would validate them (other names are
    ignored, as FastAPI ignores them), or None when FastAPI must decide: a time range
    (pydantic's datetime parsing), a value it would refuse or coerce (a status it does not
    know, a limit such as ``0``, ``+5`` or ``05``, an overlong filter or cursor), a known
    parameter given twice. The query string is split as Starlette splits it."""
    if not query_string:
        return _FIRST_PAGE
    seen: dict[str, str] = {}
    for key, value in parse_qsl(query_string.decode("latin-1"), keep_blank_values=True):
        if key in _KNOWN:
            if key in seen:
                return None
            seen[key] = value
    if "since" in seen or "until" in seen:
        return None
    status = seen.get("status")
    if status is not None and status not in _STATUSES:
        return None
    event_type = seen.get("event_type")
    if event_type is not None and len(event_type) > EVENT_TYPE_MAX:
        return None
    limit = seen.get("limit")
    if limit is not None and not _LIMIT.fullmatch(limit):
        return None
    cursor = seen.get("cursor")
    if cursor is not None and len(cursor) > CURSOR_MAX:
        return None
    return LogQuery(
        status=None if status is None else DeliveryStatus(status),
        event_type=event_type,
        limit=None if limit is None else int(limit),
        cursor=cursor,
    )
