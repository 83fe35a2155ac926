"""The match agent's shape: admit each message under a bound, run it as a task, ack in order.

- The stream is read without automatic acks (``noack``); each message becomes a task, and a
  strong reference to every task is kept (the event loop holds only weak ones).
- When a task ends, only the contiguous finished prefix of its partition is acked
  (``OrderedAcks``), so the committed offset never passes unfinished work.
- Hand-offs wait out outages inside the handler (``app.worker.handoff``), so a handler
  raises only for a bug; then the message is never acked: ``crash`` stops the worker, and
  its restart re-reads from the committed offset. No exception acks silently.

(The deliver step reads its topics with its own confluent-kafka consumer of the same shape:
``app.worker.attempts``.)

``MatchTransport`` gives Faust a consumer of its own (``MatchConsumer``) for two reasons.

*Seeking back.* Faust drops records it fetched while its flow was stopped (between a
partition's assignment and the end of recovery, or across a rebalance) and relies on seeking
back to the committed offsets to read them again. aiokafka seeks only to a committed offset
above 0, so a partition taken over before anyone committed on it (a worker SIGKILLed right
after its assignment) kept its position after the dropped events; the next ack committed past
them and they were never matched. The transport's consumer seeks such partitions back to the
beginning instead (what ``auto_offset_reset=earliest`` would have read).

*Handing a message over.* Faust's consumer passes each message to its conductor with
``wait_first(callback(message), suspend_flow.wait())``: four tasks, an ``asyncio.wait`` and
three cancellations, and the next message waits until the loop has come round twice. At 400
events/s on the bench the loop's rounds grew long enough that events waited 70-130 ms (p50)
between Kafka and the match step, against 6 ms at 200/s. The consumer runs the callback's
first step in place (``app.worker.eager``); only a callback that suspends (a full stream
queue) goes through Faust's race, so a rebalance still cuts a blocked hand-over short.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from aiokafka.errors import IllegalStateError
from faust.transport.drivers import aiokafka as faust_aiokafka
from mode.services import WaitResults

from app import metrics
from app.worker import eager
from app.worker.acks import OrderedAcks
from app.worker.context import Received, WorkerContext

log = logging.getLogger(__name__)

Handler = Callable[[WorkerContext, Received], Awaitable[Any]]
Crash = Callable[[BaseException], None]


async def consume(
    stream: Any,
    ctx: WorkerContext,
    handler: Handler,
    *,
    limit: int,
    name: str,
    crash: Crash,
) -> None:
    """Run ``handler`` for every message of ``stream`` (a Faust stream), ``limit`` at a time."""
    manual = stream.noack()
    acks: OrderedAcks[Any] = OrderedAcks()
    slots = asyncio.Semaphore(limit)
    tasks: set[asyncio.Task[None]] = set()
    gauge = metrics.IN_FLIGHT.labels(name)

    async def run(event: Any, received: Received, ticket: object) -> None:
        try:
            await handler(ctx, received)
        except asyncio.CancelledError:
            raise
        except BaseException as exc:  # a bug: never ack, stop, re-read after restart
            log.critical(
                "%s: unexpected error on %s[%d]@%d; stopping without ack",
                name,
                received.topic,
                received.partition,
                received.offset,
                exc_info=exc,
            )
            crash(exc)
            return
        finally:
            slots.release()
        for done in acks.finish(event.message.tp, ticket):
            await manual.ack(done)
        gauge.set(acks.in_flight)

    async def admit(event: Any) -> None:
        await slots.acquire()
        message = event.message
        timestamp = getattr(message, "timestamp", None)
        received = Received(
            value=event.value,
            headers=dict(event.headers or {}),
            topic=message.topic,
            partition=message.partition,
            offset=message.offset,
            timestamp_ms=int(timestamp * 1000) if timestamp else None,
        )
        ticket = acks.admit(message.tp, event)
        gauge.set(acks.in_flight)
        task = asyncio.create_task(run(event, received, ticket))
        tasks.add(task)
        task.add_done_callback(tasks.discard)

    try:
        async for event in manual.events():
            await admit(event)
    except asyncio.CancelledError:
        # The agent is stopping (shutdown or rebalance): finish what was started, so its
        # acks happen and Faust's drain (stream_wait_empty) sees them. The tasks stay
        # referenced by ``tasks`` even if this wait is cancelled again.
        if tasks:
            log.info("%s: draining %d in-flight messages", name, len(tasks))
            await asyncio.shield(asyncio.gather(*tasks, return_exceptions=True))
        raise


class MatchConsumer(faust_aiokafka.Consumer):  # type: ignore[misc]
    """Faust's aiokafka consumer whose seek back to the committed offsets also covers the
    partitions nobody has committed on, and which hands a message over without a race when
    the hand-over does not suspend (see the module docstring)."""

    # ``Service.wait_first``'s own signature (mode), ``timeout`` included.
    async def wait_first(
        self,
        *coros: Any,
        timeout: Any = None,  # noqa: ASYNC109
    ) -> WaitResults:
        first = coros[0] if coros else None
        if (
            timeout is not None
            or not asyncio.iscoroutine(first)
            or self._stopped.is_set()
            or self._crashed.is_set()
        ):
            return await super().wait_first(*coros, timeout=timeout)
        try:
            finished, outcome = eager.first_step(first)
        except BaseException:
            _close(coros[1:])
            raise
        if not finished:  # it waits (back-pressure): race it against the others as Faust does
            result: WaitResults = await super().wait_first(outcome, *coros[1:])
            return result
        _close(coros[1:])
        return WaitResults([first], [outcome], False)

    async def seek_to_committed(self) -> Mapping[Any, int]:
        committed: Mapping[Any, int] = await super().seek_to_committed()
        uncommitted = never_committed(committed)
        if uncommitted:
            try:
                await self._thread.seek_to_beginning(*uncommitted)  # the aiokafka side
            except IllegalStateError as exc:  # revoked meanwhile: the next assignment seeks
                log.info("match: no seek back for %s: %s", uncommitted, exc)
        return committed


def _close(coros: tuple[Any, ...]) -> None:
    """Close the race's other coroutines, never started: nothing to cancel, and no "never
    awaited" warning."""
    for other in coros:
        if asyncio.iscoroutine(other):
            other.close()


class MatchTransport(faust_aiokafka.Transport):  # type: ignore[misc]
    Consumer = MatchConsumer


def never_committed(committed: Mapping[Any, int | None]) -> list[Any]:
    """The partitions aiokafka's ``seek_to_committed`` leaves where they are: no committed
    offset (None, -1) or 0."""
    return [tp for tp, offset in committed.items() if offset is None or offset <= 0]
