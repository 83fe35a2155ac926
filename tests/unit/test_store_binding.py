"""``app.store.batches.Binder``: the recorder's serialisation must be byte for byte the
driver's own ``PreparedStatement.bind``."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from cassandra import cqltypes
from cassandra.protocol import ColumnMetadata
from cassandra.query import UNSET_VALUE, PreparedStatement

from app.store.batches import Binder, bound, serialized_size

TEXT_MAP = cqltypes.MapType.apply_parameters([cqltypes.UTF8Type, cqltypes.UTF8Type])
INT_LIST = cqltypes.ListType.apply_parameters([cqltypes.Int32Type])


def statement(*types: Any, routing: list[int] | None = None) -> PreparedStatement:
    columns = [ColumnMetadata("ks", "t", f"c{i}", t) for i, t in enumerate(types)]
    return PreparedStatement(columns, b"id", routing or [0], "INSERT …", "ks", 5, None, None)


MOMENT = datetime(2026, 12, 1, 17, 4, 5, 123_999, tzinfo=UTC)


@pytest.mark.parametrize(
    ("cql_type", "value"),
    [
        (cqltypes.UTF8Type, "évènement ✓"),
        (cqltypes.UTF8Type, ""),
        (cqltypes.VarcharType, "hook_1"),
        (cqltypes.AsciiType, "plain"),
        (cqltypes.Int32Type, 204),
        (cqltypes.Int32Type, -1),
        (cqltypes.LongType, 1_764_608_645_123_999),
        (cqltypes.BytesType, b'{"a":1}\x00\xff'),
        (cqltypes.DateType, 1_764_608_645_123),  # integer milliseconds
        (cqltypes.DateType, MOMENT),
        (cqltypes.DateType, MOMENT.replace(tzinfo=None)),  # naive: taken as UTC
        (TEXT_MAP, {"content-type": "application/json", "ü": "ß"}),
        (TEXT_MAP, {}),
        (INT_LIST, [1, 2, 3]),  # any other type: the driver's serialiser
        (cqltypes.BooleanType, True),
    ],
)
def test_a_value_serialises_as_the_driver_binds_it(cql_type: Any, value: object) -> None:
    prepared = statement(cqltypes.UTF8Type, cql_type)
    row = ("key", value)
    assert Binder(prepared).values(row) == prepared.bind(row).values


def test_null_and_unset_stay_what_they_are() -> None:
    prepared = statement(cqltypes.UTF8Type, cqltypes.Int32Type, cqltypes.UTF8Type)
    row = ("key", None, UNSET_VALUE)
    values = Binder(prepared).values(row)
    assert values == prepared.bind(row).values
    assert values[1] is None and values[2] is UNSET_VALUE


def test_a_row_of_the_wrong_length_is_refused() -> None:
    with pytest.raises(ValueError, match="2 values for 3 bind markers"):
        Binder(statement(cqltypes.UTF8Type, cqltypes.Int32Type, cqltypes.UTF8Type)).values(
            ("key", 1)
        )


@pytest.mark.parametrize("routing", [[0], [1, 0]])
def test_a_bound_statement_routes_like_the_drivers(routing: list[int]) -> None:
    prepared = statement(cqltypes.UTF8Type, cqltypes.Int32Type, cqltypes.DateType, routing=routing)
    row = ("hook_1", 20_423, 1_764_608_645_123)
    ours = bound(prepared, Binder(prepared).values(row))
    theirs = prepared.bind(row)
    assert ours.values == theirs.values
    assert ours.routing_key == theirs.routing_key
    assert ours.is_idempotent == prepared.is_idempotent


def test_serialized_size_counts_bytes_and_values() -> None:
    assert serialized_size([b"abc", None, UNSET_VALUE, b""]) == 64 + (3 + 16) + 16 + 16 + 16
