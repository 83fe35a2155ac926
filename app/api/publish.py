"""What the API writes to Kafka: webhook change notices and attempt messages.

Webhook changes are written to Cassandra first (the source of truth), then published to the
compacted webhooks topic: key = webhook id, value = ``webhook_to_json`` (the full webhook with
its secret), a tombstone on delete. Publishing is best effort: if Kafka refuses, the write
still stands and the workers' periodic reload from Cassandra heals their index.

Attempt messages (test, manual retry, recover) are the point of their request, so a refusal
there is a 503, and the 503 must be what happens. The API's producer therefore gives every
message up after ``api.enqueue_timeout`` (librdkafka's ``message.timeout.ms``, see
``producer_config``) and the API waits for that delivery report, a margin longer: when it
answers 503, the client library holds nothing it could still send once Kafka is back.

One case stays open and the answer says so: a message already written to the broker when
Kafka stopped answering (a hung broker, a lost acknowledgement) may have been stored all the
same. librdkafka calls that "possibly persisted"; confluent-kafka's Python API reports it with
the same error as a message that was never sent, so the API cannot tell the two apart.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import timedelta
from typing import Any

from app.accounts import Account, account_to_json
from app.api.errors import Unavailable
from app.api.ports import ProducerPort
from app.deliveries import AttemptMessage
from app.errors import HandOffError
from app.keyring import KeyRing
from app.settings import Settings
from app.topics import Topics
from app.webhooks import Webhook, webhook_to_json

log = logging.getLogger(__name__)

# A change notice must not hold an API response for Kafka's full message timeout.
NOTICE_TIMEOUT_S = 5.0
# How much longer than the producer's message timeout the API waits for the delivery report
# (librdkafka checks timeouts about once a second; measured: a 4 s timeout reported at 5.0 s).
REPORT_MARGIN_S = 5.0


def producer_config(settings: Settings) -> dict[str, Any]:
    """librdkafka overrides for the API's producer (``AsyncProducer(settings, **these)``)."""
    return {
        "message.timeout.ms": int(settings.api.enqueue_timeout.total_seconds() * 1000),
        # After an outage the default backoff (up to 10 s between reconnects) would outlast
        # the short message timeout, and the first requests after Kafka's return would fail.
        "reconnect.backoff.max.ms": 1000,
    }


async def publish_webhook(
    producer: ProducerPort, topics: Topics, webhook: Webhook, ring: KeyRing | None = None
) -> bool:
    """Publish the webhook's current state; False (logged) if Kafka did not take it.

    ``ring`` (``app.keyring.key_ring(settings)``) seals its secrets on the topic; every API
    caller passes it (None publishes them as they are: tests of the notice format)."""
    sealed = ring.seal_webhook(webhook) if ring is not None else webhook
    return await _notice(producer, topics, webhook.id, webhook_to_json(sealed))


async def publish_account(producer: ProducerPort, topics: Topics, account: Account) -> bool:
    """Publish the account's current state; False (logged) if Kafka did not take it."""
    return await _notice(
        producer, topics, account.id, account_to_json(account), topic=topics.accounts
    )


async def publish_deletion(producer: ProducerPort, topics: Topics, webhook_id: str) -> bool:
    """Publish a tombstone for the webhook; False (logged) if Kafka did not take it."""
    return await _notice(producer, topics, webhook_id, None)


async def _notice(
    producer: ProducerPort,
    topics: Topics,
    key: str,
    value: bytes | None,
    *,
    topic: str | None = None,
) -> bool:
    try:
        await asyncio.wait_for(
            producer.send(topic or topics.webhooks, value, key=key.encode()), NOTICE_TIMEOUT_S
        )
    except Exception as exc:  # best effort by design: any failure only logs
        log.warning(
            "change of %s not published (workers pick it up on their next reload): %s",
            key,
            exc or type(exc).__name__,
        )
        return False
    return True


class AttemptWithdrawn(Unavailable):
    """503: the producer gave the attempt up; not sent, unless Kafka had stored it already."""

    def __init__(self, what: str, timeout: timedelta) -> None:
        super().__init__(
            f"Kafka did not acknowledge {what} within {timeout.total_seconds():g} s, so it was "
            "withdrawn and will not be sent, unless Kafka had stored it just before it stopped "
            "answering (then it is delivered as usual); retry later"
        )


class AttemptQueued(Unavailable):
    """503: the wait ended before the producer's report; the attempt may still be sent."""

    def __init__(self, what: str) -> None:
        super().__init__(
            f"Kafka has not acknowledged {what} yet; it is still queued and may be delivered "
            "later, so check the delivery before retrying"
        )


async def enqueue_attempt(
    producer: ProducerPort, topics: Topics, message: AttemptMessage, message_timeout: timedelta
) -> None:
    """Produce the attempt to the deliveries topic and wait for Kafka's delivery report.

    ``message_timeout`` is the producer's message timeout (``api.enqueue_timeout``). Raises
    AttemptWithdrawn when the producer gave it up (possibly stored, see the module docstring),
    or AttemptQueued only if no report came within it plus a margin (a producer built
    without ``producer_config``); both are 503s whose message says what became of it.
    """
    context = {
        "event_id": message.event_id,
        "webhook_id": message.webhook_id,
        "delivery_id": message.delivery_id,
        "attempt": message.attempt,
    }
    what = f"attempt {message.attempt} of delivery {message.delivery_id}"
    try:
        await asyncio.wait_for(
            producer.send(
                topics.deliveries, message.body, key=message.key(), headers=message.headers()
            ),
            message_timeout.total_seconds() + REPORT_MARGIN_S,
        )
    except HandOffError as exc:
        log.warning("attempt withdrawn by the producer: %s", exc, extra=context)
        raise AttemptWithdrawn(what, message_timeout) from None
    except TimeoutError:
        log.warning("attempt still queued when the API gave up waiting", extra=context)
        raise AttemptQueued(what) from None
    log.info("attempt enqueued (%s)", message.origin.value, extra=context)
