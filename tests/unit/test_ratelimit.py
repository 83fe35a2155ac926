"""Per-webhook token buckets: a burst of one second, then evenly spaced, nothing dropped."""

from __future__ import annotations

from app.worker.ratelimit import RateLimits


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_a_burst_of_one_second_then_one_token_per_interval() -> None:
    clock = Clock()
    limits = RateLimits(clock)
    delays = [limits.reserve("hook_1", 4) for _ in range(8)]
    # 4 at once (the burst), then the next four due 0.25 s apart: queued, not refused.
    assert delays == [0, 0, 0, 0, 0.25, 0.5, 0.75, 1.0]


def test_tokens_refill_with_time_up_to_the_burst() -> None:
    clock = Clock()
    limits = RateLimits(clock)
    for _ in range(4):
        limits.reserve("hook_1", 4)
    clock.now += 0.5  # two tokens back
    assert [limits.reserve("hook_1", 4) for _ in range(3)] == [0, 0, 0.25]
    clock.now += 60  # a long idle refills only to the burst
    assert [limits.reserve("hook_1", 4) for _ in range(5)] == [0, 0, 0, 0, 0.25]


def test_webhooks_have_their_own_buckets_and_a_changed_limit_starts_afresh() -> None:
    clock = Clock()
    limits = RateLimits(clock)
    assert limits.reserve("hook_1", 1) == 0 and limits.reserve("hook_1", 1) == 1.0
    assert limits.reserve("hook_2", 1) == 0
    assert limits.reserve("hook_1", 10) == 0
