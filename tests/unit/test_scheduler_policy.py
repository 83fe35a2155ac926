"""The scheduler's pure decisions, by table: forward or hop, due times, lateness, hold queues,
acks, waits."""

from __future__ import annotations

from datetime import timedelta

import pytest

from app.retries import retry_tiers, tier_for
from app.scheduler.policy import (
    ACK_WAIT_S,
    HOLD_CAP,
    HOP_SLACK_MS,
    MAX_WAIT_S,
    RESUME_LEAD_S,
    AckTracker,
    Forward,
    Held,
    HoldQueue,
    Hop,
    Plan,
    Sent,
    lateness_ms,
    next_wake,
    parse_due,
    plan,
    poll_timeout,
    ready_at,
    remaining_ms,
    should_pause,
)

S = 1000  # ms
M = 60 * S
H = 60 * M
SEED_TIERS = retry_tiers(
    tuple(timedelta(milliseconds=d) for d in (0, 30 * S, 5 * M, 30 * M, 2 * H))
)
T30S, T5M, T30M, T2H = SEED_TIERS


# Each row: the message's due time, Kafka timestamp and tier, the wall clock at take-in, and
# where and when it leaves. Times in ms; the message was written at 0 unless said otherwise.
@pytest.mark.parametrize(
    ("due", "written", "tier", "now", "expected"),
    [
        # Due within its tier's hold: forwarded on its due time, in place.
        (30 * S, 0, T30S, 0, Forward(30 * S)),
        (30 * S, 0, T30S, 29 * S, Forward(30 * S)),  # taken in late (behind a held head)
        (30 * S + HOP_SLACK_MS, 0, T30S, 0, Forward(30 * S + HOP_SLACK_MS)),  # within the slack
        (5 * M, 0, T5M, 0, Forward(5 * M)),
        (10 * S, 0, T30S, 0, Forward(10 * S)),  # due sooner than its tier (not how we route)
        (None, 0, T30S, 7, Forward(7)),  # no due time: at once
        (-5 * S, 0, T30S, 0, Forward(-5 * S)),  # overdue: at once (ready_at clamps)
        # Retry-After: 120 on the 30 s tier: leaves after 30 s for the 30 s tier again.
        (120 * S, 0, T30S, 0, Hop(30 * S, T30S)),
        # Just past the slack: leaves when exactly 30 s are left, then is forwarded in place.
        (30 * S + HOP_SLACK_MS + 1, 0, T30S, 0, Hop(HOP_SLACK_MS + 1, T30S)),
        # The hop lands exactly when it can: it leaves when what is left is a tier's delay.
        (60 * S, 0, T30S, 0, Hop(30 * S, T30S)),
        (50 * S, 0, T30S, 0, Hop(20 * S, T30S)),
        (6 * M, 0, T5M, 0, Hop(1 * M, T5M)),
        (6 * H, 0, T2H, 0, Hop(2 * H, T2H)),
        (6 * H, 2 * H, T2H, 2 * H, Hop(4 * H, T2H)),  # its second leg
        (6 * H, 0, T30S, 0, Hop(30 * S, T2H)),  # on a tier far too short (an old worker)
        # Read long after it was written (a restart): leaves at once for the tier that fits.
        (6 * H, 0, T30S, 1 * H, Hop(1 * H, T2H)),
        (1 * H + 100 * S, 0, T30S, 1 * H, Hop(1 * H, T30S)),  # its hold is long over
        # ... unless less than the shortest tier is left: then it waits here.
        (1 * H + 20 * S, 0, T30S, 1 * H, Forward(1 * H + 20 * S)),
        # A timestamp from a writer's clock ahead of ours does not stretch the hold.
        (120 * S, 1 * H, T30S, 0, Hop(30 * S, T30S)),
    ],
)
def test_plan_forwards_in_place_or_hops(
    due: int | None, written: int, tier: timedelta, now: int, expected: Plan
) -> None:
    assert plan(due_ms=due, written_ms=written, tier=tier, tiers=SEED_TIERS, now_ms=now) == expected


@pytest.mark.parametrize(
    ("tiers", "due", "tier", "expected"),
    [
        # A zero tier (schedule 0,0,1s) holds nothing: never hop to it, or it would hop again.
        ((timedelta(0), timedelta(seconds=1)), 5 * S, timedelta(0), Hop(0, timedelta(seconds=1))),
        ((timedelta(0),), 5 * S, timedelta(0), Forward(5 * S)),
        ((timedelta(0),), 0, timedelta(0), Forward(0)),
    ],
)
def test_plan_with_a_zero_tier(
    tiers: tuple[timedelta, ...], due: int, tier: timedelta, expected: Plan
) -> None:
    assert plan(due_ms=due, written_ms=0, tier=tier, tiers=tiers, now_ms=0) == expected


def _chain(due: int, tier: timedelta) -> list[tuple[int, timedelta]]:
    """Every leg of a retry written at 0 on ``tier``: (time it is written, tier), until it is
    forwarded; each hop's copy is written when the hop leaves."""
    legs, now = [(0, tier)], 0
    while isinstance(
        step := plan(due_ms=due, written_ms=now, tier=tier, tiers=SEED_TIERS, now_ms=now), Hop
    ):
        assert now <= step.at_ms <= now + tier // timedelta(milliseconds=1) + HOP_SLACK_MS
        now, tier = step.at_ms, step.tier
        legs.append((now, tier))
    assert step == Forward(due)  # the due time decides: never early, never later than due
    return legs


@pytest.mark.parametrize("first", ["routed", "schedule"])
def test_every_hop_chain_keeps_the_bound_and_ends_on_time(first: str) -> None:
    """Retry-After from 30 s to the 6 h clamp, routed as ``app.retries`` does (or left on the
    30 s tier by a worker that does not route): every leg on tier T leaves within T (+ slack)
    of being written and is due no earlier than T after it, so it holds nobody back; the last
    leg is forwarded on the due time; the chain is short."""
    worst = 0
    for due in range(30 * S, 6 * H + 1, 997):
        tier = T30S if first == "schedule" else tier_for(timedelta(milliseconds=due), SEED_TIERS)
        assert tier is not None
        legs = _chain(due, tier)
        for written, leg_tier in legs:
            assert due - written >= leg_tier // timedelta(milliseconds=1)  # the tier invariant
        worst = max(worst, len(legs) - 1)
    assert worst <= 10  # at most ~ the ratio of neighbouring tiers (5 min / 30 s)


def test_a_long_retry_after_takes_few_hops() -> None:
    assert len(_chain(6 * H, T2H)) - 1 == 2  # 2 h, 2 h, then due in exactly 2 h
    assert len(_chain(120 * S, T30S)) - 1 == 3  # four 30 s legs
    assert len(_chain(30 * S, T30S)) - 1 == 0


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ([("hs-due-at", b"1700000000123")], 1700000000123),
        ([("hs-attempt", b"2"), ("hs-due-at", b"5")], 5),
        ({"hs-due-at": b"42"}, 42),
        ([], None),
        (None, None),
        ([("hs-due-at", None)], None),
        ([("hs-due-at", b"soon")], None),
        ([("hs-due-at", b"")], None),
        ([("hs-due-at", b"1.5e12")], None),
    ],
)
def test_parse_due(headers: object, expected: int | None) -> None:
    assert parse_due(headers) == expected  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("due", "now_wall", "now_mono", "expected"),
    [
        (10_000, 9_000, 100.0, 101.0),  # due in 1 s
        (10_000, 10_000, 100.0, 100.0),  # due now
        (10_000, 12_500, 100.0, 100.0),  # overdue: at once, not "in the past"
        (None, 10_000, 100.0, 100.0),  # no due time: at once
        (10_000, 9_999, 5.0, 5.001),  # 1 ms ahead still waits
        # The local wall clock an hour behind at take-in: the UTC due header still decides.
        (10_000, 10_000 - 3_600_000, 0.0, 3600.0),
    ],
)
def test_ready_at(due: int | None, now_wall: int, now_mono: float, expected: float) -> None:
    assert ready_at(due, now_wall, now_mono) == pytest.approx(expected)


def test_wall_clock_steps_after_take_in_do_not_matter() -> None:
    # ready_at is computed once; later wall-clock readings never enter the decision.
    queue: HoldQueue[str] = HoldQueue()
    queue.add(Held("m", 0, 10_000, ready_at(10_000, 9_000, 50.0)))
    assert queue.head_ready(50.999) is None
    held = queue.head_ready(51.0)
    assert held is not None and held.item == "m"


@pytest.mark.parametrize(
    ("due", "now", "expected"), [(10, 4, 6), (10, 10, 0), (10, 11, 0), (0, 1_000, 0)]
)
def test_remaining_ms(due: int, now: int, expected: int) -> None:
    assert remaining_ms(due, now) == expected


@pytest.mark.parametrize(
    ("forwarded_at", "due", "expected"),
    [(1_000.0, 1_000, 0.0), (1_250.5, 1_000, 250.5), (999.0, 1_000, -1.0)],
)
def test_lateness(forwarded_at: float, due: int, expected: float) -> None:
    assert lateness_ms(forwarded_at, due) == expected


def _queue(*ready: float) -> HoldQueue[int]:
    queue: HoldQueue[int] = HoldQueue()
    for offset, at in enumerate(ready):
        queue.add(Held(offset, offset, None, at))
    return queue


def _drain(queue: HoldQueue[int], now: float) -> list[int]:
    out = []
    while (held := queue.head_ready(now)) is not None:
        out.append(queue.pop().offset)
        assert held.offset == out[-1]
    return out


@pytest.mark.parametrize(
    ("ready", "now", "forwarded", "left"),
    [
        ((), 10.0, [], 0),
        ((1.0, 2.0, 3.0), 0.5, [], 3),  # head not due: nothing
        ((1.0, 2.0, 3.0), 2.0, [0, 1], 1),  # due prefix, in order
        ((1.0, 2.0, 3.0), 9.0, [0, 1, 2], 0),
        # A later message that is due waits behind a head that is not (order is kept; with
        # tiers routed and heads leaving by their tier's hold this only happens with skewed
        # producer clocks).
        ((5.0, 1.0), 2.0, [], 2),
        ((5.0, 1.0), 5.0, [0, 1], 0),
    ],
)
def test_hold_queue_forwards_the_due_prefix(
    ready: tuple[float, ...], now: float, forwarded: list[int], left: int
) -> None:
    queue = _queue(*ready)
    assert _drain(queue, now) == forwarded
    assert len(queue) == left


def test_hold_queue_next_ready_is_the_head() -> None:
    assert _queue().next_ready() is None
    assert _queue(3.0, 1.0).next_ready() == 3.0
    assert _queue(3.0, 1.0).last_offset() == 1


# Each report: (offset, done, error). Commit offset is last acknowledged prefix + 1.
@pytest.mark.parametrize(
    ("reports", "commit", "failed"),
    [
        ([], None, None),
        ([(5, False, None)], None, None),
        ([(5, True, None)], 6, None),
        ([(5, True, None), (6, True, None), (9, True, None)], 10, None),  # gaps in offsets
        ([(5, True, None), (6, False, None), (7, True, None)], 6, None),  # pending blocks
        ([(5, False, None), (6, True, None)], None, None),  # out-of-order ack: no commit
        ([(5, True, None), (6, True, "timed out"), (7, True, None)], 6, 6),  # failure blocks
        ([(5, True, "timed out")], None, 5),
    ],
)
def test_ack_tracker_commits_only_the_acknowledged_prefix(
    reports: list[tuple[int, bool, str | None]], commit: int | None, failed: int | None
) -> None:
    acks = AckTracker()
    for offset, done, error in reports:
        acks.track(Sent(offset, done, error))
    assert acks.commit_offset() == commit
    failure = acks.failed()
    assert (failure.offset if failure else None) == failed
    assert acks.commit_offset() is None  # the prefix is released once


def test_ack_tracker_releases_more_as_reports_arrive() -> None:
    acks = AckTracker()
    first, second = Sent(0), Sent(1)
    acks.track(first)
    acks.track(second)
    second.done = True
    assert acks.commit_offset() is None
    first.done = True
    assert acks.commit_offset() == 2
    assert len(acks) == 0


@pytest.mark.parametrize(
    ("now", "next_ready", "awaiting_acks", "expected"),
    [
        (0.0, None, False, MAX_WAIT_S),
        (0.0, None, True, ACK_WAIT_S),
        (0.0, 10.0, False, MAX_WAIT_S),  # far deadline: still poll regularly
        (0.0, 0.2, False, 0.2),  # wake exactly at the deadline
        (0.0, 0.2, True, ACK_WAIT_S),
        (1.0, 0.5, False, 0.0),  # overdue: do not block
        (0.0, 0.0104, False, 0.011),  # rounded up to whole ms, never early
    ],
)
def test_poll_timeout(
    now: float, next_ready: float | None, awaiting_acks: bool, expected: float
) -> None:
    assert poll_timeout(now, next_ready, awaiting_acks) == pytest.approx(expected)


@pytest.mark.parametrize(
    ("held", "head_ready", "now", "paused"),
    [
        (0, None, 0.0, False),  # nothing held: read on
        (1, 100.0, 0.0, True),  # head far from due: hold, pause
        (3, 0.0, 5.0, False),  # head due: forward, read on
        (1, RESUME_LEAD_S + 0.01, 0.0, True),
        (1, RESUME_LEAD_S, 0.0, False),  # within the lead: resume so the next are fetched
        (HOLD_CAP - 1, 0.5, 0.0, False),
        (HOLD_CAP, 0.5, 0.0, True),  # a backlog piles up: pause again
        (HOLD_CAP, 0.0, 5.0, True),
    ],
)
def test_should_pause(held: int, head_ready: float | None, now: float, paused: bool) -> None:
    assert should_pause(held, head_ready, now) is paused


@pytest.mark.parametrize(
    ("heads", "expected"),
    [
        ([], None),
        ([(10.0, False)], 10.0),  # forward when due
        ([(10.0, True)], 10.0 - RESUME_LEAD_S),  # resume ahead of the due head
        ([(10.0, True), (9.95, False)], min(10.0 - RESUME_LEAD_S, 9.95)),
    ],
)
def test_next_wake(heads: list[tuple[float, bool]], expected: float | None) -> None:
    assert next_wake(heads) == expected
