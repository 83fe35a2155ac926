"""The delivery log's page bytes (``delivery_list_json``) are exactly what FastAPI sends for
a ``DeliveryList`` built from the same records: the route serialises pages itself, so any
difference would change the public shape."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from pydantic import TypeAdapter

from app.accounts import DEFAULT_ACCOUNT
from app.api.log_page import log_item, log_stamp, page_json
from app.api.schemas import DeliveryList, DeliveryPublic, delivery_list_json, log_timestamp
from app.deliveries import DeliveryStatus
from app.events import format_timestamp
from app.store.records import DeliveryRecord
from app.store.rows import delivery_record
from app.store.timeline import from_cql, from_ms, to_ms

AT = datetime(2026, 12, 1, 12, 30, 0, 123000, tzinfo=UTC)
ON_THE_SECOND = datetime(2026, 1, 15, 12, 30, tzinfo=UTC)
ELSEWHERE = datetime(2026, 1, 15, 14, 30, 0, 7000, tzinfo=timezone(timedelta(hours=2)))
# Every control character, quotes, backslash, the line separators JSON leaves alone in
# JavaScript's eyes, non-ASCII and an astral character: escapes must agree byte for byte.
AWKWARD = "".join(chr(i) for i in range(0x20)) + '"\\/<>&\x7f\u2028\u2029é😀'


def record(**changes: object) -> DeliveryRecord:
    fields: dict[str, object] = {
        "id": "del_0123456789abcdef01234567",
        "webhook_id": "hook_0123456789abcdef01234567",
        "event_id": "evt_abc",
        "event_type": "user.created",
        "status": DeliveryStatus.SUCCESS,
        "attempts": 1,
        "created_at": AT,
        "updated_at": AT,
        "status_code": 200,
        "delivered_at": AT,
    }
    fields.update(changes)
    return DeliveryRecord(**fields)  # type: ignore[arg-type]


CASES = {
    "delivered": [record()],
    "failed with an error, retry due": [
        record(
            status=DeliveryStatus.FAILED,
            status_code=500,
            delivered_at=None,
            error="Connection timeout",
            next_attempt_at=AT + timedelta(minutes=5),
            attempts=3,
        )
    ],
    "pending, nothing yet": [
        record(status=DeliveryStatus.PENDING, attempts=0, status_code=None, delivered_at=None)
    ],
    "whole seconds and another offset": [
        record(created_at=ON_THE_SECOND, delivered_at=ELSEWHERE, next_attempt_at=ELSEWHERE)
    ],
    "awkward text everywhere": [
        record(
            id="del_" + AWKWARD,
            event_id=AWKWARD,
            event_type=AWKWARD,
            webhook_id=AWKWARD,
            error=AWKWARD,
            status=DeliveryStatus.FAILED,
        )
    ],
    "empty page": [],
    "a page of every status": [
        record(id=f"del_{i}", status=status, error="e" if i % 2 else None)
        for i, status in enumerate(DeliveryStatus)
    ],
}


@pytest.mark.parametrize("next_cursor", [None, "eyJiIjoyMDAwMH0"])
@pytest.mark.parametrize("records", CASES.values(), ids=CASES.keys())
def test_page_bytes_equal_the_models_json(
    records: list[DeliveryRecord], next_cursor: str | None
) -> None:
    model = DeliveryList(
        deliveries=[DeliveryPublic.of(r) for r in records], next_cursor=next_cursor
    )
    # What FastAPI's response_model path sends: the response field's serialize_json.
    expected = TypeAdapter(DeliveryList).dump_json(model, by_alias=True)
    assert delivery_list_json(records, next_cursor) == expected


@pytest.mark.parametrize(
    "moment",
    [
        AT,
        ON_THE_SECOND,
        ELSEWHERE,  # another offset: converted to UTC first
        datetime(2026, 12, 31, 23, 59, 59, 999999, tzinfo=UTC),  # truncated, never rounded up
        datetime(2026, 1, 1, 0, 0, 0, 999, tzinfo=UTC),  # under a millisecond: none shown
        datetime(999, 3, 4, 5, 6, 7, 8000, tzinfo=UTC),  # a four-digit year, zero-padded
        datetime(2026, 6, 1, 12, 0, tzinfo=timezone(timedelta(0), "GMT")),  # UTC by another name
    ],
)
def test_log_timestamp_is_format_timestamp(moment: datetime) -> None:
    assert log_timestamp(moment) == format_timestamp(moment)


def test_from_cql_rounds_to_the_stored_millisecond() -> None:
    """The driver's float arithmetic leaves a timestamp a few µs off its millisecond, on
    either side; every value comes back on the millisecond it was stored as, in UTC."""
    start = datetime(2026, 12, 1, 12, 0, 0)
    for stored_ms in (0, 1, 122, 123, 500, 998, 999):
        for off_us in (-7, -1, 0, 1, 7, 499, -499):
            value = start + timedelta(milliseconds=stored_ms, microseconds=off_us)
            got = from_cql(value)
            assert got == from_ms(to_ms(start.replace(tzinfo=UTC)) + stored_ms), (
                stored_ms,
                off_us,
            )
            assert got is not None and got.tzinfo is UTC
    assert from_cql(None) is None


@pytest.mark.parametrize("status", list(DeliveryStatus))
def test_a_log_row_becomes_its_record_with_each_status(status: DeliveryStatus) -> None:
    created = datetime(2026, 12, 1, 12, 30, 0, 123000)  # naive, as the driver returns it
    row = {
        "delivery_id": "del_1",
        "webhook_id": "hook_1",
        "event_id": "evt_1",
        "event_type": "user.created",
        "status": status.value,
        "attempts": 2,
        "created_at": created,
        "updated_at": created + timedelta(microseconds=999_996),  # the driver's float error
        "status_code": 500,
        "error": "HTTP 500",
        "delivered_at": None,
        "next_attempt_at": None,
        "account_id": None,
    }
    got = delivery_record(row, "delivery_id")
    assert got.status is status
    assert got.created_at == created.replace(tzinfo=UTC)
    assert got.updated_at == datetime(2026, 12, 1, 12, 30, 1, 123000, tzinfo=UTC)
    assert got.account_id == DEFAULT_ACCOUNT
    with pytest.raises(ValueError):
        delivery_record({**row, "status": "lost"}, "delivery_id")


# ── the page route's path: rows straight to items (app.api.log_page) ──────────────────────


def log_row(record: DeliveryRecord, off_us: int = 0) -> dict[str, object]:
    """The row the driver returns for ``record``: naive UTC timestamps, ``off_us`` off."""

    def naive(moment: datetime | None) -> datetime | None:
        if moment is None:
            return None
        return moment.astimezone(UTC).replace(tzinfo=None) + timedelta(microseconds=off_us)

    return {
        "delivery_id": record.id,
        "webhook_id": record.webhook_id,
        "event_id": record.event_id,
        "event_type": record.event_type,
        "status": record.status.value,
        "attempts": record.attempts,
        "created_at": naive(record.created_at),
        "updated_at": naive(record.updated_at),
        "status_code": record.status_code,
        "error": record.error,
        "delivered_at": naive(record.delivered_at),
        "next_attempt_at": naive(record.next_attempt_at),
        "account_id": None,
    }


@pytest.mark.parametrize("off_us", [0, 1, 7, -1, -7])  # the driver's float error, both sides
@pytest.mark.parametrize("next_cursor", [None, "eyJiIjoyMDAwMH0"])
@pytest.mark.parametrize("records", CASES.values(), ids=CASES.keys())
def test_page_from_rows_equals_the_page_of_their_records(
    records: list[DeliveryRecord], next_cursor: str | None, off_us: int
) -> None:
    rows = [log_row(r, off_us) for r in records]
    expected = delivery_list_json(
        [delivery_record(row, "delivery_id") for row in rows], next_cursor
    )
    assert page_json((log_item(row) for row in rows), next_cursor) == expected


def test_log_stamp_is_the_rounded_timestamp_on_every_side_of_a_millisecond() -> None:
    start = datetime(2026, 12, 31, 23, 59, 58)
    for stored_ms in (0, 1, 122, 500, 998, 999, 1000, 1999):
        for off_us in (-11, -10, -7, -1, 0, 1, 7, 10, 11, 499, -499):
            value = start + timedelta(milliseconds=stored_ms, microseconds=off_us)
            assert log_stamp(value) == log_timestamp(from_cql(value)), (stored_ms, off_us)  # type: ignore[arg-type]
    assert log_stamp(datetime(999, 3, 4, 5, 6, 7, 8000)) == "0999-03-04T05:06:07.008Z"
    assert log_stamp(datetime(2026, 1, 1)) == "2026-01-01T00:00:00Z"


def test_log_item_refuses_an_unknown_status_as_the_record_does() -> None:
    row = log_row(record())
    with pytest.raises(ValueError):
        log_item({**row, "status": "lost"})
    with pytest.raises(ValueError):
        delivery_record({**row, "status": "lost"}, "delivery_id")
