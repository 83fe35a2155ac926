"""② Payload filters, pure: a webhook's condition on the event's ``data``, besides its types.

A filter is a JSON object in the operator style Convoy and Outpost users know (MongoDB's
query language, a small part of it)::

    {"data.amount": {"$gte": 100}, "data.currency": {"$in": ["EUR", "USD"]}}
    {"$or": [{"data.plan": "pro"}, {"data.seats": {"$gt": 10}}]}

- A key is a dotted path rooted at ``data`` (``data.customer.tier``; a segment of digits
  indexes a list), or ``$and`` / ``$or`` with a non-empty list of filters. All keys of one
  object must hold (an implicit ``$and``); ``{}`` matches every event.
- A value is either a JSON value the path must equal, or an object of operators:
  ``$eq``, ``$ne``, ``$in``, ``$nin`` (lists of JSON values), ``$gt``, ``$gte``, ``$lt``,
  ``$lte`` (numbers), ``$exists`` (a boolean). Objects mixing operators and plain keys are
  refused; an object without operators is an exact-equality value.
- Equality is JSON equality: ``true`` never equals ``1``, ``1`` equals ``1.0``, objects and
  lists compare whole (no "array contains" rule). A path that does not resolve is *missing*:
  only ``$ne``, ``$nin`` and ``$exists: false`` match it. A comparison on a value that is not a
  number is no match. ``null`` is a present value (``$exists: true`` matches it).

``compile_filter`` validates (bounded depth, size and bytes; ``InvalidWebhook`` naming the
bad part, e.g. ``filter.data.amount.$gt``) and returns a ``Filter`` whose ``matches(data)``
is a tree of closures built once, so the match step pays no parsing per event. ``matches``
never raises: an error while evaluating counts as no match.
"""

from __future__ import annotations

import logging
import math
import operator
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import orjson

from app.errors import InvalidWebhook

log = logging.getLogger(__name__)

MAX_DEPTH = 8  # nesting of $and/$or and operator objects
MAX_NODES = 256  # conditions, operator operands and list items, counted over the whole filter
MAX_BYTES = 16 * 1024  # the filter as compact JSON
MAX_PATH_SEGMENTS = 16
MAX_IN_ITEMS = 100
ROOT = "data"

_COMPARISONS: dict[str, Callable[[Any, Any], bool]] = {
    "$gt": operator.gt,
    "$gte": operator.ge,
    "$lt": operator.lt,
    "$lte": operator.le,
}
OPERATORS = ("$eq", "$ne", "$in", "$nin", *_COMPARISONS, "$exists")

Predicate = Callable[[Any], bool]  # the event's data in, match or not out (may raise)
_MISSING = object()


@dataclass(frozen=True, slots=True)
class Filter:
    """A validated filter: ``source`` is what the API stores and shows; ``matches`` is hot."""

    source: dict[str, Any]
    _predicate: Predicate = field(repr=False, compare=False)

    def matches(self, data: Any) -> bool:
        """Does the event's ``data`` pass? Never raises: an error is no match (logged)."""
        try:
            return self._predicate(data)
        except Exception as exc:  # a filter on unexpected data must never stop the match step
            log.debug("filter raised on an event (no match): %s", type(exc).__name__)
            return False

    def to_json(self) -> str:
        return orjson.dumps(self.source).decode()


def compile_filter(source: Any, where: str = "filter") -> Filter:
    """Validate ``source`` (decoded JSON) and build its evaluator; ``InvalidWebhook`` if bad."""
    if not isinstance(source, dict):
        raise InvalidWebhook(where, "must be a JSON object")
    try:
        size = len(orjson.dumps(source))
    except (TypeError, orjson.JSONEncodeError):
        raise InvalidWebhook(where, "must be JSON") from None
    if size > MAX_BYTES:
        raise InvalidWebhook(where, f"is {size} bytes as JSON; at most {MAX_BYTES} are allowed")
    budget = _Budget()
    return Filter(source=source, _predicate=_object(source, where, 1, budget))


def filter_from_json(text: str | None) -> Filter | None:
    """A filter stored as JSON text (the webhooks table), or None for none."""
    if not text:
        return None
    try:
        source = orjson.loads(text)
    except orjson.JSONDecodeError:
        source = {"$invalid": text}
    return stored_filter(source)


def stored_filter(source: Any) -> Filter | None:
    """A filter read back from storage or the webhooks topic (decoded JSON, or None for none).
    One that no longer validates (the rules tightened) matches nothing rather than
    everything: fail closed, and log it."""
    if source is None:
        return None
    try:
        return compile_filter(source)
    except InvalidWebhook as exc:
        log.warning("stored webhook filter is invalid; it matches no event: %s", exc)
        return Filter(source={"$invalid": source}, _predicate=lambda _data: False)


class _Budget:
    def __init__(self) -> None:
        self.nodes = 0

    def spend(self, where: str, count: int = 1) -> None:
        self.nodes += count
        if self.nodes > MAX_NODES:
            raise InvalidWebhook(where, f"the filter has more than {MAX_NODES} conditions")


def _object(obj: Mapping[str, Any], where: str, depth: int, budget: _Budget) -> Predicate:
    if depth > MAX_DEPTH:
        raise InvalidWebhook(where, f"nests deeper than {MAX_DEPTH} levels")
    parts: list[Predicate] = []
    for key, value in obj.items():
        here = f"{where}.{key}"
        budget.spend(here)
        if key in ("$and", "$or"):
            parts.append(_logical(key, value, here, depth, budget))
        elif key.startswith("$"):
            raise InvalidWebhook(here, f"unknown operator {key!r} here (use $and or $or)")
        else:
            parts.append(_condition(_path(key, here), value, here, depth, budget))
    return _all(parts)


def _logical(op: str, value: Any, where: str, depth: int, budget: _Budget) -> Predicate:
    if not isinstance(value, list) or not value:
        raise InvalidWebhook(where, "must be a non-empty list of filters")
    branches: list[Predicate] = []
    for index, item in enumerate(value):
        here = f"{where}[{index}]"
        if not isinstance(item, dict):
            raise InvalidWebhook(here, "must be a JSON object")
        branches.append(_object(item, here, depth + 1, budget))
    if op == "$and":
        return _all(branches)

    def either(data: Any) -> bool:
        for branch in branches:  # noqa: SIM110 (a loop, not any(<generator>): cheaper per event)
            if branch(data):
                return True
        return False

    return either


def _all(parts: list[Predicate]) -> Predicate:
    if not parts:
        return lambda _data: True
    if len(parts) == 1:
        return parts[0]

    def every(data: Any) -> bool:
        for part in parts:  # noqa: SIM110 (as above)
            if not part(data):
                return False
        return True

    return every


def _path(key: str, where: str) -> tuple[str | int, ...]:
    segments = key.split(".")
    if segments[0] != ROOT:
        raise InvalidWebhook(where, f"a path starts at {ROOT} (for example {ROOT}.amount)")
    if len(segments) > MAX_PATH_SEGMENTS:
        raise InvalidWebhook(where, f"a path has at most {MAX_PATH_SEGMENTS} segments")
    if any(not s for s in segments):
        raise InvalidWebhook(where, "a path has no empty segments")
    return tuple(int(s) if s.isdigit() else s for s in segments[1:])


def _resolver(path: tuple[str | int, ...]) -> Callable[[Any], Any]:
    steps = tuple((str(s), s if isinstance(s, int) else None) for s in path)
    if len(steps) == 1 and steps[0][1] is None:
        key = steps[0][0]  # the common case, one level into data: one dict lookup

        def top(data: Any) -> Any:
            return data.get(key, _MISSING) if type(data) is dict else _MISSING

        return top

    def resolve(data: Any) -> Any:
        value = data
        for key, index in steps:
            if type(value) is dict:
                value = value.get(key, _MISSING)
                if value is _MISSING:
                    return _MISSING
            elif index is not None and type(value) is list:
                if index >= len(value):
                    return _MISSING
                value = value[index]
            else:
                return _MISSING
        return value

    return resolve


def _condition(
    path: tuple[str | int, ...], value: Any, where: str, depth: int, budget: _Budget
) -> Predicate:
    resolve = _resolver(path)
    if isinstance(value, dict) and any(k.startswith("$") for k in value):
        if depth + 1 > MAX_DEPTH:
            raise InvalidWebhook(where, f"nests deeper than {MAX_DEPTH} levels")
        if not all(k.startswith("$") for k in value):
            raise InvalidWebhook(where, "mixes operators and plain keys in one object")
        tests = [_operator(op, operand, f"{where}.{op}", budget) for op, operand in value.items()]
        test = tests[0] if len(tests) == 1 else _all(tests)
        return lambda data: test(resolve(data))
    _literal(value, where, budget)
    equals = _equals(value)
    return lambda data: equals(resolve(data))


def _operator(op: str, operand: Any, where: str, budget: _Budget) -> Callable[[Any], bool]:
    budget.spend(where)
    if op == "$eq":
        _literal(operand, where, budget)
        return _equals(operand)
    if op == "$ne":
        _literal(operand, where, budget)
        equals = _equals(operand)
        return lambda v: not equals(v)
    if op in ("$in", "$nin"):
        if not isinstance(operand, list) or not operand:
            raise InvalidWebhook(where, "must be a non-empty list of values")
        if len(operand) > MAX_IN_ITEMS:
            raise InvalidWebhook(where, f"lists at most {MAX_IN_ITEMS} values")
        budget.spend(where, len(operand))
        for index, item in enumerate(operand):
            _literal(item, f"{where}[{index}]", budget)
        member = _member_of(operand)
        if op == "$in":
            return member
        return lambda v: not member(v)
    if op in _COMPARISONS:
        if not _is_number(operand):
            raise InvalidWebhook(where, "must be a number")
        compare, bound = _COMPARISONS[op], operand
        return lambda v: type(v) in _NUMBER_TYPES and compare(v, bound)
    if op == "$exists":
        if not isinstance(operand, bool):
            raise InvalidWebhook(where, "must be true or false")
        wanted = operand
        return lambda v: (v is not _MISSING) is wanted
    raise InvalidWebhook(where, f"unknown operator {op!r} (one of {', '.join(OPERATORS)})")


def _literal(value: Any, where: str, budget: _Budget) -> None:
    """A value compared for equality: plain JSON without operator keys anywhere inside."""
    if isinstance(value, dict):
        budget.spend(where, len(value))
        for key, item in value.items():
            if key.startswith("$"):
                raise InvalidWebhook(f"{where}.{key}", "an operator cannot appear inside a value")
            _literal(item, f"{where}.{key}", budget)
    elif isinstance(value, list):
        budget.spend(where, len(value))
        for index, item in enumerate(value):
            _literal(item, f"{where}[{index}]", budget)
    elif isinstance(value, float) and not math.isfinite(value):
        raise InvalidWebhook(where, "must be a finite number")


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


_NUMBER_TYPES = (int, float)


def _equals(literal: Any) -> Callable[[Any], bool]:
    """An equality test specialised for the literal's type: the hot path is a type check and
    one comparison (booleans by identity, since Python's ``True == 1``)."""
    if isinstance(literal, bool) or literal is None:
        return lambda v: v is literal
    if isinstance(literal, str):
        return lambda v: type(v) is str and v == literal
    if isinstance(literal, int | float):
        return lambda v: type(v) in _NUMBER_TYPES and v == literal
    return lambda v: _equal(v, literal)


def _member_of(options: list[Any]) -> Callable[[Any], bool]:
    """``$in``: set lookups for strings and numbers (checked by type first, so ``true`` is
    never found among ``1``), a scan for the rest (null, booleans, objects, lists)."""
    strings = frozenset(o for o in options if isinstance(o, str))
    numbers = frozenset(o for o in options if type(o) in _NUMBER_TYPES)
    others = tuple(
        _equals(o) for o in options if not isinstance(o, str) and type(o) not in _NUMBER_TYPES
    )

    def member(v: Any) -> bool:
        kind = type(v)
        if kind is str:
            return v in strings
        if kind in _NUMBER_TYPES:
            return v in numbers
        return any(test(v) for test in others)

    return member


def _equal(a: Any, b: Any) -> bool:
    """JSON equality: Python's ``True == 1`` is not JSON's."""
    if isinstance(a, bool) or isinstance(b, bool):
        return isinstance(a, bool) and isinstance(b, bool) and a is b
    if isinstance(a, dict):
        return isinstance(b, dict) and a.keys() == b.keys() and all(_equal(a[k], b[k]) for k in a)
    if isinstance(a, list):
        return (
            isinstance(b, list)
            and len(a) == len(b)
            and all(_equal(x, y) for x, y in zip(a, b, strict=True))
        )
    if a is _MISSING or b is _MISSING:
        return False
    return bool(a == b) and type(a) in _SCALARS and type(b) in _SCALARS_OF[type(a)]


_SCALARS = (str, int, float, type(None))
_SCALARS_OF: dict[type, tuple[type, ...]] = {
    str: (str,),
    int: (int, float),
    float: (int, float),
    type(None): (type(None),),
}
