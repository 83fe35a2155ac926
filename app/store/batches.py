"""⑤ Packing many writes into few requests: grouped by partition key, under the server's
batch limits. Pure (no I/O); ``DeliveryRepository.record_many`` sends what it returns.

Why batches at all: the driver spends its CPU per request, and the recorder writes thousands
of rows a second, so the number of requests is its cost. Why grouped by partition key: the
statements of one key in one unlogged batch become a single mutation on the replica, and
Cassandra counts *keys* (not tables) as partitions — a delivery's state row and its attempt
rows share the delivery id.

The limits: a batch over more than ``unlogged_batch_across_partitions_warn_threshold`` keys
(10 by default), or larger than ``batch_size_warn_threshold`` across keys (5 KiB), makes the
server log and return a warning (the driver then logs it for every request); larger than
``batch_size_fail_threshold`` (50 KiB) it is refused. Single-key batches are exempt from all
three. So:

- a group (one key) is sent whole, as one batch, however large, up to ``GROUP_MAX_STATEMENTS``
  (larger groups are split: still one key each);
- small groups are packed together while the batch stays under ``max_keys`` keys,
  ``max_bytes`` estimated bytes and ``GROUP_MAX_STATEMENTS`` statements;
- a request of one statement is sent as that statement, not as a batch.

``MAX_KEYS`` and ``MAX_BYTES`` stay under the server's default warnings. The recorder packs
larger requests (``settings.recorder.request_keys``/``request_bytes``, 32 keys and 24,000
bytes): a successful delivery was two keys of ~1.4 KB (its id's state and attempt, its
event's row and its entry in the event's deliveries, a table since gone), so the defaults
carried one delivery per request, and the driver's cost per request was most of the
recorder's CPU (measured: 560-620 µs per delivery with one per request, 220-245 µs with ~8;
Cassandra's own 1.1 ms fell to 0.7-0.85 ms). The server's warning thresholds must then be
raised to match (the local stack's are); the size estimate runs at ~0.95x of what the server
counts, so 24,000 stays far under the 50 KiB refusal.

Binding is the other cost per statement: the driver's ``PreparedStatement.bind`` spends
~40 µs on a 14-column insert (a descriptor per value, ~5 µs per timestamp through
``calendar.timegm``), more than the request that carries it. ``Binder`` resolves each
column's serialiser once per prepared statement and serialises a row in a few µs, with the
driver's own byte layout (the unit tests compare the two); ``bound`` wraps the values into
the driver's ``BoundStatement`` without binding them again.
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Hashable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from cassandra import cqltypes
from cassandra.query import UNSET_VALUE, BoundStatement, PreparedStatement

from app.store.session import Params

MAX_KEYS = 8  # under the server's default warning threshold of 10 keys per unlogged batch
# Under its default 5 KiB warning for batches across keys. The server counts the mutation's
# size (cells, timestamps, TTLs), measured ~1.5x of ``estimate``: hence the margin.
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


def pack(
    writes: Iterable[Write], *, max_keys: int = MAX_KEYS, max_bytes: int = MAX_BYTES
) -> list[Request]:
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
            if size > max_bytes:  # a big single-key batch goes alone (exempt from the limits)
                requests.append(Request(chunk, {key}, size))
                continue
            if open_request.writes and (
                len(open_request.keys) >= max_keys
                or open_request.size + size > max_bytes
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


# ── binding ───────────────────────────────────────────────────────────────────────────────

Serializer = Callable[[Any], bytes]
_INT32 = struct.Struct(">i").pack
_INT64 = struct.Struct(">q").pack
_TEXT = (cqltypes.UTF8Type, cqltypes.VarcharType, cqltypes.AsciiType)


def _text(value: str) -> bytes:
    return value.encode()


def _blob(value: bytes) -> bytes:
    return bytes(value)


def _serializer(cql_type: Any, protocol_version: int) -> Serializer:
    """The function that serialises one non-null value of ``cql_type`` as the driver does.

    Specialised for what the recorder binds (text, int, bigint, blob, timestamp,
    map<text, text>); any other type goes through the driver's own serialiser. A timestamp
    is an integer of milliseconds here, or a datetime (then the driver's conversion).
    """
    if cql_type in _TEXT:
        return _text
    if cql_type is cqltypes.Int32Type:
        return _INT32
    if cql_type is cqltypes.LongType:
        return _INT64
    if cql_type is cqltypes.BytesType:
        return _blob
    if cql_type is cqltypes.DateType:

        def timestamp(value: Any) -> bytes:
            if type(value) is int:
                return _INT64(value)
            return bytes(cqltypes.DateType.serialize(value, protocol_version))

        return timestamp
    if (
        getattr(cql_type, "typename", None) == "map"
        and protocol_version >= 3
        and all(sub in _TEXT for sub in cql_type.subtypes)
    ):

        def text_map(value: dict[str, str]) -> bytes:
            parts = [_INT32(len(value))]
            for key, item in value.items():
                k, v = key.encode(), item.encode()
                parts += (_INT32(len(k)), k, _INT32(len(v)), v)
            return b"".join(parts)

        return text_map

    def driver(value: Any) -> bytes:
        return bytes(cql_type.serialize(value, protocol_version))

    return driver


class Binder:
    """Serialises rows for one prepared statement: each column's serialiser resolved once.

    ``values(row)`` gives what ``statement.bind(row).values`` would (None stays null,
    ``UNSET_VALUE`` stays unset), for a full row of positional values; ``serializers`` lets
    a caller serialise a part shared by several statements once.
    """

    def __init__(self, statement: PreparedStatement) -> None:
        self.statement = statement
        version = statement.protocol_version
        self.serializers: tuple[Serializer, ...] = tuple(
            _serializer(column.type, version) for column in statement.column_metadata
        )

    def values(self, row: Sequence[object]) -> list[object]:
        if len(row) != len(self.serializers):
            raise ValueError(f"{len(row)} values for {len(self.serializers)} bind markers")
        return serialize(self.serializers, row)


def serialize(serializers: Sequence[Serializer], row: Iterable[object]) -> list[object]:
    """``row`` serialised column by column (None and ``UNSET_VALUE`` kept as they are)."""
    return [
        value if value is None or value is UNSET_VALUE else encode(value)
        for encode, value in zip(serializers, row, strict=True)
    ]


def serialized_size(values: Iterable[object]) -> int:
    """``estimate`` for serialised values: their bytes plus a fixed cost per value."""
    total = 64
    for value in values:
        total += len(value) + 16 if isinstance(value, bytes) else 16
    return total


def bound(statement: PreparedStatement, values: Params) -> BoundStatement:
    """A ``BoundStatement`` carrying already serialised ``values`` (``Binder.values``)."""
    statement_ = BoundStatement(statement)
    statement_.raw_values = values
    statement_.values = values
    return statement_
