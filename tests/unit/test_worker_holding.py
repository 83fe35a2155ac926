"""The worker's pure pieces for surviving outages: hand-off backoff, health, the dedupe window."""

from __future__ import annotations

import pytest

from app.errors import HandOffError, StackError
from app.worker import handoff
from app.worker.handoff import Health, backoff, hand_off
from app.worker.recent import RecentEvents


@pytest.mark.parametrize(
    ("attempt", "seconds"),
    [(1, 0.2), (2, 0.4), (3, 0.8), (4, 1.6), (5, 3.2), (6, 5.0), (50, 5.0)],
)
def test_backoff_doubles_and_is_capped(attempt: int, seconds: float) -> None:
    assert backoff(attempt) == pytest.approx(seconds)


async def test_a_hand_off_is_retried_until_it_succeeds_and_health_follows(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(handoff, "FIRST_BACKOFF_S", 0.001)
    health = Health()
    seen: list[bool] = []
    calls = 0

    async def flaky() -> str:
        nonlocal calls
        calls += 1
        seen.append(health.ready)
        if calls < 4:
            raise HandOffError("kafka: all brokers down")
        return "done"

    assert await hand_off(health, flaky) == "done"
    assert calls == 4
    assert seen == [True, False, False, False]  # not ready from the first failure on
    assert health.ready  # and ready again once it went through


async def test_a_bug_is_not_waited_out() -> None:
    health = Health()

    async def broken() -> None:
        raise StackError("not an outage")

    with pytest.raises(StackError):
        await hand_off(health, broken)
    assert health.ready


def test_health_reports_a_known_outage_without_a_failed_hand_off() -> None:
    down = True
    health = Health(lambda: down)
    assert not health.ready
    down = False
    assert health.ready


def test_recent_events_remember_the_newest_within_their_size() -> None:
    recent = RecentEvents(3)
    for event_id in ("a", "b", "c"):
        recent.add(event_id)
    recent.add("a")  # seen again: now the newest
    recent.add("d")  # pushes out the oldest, "b"
    assert [e in recent for e in ("a", "b", "c", "d")] == [True, False, True, True]
    assert len(recent) == 3


def test_a_window_of_zero_remembers_nothing() -> None:
    recent = RecentEvents(0)
    recent.add("a")
    assert "a" not in recent
