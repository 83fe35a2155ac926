"""⑤ Packing many writes into few requests: grouped by partition key, under the server's
batch limits. Pure (no I/O); ``DeliveryRepository.record_many`` sends what it returns.

Why batches at all: the driver spends its CPU per request, and the recorder writes thousands
of rows a second, so the number of requests is its cost. Why grouped by partition key: the
statements of one key in one unlogged batch become a single mutation on the replica, and
Cassandra counts *keys* (not tables) as partitions — a delivery's state row and its attempt
rows share the delivery id, an event's row and its ``deliveries_by_event`` rows the event id.

The limits (Cassandra 5.0 defaults): a batch over more than 10 keys, or larger than 5 KiB
across keys, makes the server log and return a warning (the driver then logs it for every
request). Single-key batches are exempt from both. So:

- a group (one key) is sent whole, as one batch, however large, up to ``GROUP_MAX_STATEMENTS``
  (larger groups are split: still one key each);
- small groups are packed together while the batch stays under ``MAX_KEYS`` keys,
  ``MAX_BYTES`` estimated bytes and ``GROUP_MAX_STATEMENTS`` statements;
- a request of one statement is sent as that statement, not as a batch.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable
from dataclasses import dataclass, field

from cassandra.query import PreparedStatement

from app.store.session import Params

MAX_KEYS = 8  # under the server's warning threshold of 10 keys per unlogged batch
# Under its 5 KiB warning for batches across keys. The server counts the mutation's size
# (cells, timestamps, TTLs), measured ~1.5x of ``estimate``: hence the margin.
MAX_BYTES = 3000
GROUP_MAX_STATEMENTS = 200  # one key's chunk: a single mutation, kept far from any limit


@dataclass(frozen=True, slots=True)
class Write:
    """One statement with its values, the partition key it writes and its rough size."""

    statement: PreparedStatement
    params: Params
    key: Hashable
    size: int


@dataclass(slots=True)
class Request:
    """What one request to Cassandra carries: one statement, or several as a batch."""

    writes: list[Write] = field(default_factory=list)
    keys: set[Hashable] = field(default_factory=set)
    size: int = 0


def estimate(values: Iterable[object]) -> int:
    """A statement's size, roughly: its text and bytes values plus a fixed cost per value."""
    total = 64
    for value in values:
        if isinstance(value, str | bytes):
            total += len(value) + 16
        elif isinstance(value, dict):
            total += sum(len(k) + len(v) + 24 for k, v in value.items())
        else:
            total += 16
    return total


def pack(writes: Iterable[Write]) -> list[Request]:
    """The requests that carry ``writes``: grouped by key (first-seen order), then packed.

    Every write is in exactly one request, and the writes of one key keep their order.
    """
    groups: dict[Hashable, list[Write]] = {}
    for write in writes:
        groups.setdefault(write.key, []).append(write)
    requests: list[Request] = []
    open_request = Request()
    for key, group in groups.items():
        for start in range(0, len(group), GROUP_MAX_STATEMENTS):
            chunk = group[start : start + GROUP_MAX_STATEMENTS]
            size = sum(w.size for w in chunk)
            if size > MAX_BYTES:  # a big single-key batch goes alone (exempt from the limits)
                requests.append(Request(chunk, {key}, size))
                continue
            if open_request.writes and (
                len(open_request.keys) >= MAX_KEYS
                or open_request.size + size > MAX_BYTES
                or len(open_request.writes) + len(chunk) > GROUP_MAX_STATEMENTS
            ):
                requests.append(open_request)
                open_request = Request()
            open_request.writes.extend(chunk)
            open_request.keys.add(key)
            open_request.size += size
    if open_request.writes:
        requests.append(open_request)
    return requests
