"""Which partitions the match consumer seeks back to their beginning after Faust's seek to
the committed offsets (``app.worker.stream.never_committed``): the ones aiokafka leaves where
they are because nobody has committed on them."""

from __future__ import annotations

import pytest

from app.worker.stream import MatchTransport, never_committed


@pytest.mark.parametrize(
    ("committed", "expected"),
    [
        ({}, []),
        ({"a": 5}, []),  # aiokafka seeks this one itself
        ({"a": None}, ["a"]),  # no commit at all
        ({"a": -1}, ["a"]),  # librdkafka's and aiokafka's "no offset"
        ({"a": 0}, ["a"]),  # aiokafka skips a committed 0 as well
        ({"a": 3, "b": None, "c": 0, "d": 1}, ["b", "c"]),
    ],
)
def test_never_committed(committed: dict[str, int | None], expected: list[str]) -> None:
    assert never_committed(committed) == expected


def test_the_transport_builds_the_seeking_consumer() -> None:
    from app.worker.stream import MatchConsumer

    assert MatchTransport.Consumer is MatchConsumer
