"""③ Retry policy, pure: the schedule is data; ``next_step`` decides after each attempt.

Attempt n (1-based) is made ``schedule[n-1]`` after the previous one failed; attempt 1 is
immediate. A receiver's ``Retry-After`` can only push the next attempt later, never earlier.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta


@dataclass(frozen=True, slots=True)
class Done:
    """The attempt succeeded; nothing more to send."""


@dataclass(frozen=True, slots=True)
class RetryAt:
    attempt: int  # the number of the next attempt
    delay: timedelta  # the schedule's delay: it names the retry topic
    due_at: datetime  # may be later than now + delay when Retry-After asked for it


@dataclass(frozen=True, slots=True)
class GiveUp:
    attempts: int


Step = Done | RetryAt | GiveUp


def next_step(
    *,
    attempt: int,
    succeeded: bool,
    schedule: tuple[timedelta, ...],
    now: datetime,
    retry_after: timedelta | None = None,
) -> Step:
    if succeeded:
        return Done()
    if attempt >= len(schedule):
        return GiveUp(attempts=attempt)
    delay = schedule[attempt]
    wait = max(delay, retry_after) if retry_after is not None else delay
    return RetryAt(attempt=attempt + 1, delay=delay, due_at=now + wait)
