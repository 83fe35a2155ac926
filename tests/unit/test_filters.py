"""Payload filters: what matches, what does not, what is refused (and where), and that the
evaluator never raises."""

from __future__ import annotations

from typing import Any

import pytest

from app.errors import InvalidWebhook
from app.filters import MAX_DEPTH, MAX_NODES, compile_filter, filter_from_json

DATA: dict[str, Any] = {
    "amount": 250,
    "price": 9.5,
    "currency": "EUR",
    "paid": True,
    "count": 1,
    "note": None,
    "customer": {"tier": "pro", "tags": ["a", "b"], "address": {"country": "FR"}},
    "items": [{"sku": "x1"}, {"sku": "y2"}],
}


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ({}, True),
        ({"data.currency": "EUR"}, True),
        ({"data.currency": "USD"}, False),
        ({"data.customer.tier": "pro"}, True),
        ({"data.customer.address.country": "FR"}, True),
        ({"data.items.1.sku": "y2"}, True),
        ({"data.items.5.sku": "y2"}, False),
        ({"data.customer.tags": ["a", "b"]}, True),
        ({"data.customer.tags": ["b", "a"]}, False),
        ({"data.customer.address": {"country": "FR"}}, True),
        ({"data.paid": True}, True),
        ({"data.count": True}, False),  # JSON: true is not 1
        ({"data.paid": 1}, False),
        ({"data.amount": 250.0}, True),
        ({"data.amount": "250"}, False),
        ({"data.note": None}, True),
        ({"data.missing": None}, False),
        ({"data.amount": {"$eq": 250}}, True),
        ({"data.amount": {"$ne": 250}}, False),
        ({"data.missing": {"$ne": 1}}, True),
        ({"data.currency": {"$in": ["USD", "EUR"]}}, True),
        ({"data.currency": {"$in": ["USD", "GBP"]}}, False),
        ({"data.currency": {"$nin": ["USD", "GBP"]}}, True),
        ({"data.currency": {"$nin": ["EUR"]}}, False),
        ({"data.missing": {"$nin": ["EUR"]}}, True),
        ({"data.missing": {"$in": ["EUR"]}}, False),
        ({"data.count": {"$in": [True, "1"]}}, False),  # neither true nor "1" is 1
        ({"data.paid": {"$in": [1, 0]}}, False),
        ({"data.paid": {"$in": ["x", True]}}, True),
        ({"data.count": {"$in": [2, 1.0]}}, True),
        ({"data.note": {"$in": [None]}}, True),
        ({"data.customer.tags": {"$in": [["a", "b"], "a"]}}, True),
        ({"data.customer.tags": {"$nin": [["a"]]}}, True),
        ({"data.amount": {"$gt": 100}}, True),
        ({"data.amount": {"$gt": 250}}, False),
        ({"data.amount": {"$gte": 250}}, True),
        ({"data.amount": {"$lt": 250}}, False),
        ({"data.amount": {"$lte": 250}}, True),
        ({"data.price": {"$gt": 9, "$lt": 10}}, True),
        ({"data.price": {"$gt": 9, "$lt": 9.2}}, False),
        ({"data.currency": {"$gt": 1}}, False),  # not a number: no match
        ({"data.paid": {"$gte": 0}}, False),  # a boolean is not a number
        ({"data.missing": {"$lt": 1}}, False),
        ({"data.note": {"$exists": True}}, True),  # null is present
        ({"data.missing": {"$exists": True}}, False),
        ({"data.missing": {"$exists": False}}, True),
        ({"data.customer.tier.deeper": {"$exists": False}}, True),
        ({"data.currency": "EUR", "data.amount": {"$gt": 1000}}, False),
        ({"$and": [{"data.currency": "EUR"}, {"data.amount": {"$gt": 100}}]}, True),
        ({"$and": [{"data.currency": "EUR"}, {"data.amount": {"$gt": 300}}]}, False),
        ({"$or": [{"data.currency": "USD"}, {"data.amount": {"$gt": 100}}]}, True),
        ({"$or": [{"data.currency": "USD"}, {"data.amount": {"$gt": 300}}]}, False),
        (
            {"$or": [{"$and": [{"data.paid": True}, {"data.customer.tier": "pro"}]}]},
            True,
        ),
    ],
)
def test_matches(source: dict[str, Any], expected: bool) -> None:
    assert compile_filter(source).matches(DATA) is expected


@pytest.mark.parametrize(
    ("source", "field", "words"),
    [
        ([], "filter", "JSON object"),
        ({"amount": 1}, "filter.amount", "starts at data"),
        ({"data..amount": 1}, "filter.data..amount", "empty segments"),
        ({"data.amount": {"$gt": "5"}}, "filter.data.amount.$gt", "number"),
        ({"data.amount": {"$gt": True}}, "filter.data.amount.$gt", "number"),
        ({"data.amount": {"$regex": "x"}}, "filter.data.amount.$regex", "unknown operator"),
        ({"data.amount": {"$gt": 1, "plain": 2}}, "filter.data.amount", "mixes"),
        ({"data.a": {"$in": []}}, "filter.data.a.$in", "non-empty list"),
        ({"data.a": {"$in": "x"}}, "filter.data.a.$in", "non-empty list"),
        ({"data.a": {"$in": list(range(101))}}, "filter.data.a.$in", "at most 100"),
        ({"data.a": {"$nin": [{"$gt": 1}]}}, "filter.data.a.$nin[0].$gt", "inside a value"),
        ({"data.a": {"$exists": 1}}, "filter.data.a.$exists", "true or false"),
        ({"$and": []}, "filter.$and", "non-empty list"),
        ({"$or": [1]}, "filter.$or[0]", "JSON object"),
        ({"$or": [{"data.a": {"$bad": 1}}]}, "filter.$or[0].data.a.$bad", "unknown operator"),
        ({"$not": {"data.a": 1}}, "filter.$not", "unknown operator"),
        ({"data.a": float("inf")}, "filter.data.a", "finite"),
        ({"data." + ".".join("x" * 17): 1}, "filter.data.", "16 segments"),
    ],
)
def test_refused_naming_the_bad_part(source: Any, field: str, words: str) -> None:
    with pytest.raises(InvalidWebhook) as refused:
        compile_filter(source)
    assert refused.value.field.startswith(field)
    assert words in refused.value.message


def test_depth_is_bounded() -> None:
    source: dict[str, Any] = {"data.a": 1}
    for _ in range(MAX_DEPTH):
        source = {"$and": [source]}
    with pytest.raises(InvalidWebhook) as refused:
        compile_filter(source)
    assert "nests deeper" in refused.value.message
    shallow: dict[str, Any] = {"data.a": 1}
    for _ in range(MAX_DEPTH - 1):
        shallow = {"$and": [shallow]}
    assert compile_filter(shallow).matches({"a": 1})


def test_size_is_bounded() -> None:
    many = {f"data.k{i}": {"$in": [1, 2]} for i in range(MAX_NODES // 3 + 1)}
    with pytest.raises(InvalidWebhook) as refused:
        compile_filter(many)
    assert f"more than {MAX_NODES}" in refused.value.message
    with pytest.raises(InvalidWebhook) as big:
        compile_filter({"data.a": "x" * 20_000})
    assert big.value.field == "filter" and "bytes" in big.value.message


@pytest.mark.parametrize("data", [None, 5, "text", [], {"customer": "not an object"}])
def test_never_raises_on_odd_data(data: Any) -> None:
    compiled = compile_filter({"data.customer.tier": {"$in": ["pro"]}, "data.amount": 1})
    assert compiled.matches(data) is False


def test_an_error_while_evaluating_is_no_match() -> None:
    class Exploding(dict[str, Any]):
        def get(self, *_args: Any) -> Any:
            raise RuntimeError("boom")

    assert compile_filter({"data.a": 1}).matches(Exploding()) is False


def test_stored_round_trip_and_invalid_stored_filter_fails_closed() -> None:
    compiled = compile_filter({"data.amount": {"$gte": 10}})
    again = filter_from_json(compiled.to_json())
    assert again is not None and again == compiled and again.matches({"amount": 10})
    assert filter_from_json(None) is None
    broken = filter_from_json('{"data.a": {"$regex": "x"}}')
    assert broken is not None and broken.matches({"a": "x"}) is False
