"""Acknowledge in offset order per partition, only what is finished.

faust-streaming can commit past a message that is still in flight when acks arrive out of
order (faust-streaming issue 606). So the agents never ack a message when its own work ends:
they report it here, and only the contiguous finished prefix of each partition is released
for acking. Messages of a partition arrive in offset order, so arrival order is offset order.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Hashable
from typing import Generic, TypeVar

T = TypeVar("T")


class OrderedAcks(Generic[T]):
    """Per-partition FIFO of in-flight items; ``finish`` returns the items now safe to ack."""

    def __init__(self) -> None:
        self._queues: dict[Hashable, deque[list[object]]] = {}
        self._in_flight = 0

    @property
    def in_flight(self) -> int:
        return self._in_flight

    def admit(self, partition: Hashable, item: T) -> object:
        """Register ``item`` (the next offset of ``partition``); returns a ticket for finish."""
        ticket: list[object] = [item, False]
        self._queues.setdefault(partition, deque()).append(ticket)
        self._in_flight += 1
        return ticket

    def finish(self, partition: Hashable, ticket: object) -> list[T]:
        """Mark done; return the contiguous finished prefix of the partition (to ack now)."""
        assert isinstance(ticket, list)
        ticket[1] = True
        queue = self._queues.get(partition)
        released: list[T] = []
        while queue and queue[0][1]:
            released.append(queue.popleft()[0])  # type: ignore[arg-type]
        self._in_flight -= len(released)
        return released

    def forget(self, partition: Hashable) -> int:
        """Drop a revoked partition's bookkeeping; returns how many items were unfinished."""
        queue = self._queues.pop(partition, deque())
        self._in_flight -= len(queue)
        return len(queue)
