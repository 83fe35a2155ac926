"""A coroutine's first step run at once, in the caller, and a task made only if it suspends.

Why: Faust's consumer hands each message to its conductor with ``wait_first(callback(message),
suspend_flow.wait())`` (``app.worker.stream.MatchConsumer``): four tasks, an ``asyncio.wait``
and three cancellations per message, and the next message waits until the loop has come
round twice to notice the first one is done. The callback nearly always finishes without
suspending (it puts the message on the stream's queue), so running its first step in place
decides the race at once. Only a callback that does suspend (a full queue: back-pressure)
is continued through the general race, where a rebalance's ``suspend_flow`` still cuts it
short. (Python 3.12's eager task factory does this for every task; the worker runs 3.11.)
"""

from __future__ import annotations

from collections.abc import Coroutine, Generator
from typing import Any, Generic, TypeVar

T = TypeVar("T")


class Continued(Generic[T]):
    """An awaitable that goes on with ``coro`` from where its first step suspended on
    ``yielded`` (what the coroutine handed its task: a future to wait for, or None for a bare
    yield). Await it once, from a task: it yields the same object, so the task waits for
    exactly what the coroutine was waiting for, then passes every value or exception in."""

    __slots__ = ("_coro", "_yielded")

    def __init__(self, coro: Coroutine[Any, Any, T], yielded: Any) -> None:
        self._coro = coro
        self._yielded = yielded

    def __await__(self) -> Generator[Any, Any, T]:
        coro, yielded = self._coro, self._yielded
        while True:
            try:
                sent = yield yielded
            except GeneratorExit:
                coro.close()
                raise
            except BaseException as exc:  # thrown in by the task: a cancellation, mostly
                try:
                    yielded = coro.throw(exc)
                except StopIteration as stop:
                    return stop.value  # type: ignore[no-any-return]
            else:
                try:
                    yielded = coro.send(sent)
                except StopIteration as stop:
                    return stop.value  # type: ignore[no-any-return]


def first_step(coro: Coroutine[Any, Any, T]) -> tuple[bool, T | Continued[T]]:
    """Run ``coro`` until it first suspends: ``(True, result)`` if it finished, else
    ``(False, rest)`` with ``rest`` the awaitable that finishes it. Raises what the first
    step raises."""
    try:
        yielded = coro.send(None)
    except StopIteration as stop:
        return True, stop.value
    return False, Continued(coro, yielded)
