"""Which Cassandra answers are back-pressure (wait and retry) and which are outages."""

import pytest
from cassandra.cluster import NoHostAvailable
from cassandra.connection import ConnectionBusy

from app.store.session import _overloaded


@pytest.mark.parametrize(
    ("error", "overloaded"),
    [
        (NoHostAvailable("x", {"127.0.0.1": ConnectionBusy("Connection 7 is overloaded")}), True),
        (NoHostAvailable("x", {"127.0.0.1": ConnectionRefusedError(111, "refused")}), False),
        (
            NoHostAvailable(
                "x", {"a": ConnectionBusy("busy"), "b": ConnectionRefusedError(111, "refused")}
            ),
            False,
        ),
        (ConnectionBusy("overloaded"), True),
        (RuntimeError("Server is Overloaded"), True),
        (RuntimeError("unavailable"), False),
    ],
)
def test_overload_table(error: BaseException, overloaded: bool) -> None:
    assert _overloaded(error) is overloaded
