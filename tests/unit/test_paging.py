"""Where a webhook's delivery-log walk stops: never before the webhook existed (less some
slack for clocks), never before the retention window, never later than asked."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from app.api.paging import CREATION_SLACK, log_since
from app.settings import Settings

SETTINGS = Settings()
RETENTION = SETTINGS.cassandra.retention  # 30 days by default


@pytest.mark.parametrize(
    ("start_ago", "created_ago", "expected_ago"),
    [
        # no since: a webhook of today walks back hours, not the 30 days of retention
        (None, timedelta(hours=2), timedelta(hours=2) + CREATION_SLACK),
        # no since, a webhook older than the retention: the retention bounds it
        (None, timedelta(days=90), RETENTION),
        # a since after the webhook's creation is kept as it is
        (timedelta(hours=1), timedelta(days=3), timedelta(hours=1)),
        # a since before the webhook existed moves up to its creation less the slack
        (timedelta(days=10), timedelta(days=3), timedelta(days=3) + CREATION_SLACK),
        # a since inside the slack stays (a delivery stamped by a clock behind the API's)
        (timedelta(hours=3), timedelta(hours=2), timedelta(hours=3)),
    ],
)
def test_log_since(
    start_ago: timedelta | None, created_ago: timedelta, expected_ago: timedelta
) -> None:
    now = datetime.now(UTC)
    start = None if start_ago is None else now - start_ago
    got = log_since(start, now - created_ago, SETTINGS)
    # "now" moves on while log_since runs: allow that, nothing else
    assert abs(got - (now - expected_ago)) < timedelta(seconds=5)
    assert got.tzinfo is not None
