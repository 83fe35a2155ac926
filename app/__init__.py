"""Hookstream: Kafka-native webhook delivery.

The flow, in six steps, and where each lives:

1. ``events``      — an event arrives on the events topic; ``app.events`` parses and validates it.
2. ``matching``    — ``app.worker.match`` finds the active webhooks subscribed to its type
                     (``app.matching``) and produces one delivery each to the deliveries topic.
3. attempt topics  — ``app.topics`` names them; ``app.retries`` decides the next step after an
                     attempt; ``app.scheduler`` forwards due retries to the redeliver topic.
4. ``delivery``    — ``app.worker.deliver`` sends the signed request (``app.signing``) through
                     ``app.delivery`` (HTTP only, SSRF guard) and classifies the outcome.
5. ``store``       — every attempt and the delivery's state go to Cassandra (``app.store``).
6. ``api``         — FastAPI serves webhook management and delivery logs (``app.api``).

``app.cli`` wires the roles (api, worker, scheduler, migrate, up) from one ``Settings``.
"""

__version__ = "0.1.0"
