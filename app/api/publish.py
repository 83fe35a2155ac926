"""What the API writes to Kafka: webhook change notices and attempt messages.

Webhook changes are written to Cassandra first (the source of truth), then published to the
compacted webhooks topic: key = webhook id, value = ``webhook_to_json`` (the full webhook with
its secret), a tombstone on delete. Publishing is best effort: if Kafka refuses, the write
still stands and the workers' periodic reload from Cassandra heals their index.

Attempt messages (test, manual retry, recover) are the point of their request, so a refusal
there is a 503: nothing was enqueued.
"""

from __future__ import annotations

import asyncio
import logging

from app.api.errors import Unavailable
from app.api.ports import ProducerPort
from app.deliveries import AttemptMessage
from app.errors import HandOffError
from app.topics import Topics
from app.webhooks import Webhook, webhook_to_json

log = logging.getLogger(__name__)

# A change notice must not hold an API response for Kafka's full message timeout.
NOTICE_TIMEOUT_S = 5.0
ENQUEUE_TIMEOUT_S = 15.0


async def publish_webhook(producer: ProducerPort, topics: Topics, webhook: Webhook) -> bool:
    """Publish the webhook's current state; False (logged) if Kafka did not take it."""
    return await _notice(producer, topics, webhook.id, webhook_to_json(webhook))


async def publish_deletion(producer: ProducerPort, topics: Topics, webhook_id: str) -> bool:
    """Publish a tombstone for the webhook; False (logged) if Kafka did not take it."""
    return await _notice(producer, topics, webhook_id, None)


async def _notice(
    producer: ProducerPort, topics: Topics, webhook_id: str, value: bytes | None
) -> bool:
    try:
        await asyncio.wait_for(
            producer.send(topics.webhooks, value, key=webhook_id.encode()), NOTICE_TIMEOUT_S
        )
    except Exception as exc:  # best effort by design: any failure only logs
        log.warning(
            "webhook change not published (workers pick it up on their next reload): %s",
            exc or type(exc).__name__,
            extra={"webhook_id": webhook_id},
        )
        return False
    return True


async def enqueue_attempt(producer: ProducerPort, topics: Topics, message: AttemptMessage) -> None:
    """Produce the attempt to the deliveries topic and wait for Kafka's ack; 503 otherwise."""
    context = {
        "event_id": message.event_id,
        "webhook_id": message.webhook_id,
        "delivery_id": message.delivery_id,
        "attempt": message.attempt,
    }
    try:
        await asyncio.wait_for(
            producer.send(
                topics.deliveries, message.body, key=message.key(), headers=message.headers()
            ),
            ENQUEUE_TIMEOUT_S,
        )
    except (HandOffError, TimeoutError) as exc:
        log.warning("attempt not enqueued: %s", exc or "timeout", extra=context)
        raise Unavailable("Kafka did not accept the attempt message; retry later") from None
    log.info("attempt enqueued (%s)", message.origin.value, extra=context)
