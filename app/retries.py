"""③ Retry policy, pure: the schedule is data; ``next_step`` decides after each attempt.

Attempt n (1-based) is made ``schedule[n-1]`` after the previous one failed; attempt 1 is
immediate. A receiver's ``Retry-After`` can only push the next attempt later, never earlier.

Retry tiers. Each distinct delay of the schedule after the first is a *tier*: one retry topic
(``hookstream.retry.30s``) whose messages the scheduler holds for about that long. A retry is
routed to the **largest tier whose delay is not longer than its real delay** (``tier_for``).
The schedule's own delay is always a tier and ``Retry-After`` only ever makes the real delay
longer, so such a tier always exists, and it keeps the one invariant the scheduler needs:
every message on tier T is due no earlier than T after it was written. A retry due later than
its tier holds it (``Retry-After: 120`` lands on the 30 s tier of the default schedule) leaves
the head of its partition after T and hops on (``app.scheduler.policy.plan``), so nothing
queued behind it ever waits for it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta


@dataclass(frozen=True, slots=True)
class Done:
    """The attempt succeeded; nothing more to send."""


@dataclass(frozen=True, slots=True)
class RetryAt:
    attempt: int  # the number of the next attempt
    delay: timedelta  # the tier: names the retry topic (``tier_for`` the real delay)
    due_at: datetime  # the real due time: now + max(schedule delay, Retry-After)


@dataclass(frozen=True, slots=True)
class GiveUp:
    attempts: int


Step = Done | RetryAt | GiveUp


def retry_tiers(schedule: Sequence[timedelta]) -> tuple[timedelta, ...]:
    """The schedule's retry tiers, shortest first: its distinct delays after attempt 1."""
    return tuple(sorted(set(schedule[1:])))


def tier_for(delay: timedelta, tiers: Sequence[timedelta]) -> timedelta | None:
    """The largest tier not longer than ``delay``; None when even the shortest is longer."""
    return max((tier for tier in tiers if tier <= delay), default=None)


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
    # ``delay`` itself is a tier not longer than ``wait``, so a tier always fits.
    tier = tier_for(wait, retry_tiers(schedule))
    tier = delay if tier is None else tier
    return RetryAt(attempt=attempt + 1, delay=tier, due_at=now + wait)
