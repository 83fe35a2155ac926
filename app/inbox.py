"""Hand results from library threads (the Cassandra driver's I/O thread, the attempt
consumer's polling thread) to the event loop, with one wake-up per burst instead of one per result.

``loop.call_soon_threadsafe`` writes to the loop's self-pipe on every call; at thousands of
results a second those wake-ups cost about a tenth of the worker's CPU. The inbox queues
callbacks and schedules a single drain while one is pending.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections import deque
from collections.abc import Callable
from weakref import WeakKeyDictionary

_INBOXES: WeakKeyDictionary[asyncio.AbstractEventLoop, Inbox] = WeakKeyDictionary()
_LOCK = threading.Lock()


class Inbox:
    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._queue: deque[Callable[[], None]] = deque()
        self._scheduled = False
        self._lock = threading.Lock()

    def put(self, callback: Callable[[], None]) -> None:
        """Thread-safe: run ``callback`` on the loop soon."""
        with self._lock:
            self._queue.append(callback)
            if self._scheduled:
                return
            self._scheduled = True
        # RuntimeError: the loop is closed (shut down), so nobody is waiting any more.
        with contextlib.suppress(RuntimeError):
            self._loop.call_soon_threadsafe(self._drain)

    def _drain(self) -> None:
        with self._lock:
            batch, self._queue = self._queue, deque()
            self._scheduled = False
        for callback in batch:
            callback()


def inbox(loop: asyncio.AbstractEventLoop) -> Inbox:
    """The loop's inbox (one per loop)."""
    with _LOCK:
        box = _INBOXES.get(loop)
        if box is None:
            box = _INBOXES[loop] = Inbox(loop)
        return box
