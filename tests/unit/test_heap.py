"""The roles' collector tuning (app.heap): start-up's objects frozen, young collections rarer."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest

from app import heap


@pytest.fixture
def restore_gc() -> Iterator[None]:
    before = gc.get_threshold()
    yield
    gc.unfreeze()
    gc.set_threshold(*before)


@pytest.mark.usefixtures("restore_gc")
def test_settle_freezes_what_exists_and_raises_the_thresholds() -> None:
    survivor: list[object] = []  # alive before: frozen after, out of every generation
    gc.unfreeze()
    heap.settle()
    assert gc.get_freeze_count() > 0
    assert not any(o is survivor for g in range(3) for o in gc.get_objects(g))
    assert gc.get_threshold() == heap.THRESHOLDS
    assert heap.THRESHOLDS[0] > 700  # CPython's default, a collection every few deliveries
