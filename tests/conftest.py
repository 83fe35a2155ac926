"""Test-session defaults: the suite runs its own local stack on ports apart from the
development stack's (Kafka 19092, Cassandra 19042), so ``hookstream up`` and the tests can run
side by side. Set the variables yourself to point the suite elsewhere."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator

import pytest

TEST_ENV = {
    "HOOKSTREAM_KAFKA__BOOTSTRAP_SERVERS": "127.0.0.1:19092",
    "HOOKSTREAM_STACK__KAFKA_CONTROLLER_PORT": "19093",
    "HOOKSTREAM_CASSANDRA__PORT": "19042",
    "HOOKSTREAM_STACK__CASSANDRA_STORAGE_PORT": "17000",
}
for _name, _value in TEST_ENV.items():
    os.environ.setdefault(_name, _value)


@pytest.fixture(scope="session")
def stack_settings(request: pytest.FixtureRequest) -> object:
    """Settings pointing at a ready local stack, started for the session (or reused when one
    already answers on those ports). A server that cannot start fails the session."""
    from app.localstack.testing import ensure_stack
    from app.settings import Settings

    settings = Settings()
    ensure_stack(settings, request.addfinalizer, fresh=True)
    return settings


@pytest.fixture
def unique() -> str:
    """A short unique token for topic prefixes, keyspaces, group ids."""
    return uuid.uuid4().hex[:10]


@pytest.fixture(scope="module", autouse=True)
def _drop_module_keyspaces() -> Iterator[None]:
    """Drop the keyspaces this module's tests named (``tests.support.NAMED_KEYSPACES``) once
    the module's own fixtures are done with them: autouse, so it is set up before them and torn
    down after them."""
    from tests.support import NAMED_KEYSPACES, drop_keyspaces

    start = len(NAMED_KEYSPACES)
    yield
    named = NAMED_KEYSPACES[start:]
    del NAMED_KEYSPACES[start:]
    if named:
        drop_keyspaces(named)
