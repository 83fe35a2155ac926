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
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from app import metrics
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
