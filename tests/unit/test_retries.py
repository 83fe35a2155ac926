"""③ Retry policy, pure: the seed's schedule as a table, Retry-After only ever later, and each
retry routed to the largest tier not longer than its real delay."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from app.retries import Done, GiveUp, RetryAt, Step, next_step, retry_tiers, tier_for
from app.settings import Settings

NOW = datetime(2026, 1, 15, 12, 30, tzinfo=UTC)
S = timedelta(seconds=1)
M = timedelta(minutes=1)
H = timedelta(hours=1)
# The seed: 1 immediate, 2 after 30 seconds, 3 after 5 minutes, 4 after 30 minutes, 5 after 2 h;
# after 5 failed attempts the delivery is failed.
SEED_SCHEDULE = (timedelta(0), 30 * S, 5 * M, 30 * M, 2 * H)


def step(attempt: int, succeeded: bool, retry_after: timedelta | None = None) -> Step:
    return next_step(
        attempt=attempt,
        succeeded=succeeded,
        schedule=SEED_SCHEDULE,
        now=NOW,
        retry_after=retry_after,
    )


def test_the_default_settings_schedule_is_the_seeds() -> None:
    assert Settings.model_fields["retry_schedule"].default == SEED_SCHEDULE


@pytest.mark.parametrize(
    ("attempt", "expected"),
    [
        (1, RetryAt(attempt=2, delay=30 * S, due_at=NOW + 30 * S)),
        (2, RetryAt(attempt=3, delay=5 * M, due_at=NOW + 5 * M)),
        (3, RetryAt(attempt=4, delay=30 * M, due_at=NOW + 30 * M)),
        (4, RetryAt(attempt=5, delay=2 * H, due_at=NOW + 2 * H)),
        (5, GiveUp(attempts=5)),
    ],
)
def test_a_failed_attempt_follows_the_seed_schedule(attempt: int, expected: Step) -> None:
    assert step(attempt, succeeded=False) == expected


@pytest.mark.parametrize("attempt", [1, 2, 3, 4, 5])
def test_a_successful_attempt_is_done(attempt: int) -> None:
    assert step(attempt, succeeded=True) == Done()
    assert step(attempt, succeeded=True, retry_after=H) == Done()


@pytest.mark.parametrize(
    ("attempt", "retry_after", "delay", "due_in"),
    [
        # Retry-After later than the schedule pushes the attempt later, and the retry goes to
        # the largest tier not longer than that real delay (the tier names the retry topic).
        (1, 2 * M, 30 * S, 2 * M),  # 2 min on the 30 s tier: 5 min would hold it too long
        (1, 5 * M, 5 * M, 5 * M),
        (1, 7 * M, 5 * M, 7 * M),
        (1, 2 * H, 2 * H, 2 * H),
        (1, 6 * H, 2 * H, 6 * H),  # the 6 h clamp of max_retry_after: the longest tier
        (2, 10 * M, 5 * M, 10 * M),
        (2, 45 * M, 30 * M, 45 * M),
        (3, 2 * H + S, 2 * H, 2 * H + S),
        (4, 3 * H, 2 * H, 3 * H),
        # Earlier, equal, zero or negative: never earlier than the schedule.
        (1, 10 * S, 30 * S, 30 * S),
        (2, 5 * M, 5 * M, 5 * M),
        (3, timedelta(0), 30 * M, 30 * M),
        (3, -H, 30 * M, 30 * M),
        (1, None, 30 * S, 30 * S),
    ],
)
def test_retry_after_only_pushes_later(
    attempt: int, retry_after: timedelta | None, delay: timedelta, due_in: timedelta
) -> None:
    assert step(attempt, succeeded=False, retry_after=retry_after) == RetryAt(
        attempt=attempt + 1, delay=delay, due_at=NOW + due_in
    )


@pytest.mark.parametrize(
    ("delay", "tier"),
    [
        (30 * S, 30 * S),
        (30 * S + timedelta(milliseconds=1), 30 * S),
        (5 * M - timedelta(milliseconds=1), 30 * S),
        (5 * M, 5 * M),
        (29 * M, 5 * M),
        (2 * H, 2 * H),
        (6 * H, 2 * H),
        (29 * S, None),  # shorter than every tier
        (timedelta(0), None),
        (-S, None),
    ],
)
def test_tier_for_is_the_largest_tier_not_longer(delay: timedelta, tier: timedelta | None) -> None:
    assert tier_for(delay, retry_tiers(SEED_SCHEDULE)) == tier


@pytest.mark.parametrize(
    ("schedule", "tiers"),
    [
        (SEED_SCHEDULE, (30 * S, 5 * M, 30 * M, 2 * H)),
        ((timedelta(0),), ()),
        ((timedelta(0), M, S, M), (S, M)),  # distinct, shortest first
        ((S, timedelta(0), S), (timedelta(0), S)),  # attempt 1's delay is not a tier
    ],
)
def test_retry_tiers(schedule: tuple[timedelta, ...], tiers: tuple[timedelta, ...]) -> None:
    assert retry_tiers(schedule) == tiers


@pytest.mark.parametrize("retry_after", [None, S, 31 * S, 2 * M, 5 * M, 59 * M, 3 * H, 6 * H])
@pytest.mark.parametrize("attempt", [1, 2, 3, 4])
def test_a_retry_is_never_on_a_tier_longer_than_its_real_delay(
    attempt: int, retry_after: timedelta | None
) -> None:
    """The scheduler's head-of-line bound rests on this: every message on tier T is due at
    least T after it was written, and the tier is one the topics exist for."""
    got = step(attempt, succeeded=False, retry_after=retry_after)
    assert isinstance(got, RetryAt)
    assert got.delay in retry_tiers(SEED_SCHEDULE)
    assert got.delay <= got.due_at - NOW
    assert got.delay >= SEED_SCHEDULE[attempt]  # never a shorter tier than the schedule's own


def test_retry_after_does_not_extend_the_number_of_attempts() -> None:
    assert step(5, succeeded=False, retry_after=timedelta(seconds=1)) == GiveUp(attempts=5)


@pytest.mark.parametrize(
    ("schedule", "attempt", "expected"),
    [
        ((timedelta(0),), 1, GiveUp(attempts=1)),
        ((timedelta(0), S), 1, RetryAt(attempt=2, delay=S, due_at=NOW + S)),
        ((timedelta(0), S), 2, GiveUp(attempts=2)),
        ((timedelta(0), S), 3, GiveUp(attempts=3)),  # past the end: still give up
    ],
)
def test_other_schedules(schedule: tuple[timedelta, ...], attempt: int, expected: Step) -> None:
    got = next_step(attempt=attempt, succeeded=False, schedule=schedule, now=NOW)
    assert got == expected


def test_the_whole_chain_takes_the_seeds_total_delay() -> None:
    now, attempt, total = NOW, 1, timedelta(0)
    while isinstance(
        got := next_step(attempt=attempt, succeeded=False, schedule=SEED_SCHEDULE, now=now), RetryAt
    ):
        total += got.due_at - now
        now, attempt = got.due_at, got.attempt
    assert got == GiveUp(attempts=5)
    assert total == 30 * S + 5 * M + 30 * M + 2 * H
