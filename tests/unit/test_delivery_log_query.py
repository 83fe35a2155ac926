"""The delivery log's query read without FastAPI (``simple_log_query``): table tests.

``simple_log_query`` must return what FastAPI's validation would hand the endpoint, or None
for anything FastAPI must decide; tests/integration/test_api.py compares the two routes'
answers byte for byte.
"""

from __future__ import annotations

import pytest

from app.api.log_page import LogQuery, simple_log_query
from app.deliveries import DeliveryStatus

SUCCESS = DeliveryStatus.SUCCESS


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        (b"", LogQuery()),
        (b"status=success", LogQuery(status=SUCCESS)),
        (b"status=failed&limit=50", LogQuery(status=DeliveryStatus.FAILED, limit=50)),
        (b"limit=1", LogQuery(limit=1)),
        (b"limit=999999999", LogQuery(limit=999_999_999)),
        (b"event_type=user.created", LogQuery(event_type="user.created")),
        (b"event_type=", LogQuery(event_type="")),  # FastAPI passes the empty string on
        (b"event_type=a%20b+c", LogQuery(event_type="a b c")),
        (b"event_type=" + b"x" * 255, LogQuery(event_type="x" * 255)),
        (b"cursor=abc_-", LogQuery(cursor="abc_-")),
        (b"cursor=", LogQuery(cursor="")),
        (b"cursor=" + b"c" * 2000, LogQuery(cursor="c" * 2000)),
        (b"other=1&limit=2", LogQuery(limit=2)),  # unknown names are ignored, as by FastAPI
        (b"other=1&other=2", LogQuery()),
        (b"limit=3&cursor=k&status=success", LogQuery(status=SUCCESS, limit=3, cursor="k")),
        # FastAPI's to decide: refused, coerced, or parsed by pydantic
        (b"status=lost", None),
        (b"status=SUCCESS", None),
        (b"status=", None),
        (b"limit=0", None),
        (b"limit=05", None),
        (b"limit=+5", None),
        (b"limit=-1", None),
        (b"limit=5.0", None),
        (b"limit=%205", None),
        (b"limit=", None),
        (b"limit=1000000000", None),
        (b"event_type=" + b"x" * 256, None),
        (b"cursor=" + b"c" * 2001, None),
        (b"since=2026-12-01T00:00:00Z", None),
        (b"until=2026-12-01T00:00:00Z", None),
        (b"since=", None),
        (b"status=failed&status=success", None),
        (b"limit=2&limit=2", None),
    ],
)
def test_simple_log_query(query: bytes, expected: LogQuery | None) -> None:
    assert simple_log_query(query) == expected


def test_a_status_is_the_enum_not_its_text() -> None:
    query = simple_log_query(b"status=success")
    assert query is not None and query.status is SUCCESS
