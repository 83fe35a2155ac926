"""A coroutine's first step run in place (``app.worker.eager``), and the match consumer's
hand-over race built on it (``app.worker.stream.MatchConsumer.wait_first``)."""

from __future__ import annotations

import asyncio
import warnings
from typing import Any

import pytest

from app.worker import eager


async def _returns(value: int) -> int:
    return value


async def _raises() -> int:
    raise ValueError("bad event")


async def _waits(gate: asyncio.Future[int], then: int) -> int:
    got = await gate
    return got + then


async def _sleeps_then(value: int) -> int:
    await asyncio.sleep(0)  # a bare yield to the task
    return value


async def test_a_coroutine_that_never_suspends_finishes_in_its_first_step() -> None:
    finished, outcome = eager.first_step(_returns(7))
    assert (finished, outcome) == (True, 7)


async def test_what_the_first_step_raises_reaches_the_caller() -> None:
    with pytest.raises(ValueError, match="bad event"):
        eager.first_step(_raises())


async def test_a_suspended_coroutine_goes_on_from_where_it_waited() -> None:
    gate: asyncio.Future[int] = asyncio.get_running_loop().create_future()
    finished, rest = eager.first_step(_waits(gate, 1))
    assert not finished
    task = asyncio.ensure_future(rest)  # type: ignore[arg-type]
    await asyncio.sleep(0)
    assert not task.done()  # still waiting for the very future it suspended on
    gate.set_result(41)
    assert await task == 42


async def test_a_bare_yield_is_passed_to_the_task() -> None:
    finished, rest = eager.first_step(_sleeps_then(5))
    assert not finished
    assert await asyncio.ensure_future(rest) == 5  # type: ignore[arg-type]


async def test_cancelling_the_task_cancels_the_suspended_coroutine() -> None:
    cleaned: list[str] = []

    async def holds(gate: asyncio.Future[None]) -> None:
        try:
            await gate
        except asyncio.CancelledError:
            cleaned.append("cancelled")
            raise

    gate: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    _, rest = eager.first_step(holds(gate))
    task = asyncio.ensure_future(rest)  # type: ignore[arg-type]
    await asyncio.sleep(0)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert cleaned == ["cancelled"]


class _Flow:
    """What the consumer's race is given besides the hand-over: an event's ``wait()``."""

    def __init__(self) -> None:
        self.event = asyncio.Event()


def _consumer() -> Any:
    """A ``MatchConsumer`` without Faust's start-up: ``wait_first`` needs only the service's
    stop and crash events and its loop."""
    from app.worker.stream import MatchConsumer

    consumer = MatchConsumer.__new__(MatchConsumer)
    consumer._stopped = asyncio.Event()
    consumer._crashed = asyncio.Event()
    consumer._loop = asyncio.get_running_loop()
    return consumer


async def test_the_hand_over_that_does_not_suspend_wins_without_a_race() -> None:
    consumer, flow = _consumer(), _Flow()
    hand_over = _returns(3)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the unstarted flow wait is closed, never "not awaited"
        result = await consumer.wait_first(hand_over, flow.event.wait())
    assert (result.done, result.results, result.stopped) == ([hand_over], [3], False)


async def test_a_hand_over_that_waits_is_cut_short_when_the_flow_is_suspended() -> None:
    consumer, flow = _consumer(), _Flow()
    gate: asyncio.Future[int] = asyncio.get_running_loop().create_future()
    race = asyncio.ensure_future(consumer.wait_first(_waits(gate, 0), flow.event.wait()))
    await asyncio.sleep(0)
    assert not race.done()  # the hand-over is blocked (a full stream queue)
    flow.event.set()  # a rebalance suspends the flow
    result = await asyncio.wait_for(race, 5)
    assert result.results == [True] and not result.stopped  # the flow's wait won
    assert gate.cancelled()  # the blocked hand-over was cancelled where it waited


async def test_a_hand_over_that_waits_and_then_finishes_wins_the_race() -> None:
    consumer, flow = _consumer(), _Flow()
    gate: asyncio.Future[int] = asyncio.get_running_loop().create_future()
    race = asyncio.ensure_future(consumer.wait_first(_waits(gate, 1), flow.event.wait()))
    await asyncio.sleep(0)
    gate.set_result(1)
    result = await asyncio.wait_for(race, 5)
    assert result.results == [2] and not result.stopped


async def test_a_stopped_consumer_races_as_faust_does() -> None:
    consumer, flow = _consumer(), _Flow()
    consumer._stopped.set()
    result = await consumer.wait_first(_returns(1), flow.event.wait())
    assert result.stopped  # Faust's own answer for a stopping service


async def test_a_hand_over_that_raises_leaves_no_unawaited_wait_behind() -> None:
    consumer, flow = _consumer(), _Flow()
    wait = flow.event.wait()
    with pytest.raises(ValueError, match="bad event"):
        await consumer.wait_first(_raises(), wait)
    assert wait.cr_frame is None  # closed, not left for the collector to warn about
