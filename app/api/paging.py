"""Query parameters shared by the list routes: page size, opaque cursor, time range."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Annotated

from fastapi import Query

from app.api.errors import ApiError
from app.settings import Settings

DEFAULT_LIMIT = 50

LimitQuery = Annotated[
    int | None,
    Query(
        ge=1,
        description=f"Page size (default {DEFAULT_LIMIT}); larger values are clamped to the "
        "server's page limit.",
    ),
]
CURSOR_MAX = 2000  # characters of a cursor the API takes at all
CursorQuery = Annotated[
    str | None,
    Query(
        max_length=CURSOR_MAX,
        description="The `next_cursor` of the previous page; opaque. Omit for the first page.",
    ),
]


def page_size(limit: int | None, settings: Settings) -> int:
    """The limit asked for, or the default, clamped to ``settings.api.page_limit``."""
    wanted = DEFAULT_LIMIT if limit is None else limit
    return max(1, min(wanted, settings.api.page_limit))


def as_utc(moment: datetime | None, field: str) -> datetime | None:
    """Aware UTC datetime (naive input is taken as UTC); 422 naming ``field`` if out of range."""
    if moment is None:
        return None
    if moment.tzinfo is None:
        return moment.replace(tzinfo=UTC)
    try:
        return moment.astimezone(UTC)
    except (OverflowError, ValueError):
        raise ApiError(422, "timestamp out of range", field=field) from None


# Deliveries are never created in the future; a little slack covers clock skew.
FUTURE_SLACK = timedelta(days=1)


def time_range(
    since: datetime | None, until: datetime | None, settings: Settings
) -> tuple[datetime | None, datetime | None]:
    """``since``/``until`` in UTC, clamped to the retention window (nothing older exists, and
    the store reads one day bucket after another: an unclamped year-1 ``since`` would make
    it walk 700,000 empty days). 422 naming ``until`` if the range is reversed."""
    start, end = as_utc(since, "since"), as_utc(until, "until")
    if start is not None and end is not None and start > end:
        raise ApiError(422, "must not be earlier than since", field="until")
    now = datetime.now(UTC)
    if start is not None:
        start = min(max(start, now - settings.cassandra.retention), now + FUTURE_SLACK)
    if end is not None:
        end = max(min(end, now + FUTURE_SLACK), now - settings.cassandra.retention)
    return start, end


# A delivery's created_at is when its event was matched to the webhook (a redelivery keeps
# it), so no delivery is older than its webhook; the slack covers an API and a worker whose
# clocks disagree, generously, and still leaves most webhooks' walk in their own day bucket.
CREATION_SLACK = timedelta(hours=6)


def log_since(start: datetime | None, webhook_created_at: datetime, settings: Settings) -> datetime:
    """Where a webhook's delivery-log walk may stop: ``start`` (None: the retention window's
    start), but not before the webhook existed, less ``CREATION_SLACK``.

    The store reads one day bucket after another back to this point, one request each: for a
    filter that matches nothing, bounding it by the webhook's age turns 30 requests (the whole
    retention) into one or two for a webhook created today."""
    oldest = datetime.now(UTC) - settings.cassandra.retention
    floor = max(webhook_created_at - CREATION_SLACK, oldest)
    return floor if start is None or start < floor else start
