"""Pure decisions of the delay forwarder: where and when a held message leaves (``plan``),
what to forward next, how far a partition may be committed, and how long to wait in
``consume()``.

No Kafka and no clocks here: every function takes the time it needs as an argument, so the
unit tests drive it with tables.

Head-of-line bound. A partition is released in offset order, so whatever its head waits for,
every message behind it waits for too. The retry tiers make that harmless: every message on
tier T is due no earlier than T after it was written (``app.retries`` routes each retry to the
largest tier not longer than its real delay), so a head that leaves by its write time + T
never makes anyone behind it late. ``plan`` keeps that bound for a head that is due *later*
than its tier holds (a receiver's ``Retry-After``): it does not wait there for its due time;
by its write time + T it *hops*: the forwarder re-produces it unchanged (key, headers, body,
due time) to the retry topic of the largest tier that fits what is left, and commits past it
only once Kafka acknowledged the copy. Where it can, the hop lands exactly: it leaves when
what is left equals the next tier's delay, so it is forwarded from there on its due time
without another hop. On the default schedule a 6 h ``Retry-After`` takes two hops and the
worst case is nine (just under 5 min: 30 s legs, one fewer than the ratio of neighbouring
tiers); a unit test walks every chain. The due-time header, never the tier, still decides when
a retry goes to redeliver, so no hop makes it early.

Time model. A message's due time is UTC epoch milliseconds (the ``hs-due-at`` header). The
wall clock is read **once**, when the message is taken in, to turn the due time into a
deadline on the monotonic clock; from then on only the monotonic clock is compared. A wall
clock stepped later can therefore neither release held messages in a burst nor stall them
(RELIABILITY row 44).
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Generic, TypeVar

from app.deliveries import Headers, due_at_ms
from app.retries import tier_for

T = TypeVar("T")

# Longest single consume() wait: bounds how late a stop request or a due head is noticed
# (a due head normally wakes the loop exactly, see ``poll_timeout``).
MAX_WAIT_S = 0.5
# While forwarded messages await their delivery reports, wake this often to serve them and
# commit; only commit latency depends on it, never forwarding lateness.
ACK_WAIT_S = 0.05
# librdkafka does not wake a broker's fetcher on resume(): an idle one notices a resumed
# partition only at its next periodic wakeup, up to a second later (measured with librdkafka
# 2.16). So a held partition is resumed this long before its head is due, and the messages
# behind the head are already fetched when it is forwarded.
RESUME_LEAD_S = 1.0
# ... but a resumed partition with a backlog is paused again at this many held messages,
# which keeps every queue small.
HOLD_CAP = 1000
# A head due at most this much after its tier's hold ends is forwarded in place rather than
# hopped: it absorbs the gap between the worker's due-time clock reading and the message's
# Kafka timestamp (and small clock differences between writers), and it is the most a head
# ever waits beyond its tier's delay.
HOP_SLACK_MS = 1000


def parse_due(headers: Headers | None) -> int | None:
    """The ``hs-due-at`` header as UTC epoch ms, or None when it is missing or unparsable."""
    try:
        return due_at_ms(headers)
    except (ValueError, TypeError):
        return None


def remaining_ms(due_ms: int, now_wall_ms: int) -> int:
    """Milliseconds until ``due_ms``; 0 when it is already due."""
    return max(0, due_ms - now_wall_ms)


def ready_at(due_ms: int | None, now_wall_ms: int, now_mono: float) -> float:
    """The monotonic time (s) at which a message taken in now may be forwarded.

    ``now_wall_ms`` must be the wall clock *floored* to the millisecond: the wait is then never
    shorter than the true remaining time, so a message is never forwarded early. A message
    without a due time is ready at once.
    """
    if due_ms is None:
        return now_mono
    return now_mono + remaining_ms(due_ms, now_wall_ms) / 1000.0


@dataclass(frozen=True, slots=True)
class Forward:
    """Forward to the redeliver topic at ``at_ms`` (UTC epoch ms: the due time)."""

    at_ms: int


@dataclass(frozen=True, slots=True)
class Hop:
    """Re-produce to the retry topic of ``tier`` at ``at_ms``: the message is due later than
    its own tier may hold it."""

    at_ms: int
    tier: timedelta


Plan = Forward | Hop


def plan(
    *,
    due_ms: int | None,
    written_ms: int,
    tier: timedelta,
    tiers: Sequence[timedelta],
    now_ms: int,
) -> Plan:
    """Where and when a message taken in from the retry topic of ``tier`` leaves.

    ``written_ms`` is its Kafka timestamp, ``due_ms`` its ``hs-due-at``, ``now_ms`` the wall
    clock at take-in (all UTC epoch ms). The message never leaves later than
    ``max(now, written + tier) + HOP_SLACK_MS``, and never goes to redeliver before it is due.
    """
    if due_ms is None:
        return Forward(now_ms)
    # A timestamp in the future (a writer's clock ahead) must not stretch the hold.
    hold_end = min(written_ms, now_ms) + _ms(tier)
    if due_ms <= hold_end + HOP_SLACK_MS:
        return Forward(due_ms)
    # A zero tier holds nothing: hopping to it would only hop again at once.
    target = tier_for(timedelta(milliseconds=due_ms - now_ms), [t for t in tiers if t > _ZERO])
    if target is None:
        # Less than the shortest tier is left: the message was read long after it was written
        # (a restart, a lagging partition). Any tier would hold it as long as waiting here does.
        return Forward(due_ms)
    # Leave when what is left equals the target's delay (then the target forwards it on its
    # due time), but no later than this tier's hold allows and never in the past.
    return Hop(max(now_ms, min(hold_end, due_ms - _ms(target))), target)


_ZERO = timedelta(0)


def _ms(delay: timedelta) -> int:
    return delay // timedelta(milliseconds=1)


def lateness_ms(forwarded_at_ms: float, due_ms: int) -> float:
    """How late a forward was: forward time minus due time (negative would mean early)."""
    return forwarded_at_ms - due_ms


def should_pause(held: int, head_ready: float | None, now_mono: float) -> bool:
    """Whether a partition with ``held`` messages (head ready at ``head_ready``) is paused."""
    if held == 0 or head_ready is None:
        return False
    if held >= HOLD_CAP:
        return True
    return head_ready - now_mono > RESUME_LEAD_S


def next_wake(heads: list[tuple[float, bool]]) -> float | None:
    """When the loop must act next, for heads given as (ready_at, paused).

    A head ready time is when to forward; for a paused partition, ``RESUME_LEAD_S`` before it
    is when to resume.
    """
    return min((at - RESUME_LEAD_S if paused else at for at, paused in heads), default=None)


def poll_timeout(now_mono: float, next_ready: float | None, awaiting_acks: bool) -> float:
    """How long the next ``consume()`` may block.

    Wakes at the earliest held deadline (rounded up to the next millisecond, because
    librdkafka truncates the timeout to whole ms and waking early would only spin), never
    longer than ``MAX_WAIT_S`` so the loop keeps polling and notices a stop request.
    """
    limit = ACK_WAIT_S if awaiting_acks else MAX_WAIT_S
    if next_ready is None:
        return limit
    until = max(0.0, next_ready - now_mono)
    return min(limit, math.ceil(until * 1000) / 1000)


@dataclass(slots=True)
class Held(Generic[T]):
    """One message taken from a partition and not forwarded yet.

    ``ready_at`` (monotonic s) is when it leaves: to the redeliver topic, or, when ``hop`` is
    set, to the retry topic of that tier (see ``plan``).
    """

    item: T
    offset: int
    due_ms: int | None
    ready_at: float
    hop: timedelta | None = None


class HoldQueue(Generic[T]):
    """The messages taken from one partition and not yet forwarded, in offset order.

    The head decides: a later message is never forwarded before an earlier one, even if its
    own due time has passed (per-partition order is kept). That costs nothing because a head
    leaves by its write time + its tier's delay (``plan``), when nothing behind it is due yet.
    """

    __slots__ = ("_items",)

    def __init__(self) -> None:
        self._items: deque[Held[T]] = deque()

    def add(self, held: Held[T]) -> None:
        self._items.append(held)

    def head(self) -> Held[T] | None:
        return self._items[0] if self._items else None

    def head_ready(self, now_mono: float) -> Held[T] | None:
        """The head if it may be forwarded now, else None."""
        head = self.head()
        return head if head is not None and head.ready_at <= now_mono else None

    def pop(self) -> Held[T]:
        return self._items.popleft()

    def next_ready(self) -> float | None:
        head = self.head()
        return head.ready_at if head is not None else None

    def last_offset(self) -> int | None:
        return self._items[-1].offset if self._items else None

    def __len__(self) -> int:
        return len(self._items)

    def __iter__(self) -> Iterator[Held[T]]:
        return iter(self._items)


@dataclass(slots=True)
class Sent:
    """A forwarded message awaiting its delivery report."""

    offset: int
    done: bool = False
    error: str | None = None


class AckTracker:
    """Forwarded messages of one partition, in offset order, until Kafka acknowledges them.

    ``commit_offset()`` releases only the contiguous acknowledged prefix, so the committed
    position never passes a message whose delivery is pending or failed.
    """

    __slots__ = ("_sent",)

    def __init__(self) -> None:
        self._sent: deque[Sent] = deque()

    def track(self, sent: Sent) -> None:
        self._sent.append(sent)

    def commit_offset(self) -> int | None:
        """Drop the acknowledged prefix; the offset to commit after it (last + 1), or None."""
        last: int | None = None
        while self._sent and self._sent[0].done and self._sent[0].error is None:
            last = self._sent.popleft().offset
        return None if last is None else last + 1

    def failed(self) -> Sent | None:
        """The first forwarded message whose delivery failed, if any."""
        return next((s for s in self._sent if s.done and s.error is not None), None)

    def last_offset(self) -> int | None:
        return self._sent[-1].offset if self._sent else None

    def __len__(self) -> int:
        return len(self._sent)
