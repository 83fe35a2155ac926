"""② The match step's memory of recent event ids: a bounded window instead of a read.

One delivery chain per (event, webhook): an event produced twice must not be delivered
twice. The first wave asked Cassandra for every event ("was it matched?"), a round trip per
event. Delivery ids are a pure function of (event id, webhook id) and every record is an
idempotent upsert, so the store stays exact whatever happens; what the window saves is the
receiver seeing a duplicate. It remembers the last ``size`` event ids this worker matched
(a producer's retry arrives seconds later, well inside it). Not covered, by design: a
duplicate that lands on another worker's partition, or arrives after a restart — the
receiver dedupes those by the same ``webhook-id``, as Standard Webhooks asks.
"""

from __future__ import annotations

from collections import OrderedDict


class RecentEvents:
    def __init__(self, size: int) -> None:
        self._size = size
        self._ids: OrderedDict[str, None] = OrderedDict()

    def __contains__(self, event_id: object) -> bool:
        return event_id in self._ids

    def __len__(self) -> int:
        return len(self._ids)

    def add(self, event_id: str) -> None:
        if self._size == 0:
            return
        self._ids[event_id] = None
        self._ids.move_to_end(event_id)
        while len(self._ids) > self._size:
            self._ids.popitem(last=False)
