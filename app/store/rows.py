"""⑤ Delivery and attempt rows back into records (the write side serialises them itself:
``app.store.recording``)."""

from __future__ import annotations

from app.accounts import DEFAULT_ACCOUNT
from app.deliveries import DeliveryStatus
from app.store.records import AttemptRecord, DeliveryRecord
from app.store.session import Row
from app.store.timeline import from_cql

# A dict lookup instead of ``DeliveryStatus(value)``: a tenth of its cost, once per row of a
# delivery-log page (an unknown value still raises ValueError, through the enum).
_STATUSES = {status.value: status for status in DeliveryStatus}


def delivery_record(row: Row, id_column: str) -> DeliveryRecord:
    created = from_cql(row["created_at"])
    updated = from_cql(row["updated_at"])
    assert created is not None and updated is not None  # written by every record()
    status = row["status"]
    return DeliveryRecord(
        id=row[id_column],
        webhook_id=row["webhook_id"],
        event_id=row["event_id"],
        event_type=row["event_type"],
        status=_STATUSES.get(status) or DeliveryStatus(status),
        attempts=row["attempts"],
        created_at=created,
        updated_at=updated,
        status_code=row["status_code"],
        error=row["error"],
        delivered_at=from_cql(row["delivered_at"]),
        next_attempt_at=from_cql(row["next_attempt_at"]),
        account_id=row["account_id"] or DEFAULT_ACCOUNT,  # null: recorded before accounts
    )


def attempt_record(row: Row) -> AttemptRecord:
    started = from_cql(row["started_at"])
    assert started is not None
    return AttemptRecord(
        delivery_id=row["delivery_id"],
        number=row["number"],
        started_at=started,
        duration_ms=row["duration_ms"],
        outcome=row["outcome"],
        status_code=row["status_code"],
        error=row["error"],
        response_excerpt=row["response_excerpt"],
        # sent_headers since session 7; request_headers in rows recorded before
        request_headers=dict(row["sent_headers"] or row["request_headers"] or {}),
    )
