import pytest

from app.worker.acks import OrderedAcks


@pytest.mark.parametrize(
    ("finish_order", "released"),
    [
        ([0, 1, 2], [[0], [1], [2]]),
        ([2, 1, 0], [[], [], [0, 1, 2]]),
        ([1, 0, 2], [[], [0, 1], [2]]),
        ([0, 2, 1], [[0], [], [1, 2]]),
    ],
)
def test_only_the_contiguous_finished_prefix_is_released(
    finish_order: list[int], released: list[list[int]]
) -> None:
    acks: OrderedAcks[int] = OrderedAcks()
    tickets = [acks.admit("p0", offset) for offset in range(3)]
    got = [acks.finish("p0", tickets[i]) for i in finish_order]
    assert got == released
    assert acks.in_flight == 0


def test_partitions_are_independent() -> None:
    acks: OrderedAcks[str] = OrderedAcks()
    a0 = acks.admit("a", "a0")
    b0 = acks.admit("b", "b0")
    assert acks.finish("b", b0) == ["b0"]
    assert acks.in_flight == 1
    assert acks.finish("a", a0) == ["a0"]


def test_forget_drops_unfinished_work_of_a_revoked_partition() -> None:
    acks: OrderedAcks[int] = OrderedAcks()
    acks.admit("p", 1)
    t2 = acks.admit("p", 2)
    assert acks.forget("p") == 2
    assert acks.in_flight == 0
    assert acks.finish("p", t2) == []
