"""Fixtures for tests against the real Kafka and Cassandra.

``stack_settings`` is the one entry point: Settings pointing at a running local stack.
(Provisional: points at an already running stack; the lead wires it to app.localstack.)
"""

from __future__ import annotations

import uuid

import pytest

from app.settings import CassandraSettings, KafkaSettings, Settings


@pytest.fixture(scope="session")
def stack_settings() -> Settings:
    return Settings()


@pytest.fixture
def unique() -> str:
    """A short unique token for topic prefixes, keyspaces, group ids."""
    return uuid.uuid4().hex[:10]


def isolated(settings: Settings, token: str) -> Settings:
    """Settings with their own topic prefix, events topic, groups and keyspace."""
    return settings.model_copy(
        update={
            "kafka": KafkaSettings(
                **{
                    **settings.kafka.model_dump(),
                    "topic_prefix": f"t{token}",
                    "events_topic": f"t{token}.events",
                    "consumer_group": f"t{token}-worker",
                    "scheduler_group": f"t{token}-scheduler",
                }
            ),
            "cassandra": CassandraSettings(
                **{**settings.cassandra.model_dump(), "keyspace": f"t{token}"}
            ),
        }
    )
