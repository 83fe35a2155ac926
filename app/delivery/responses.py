"""④ Pure rules for a receiver's answer: what its status means and when to come back.

2xx is success; 3xx is a failure (redirects are never followed); 410 asks us to stop; any
other status is a failure retried on the schedule. ``Retry-After`` counts only on 429 and 503,
and only ever pushes the next attempt later: the caller takes the later of its schedule and
this delay.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime

from app.delivery.outcomes import FailureKind

RETRY_AFTER_STATUSES = frozenset({429, 503})
_DELAY_SECONDS = re.compile(r"[0-9]+")


@dataclass(frozen=True, slots=True)
class Verdict:
    """What a status line and headers say, before timing and body are known.

    ``failure`` is ``None`` when the receiver accepted the delivery.
    """

    failure: FailureKind | None
    retry_after: timedelta | None = None


def classify(
    status: int, headers: Mapping[str, str], now: datetime, max_retry_after: timedelta
) -> Verdict:
    """The verdict on a final response status (``now`` is the response time, UTC)."""
    if 200 <= status <= 299:
        return Verdict(None)
    if 300 <= status <= 399:
        return Verdict(FailureKind.REDIRECT)
    if status == 410:
        return Verdict(FailureKind.GONE)
    retry_after = None
    if status in RETRY_AFTER_STATUSES:
        retry_after = parse_retry_after(header(headers, "Retry-After"), now, max_retry_after)
    return Verdict(FailureKind.HTTP_STATUS, retry_after)


def parse_retry_after(value: str | None, now: datetime, max_delay: timedelta) -> timedelta | None:
    """A ``Retry-After`` value as a delay from ``now``, clamped to ``max_delay``.

    Accepts delay-seconds (``120``) or an HTTP-date (``Wed, 21 Oct 2015 07:28:00 GMT``).
    Returns ``None`` for anything else: missing, negative, fractional, garbage, or a date in
    the past (none of those may make the next attempt earlier than the schedule).
    """
    if value is None:
        return None
    text = value.strip()
    if not text:
        return None
    if _DELAY_SECONDS.fullmatch(text):
        seconds = int(text)
        if seconds >= max_delay.total_seconds():
            return max_delay
        return timedelta(seconds=seconds)
    try:
        when = parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    if when.tzinfo is None:  # "-0000" or no zone: HTTP-dates are GMT
        when = when.replace(tzinfo=UTC)
    if now.tzinfo is None:
        now = now.replace(tzinfo=UTC)
    delay = when - now
    if delay < timedelta(0):
        return None
    return min(delay, max_delay)


def header(headers: Mapping[str, str], name: str) -> str | None:
    """Case-insensitive lookup that works on a plain dict as well as on a CIMultiDict."""
    value = headers.get(name)
    if value is not None:
        return value
    lowered = name.lower()
    for key, candidate in headers.items():
        if key.lower() == lowered:
            return candidate
    return None
