"""``AsyncProducer`` against the real Kafka, on the event loops the roles run (uvloop)."""

from __future__ import annotations

import uuid

import pytest
import uvloop

from app.kafka import AsyncProducer, create_topics
from app.settings import Settings
from app.topics import Topics
from tests.support import isolated, read_topic

pytestmark = pytest.mark.integration


def test_a_send_right_after_start_on_uvloop_is_acknowledged(stack_settings: Settings) -> None:
    # uvloop answers call_later(0) with a plain Handle (no when()); a send before the
    # producer's first serve once raised AttributeError on it.
    settings = isolated(stack_settings, uuid.uuid4().hex[:10])
    create_topics(settings)
    topic = Topics.from_settings(settings).records

    async def main() -> None:
        producer = AsyncProducer(settings)
        try:
            await producer.send(topic, b"first", b"k")
            await producer.send(topic, b"second", b"k")
        finally:
            producer.close()

    uvloop.run(main())
    assert [m.value() for m in read_topic(settings, topic)] == [b"first", b"second"]
