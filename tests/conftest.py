"""Test-session defaults: the suite runs its own local stack on ports apart from the
development stack's (Kafka 19092, Cassandra 19042), so ``hookstream up`` and the tests can run
side by side. Set the variables yourself to point the suite elsewhere."""

from __future__ import annotations

import os

TEST_ENV = {
    "HOOKSTREAM_KAFKA__BOOTSTRAP_SERVERS": "127.0.0.1:19092",
    "HOOKSTREAM_STACK__KAFKA_CONTROLLER_PORT": "19093",
    "HOOKSTREAM_CASSANDRA__PORT": "19042",
    "HOOKSTREAM_STACK__CASSANDRA_STORAGE_PORT": "17000",
}
for _name, _value in TEST_ENV.items():
    os.environ.setdefault(_name, _value)
# TEMPORARY while several engineers share one machine: leave the test stack running.
os.environ.setdefault("HOOKSTREAM_TEST_KEEP_STACK", "1")
