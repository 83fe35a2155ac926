"""Fixtures for tests against the real Kafka and Cassandra.

``stack_settings`` is the one entry point: Settings pointing at a ready local stack, started
for the session (or reused when one already answers on those ports). A server that cannot
start fails the session — it is never a skip.
"""

from __future__ import annotations

import uuid

import pytest

from app.localstack.testing import ensure_stack
from app.settings import CassandraSettings, KafkaSettings, Settings


@pytest.fixture(scope="session")
def stack_settings(request: pytest.FixtureRequest) -> Settings:
    settings = Settings()
    ensure_stack(settings, request.addfinalizer)
    return settings


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
