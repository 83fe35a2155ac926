"""The ``hookstream api`` role: the API app connecting to Cassandra and Kafka in its lifespan.

    app = build_app(settings)
    uvicorn.run(app, host=settings.api.host, port=settings.api.port)

Nothing connects at import or in ``build_app``; the store and the producer open when the
server starts and close when it stops.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from app import heap
from app.api.app import attach, build
from app.api.publish import producer_config
from app.kafka import AsyncProducer
from app.settings import Settings
from app.store import Store

log = logging.getLogger(__name__)


def build_app(settings: Settings) -> FastAPI:
    """The API for the ``api`` role: connects the store and a producer on start-up."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        store = await Store.connect(settings)
        # Its message timeout is shorter than the API's wait: a 503 leaves nothing queued.
        producer = AsyncProducer(settings, **producer_config(settings))
        attach(app, store, producer)
        heap.settle()  # last in start-up: what it built is frozen (app.heap)
        log.info("API ready on %s:%d", settings.api.host, settings.api.port)
        try:
            yield
        finally:
            await asyncio.to_thread(producer.close)
            await store.close()

    return build(settings, lifespan=lifespan)
