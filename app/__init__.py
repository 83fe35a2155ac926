"""Hookstream: Kafka-native webhook delivery.

The flow, in six steps, and where each lives:

1. ``events``      — an event arrives on the events topic; ``app.events`` parses and validates it.
2. ``matching``    — ``app.worker.match`` finds the active webhooks of the event's account
                     (``app.accounts``: the ``hookstream-account`` header) subscribed to its
                     type (``app.matching``) and produces one delivery each to the deliveries
                     topic.
3. attempt topics  — ``app.topics`` names them; ``app.retries`` decides the next step after an
                     attempt; ``app.scheduler`` forwards due retries to the redeliver topic.
4. ``delivery``    — ``app.worker.attempts`` reads the attempt topics (confluent-kafka, in
                     batches, ordered acks); ``app.worker.deliver`` sends the signed request
                     (``app.signing``) through ``app.delivery`` (HTTP only, SSRF guard) and
                     classifies the outcome. Hand-offs wait out outages (``app.worker.handoff``).
5. ``records``     — every attempt and the delivery's state go to the records topic
                     (``app.records``); the recorder (``app.recorder``) writes them to
                     Cassandra in batches (``app.store``). Kafka is the log, Cassandra the view.
6. ``api``         — FastAPI serves webhook management and delivery logs (``app.api``),
                     each key inside its account (``app.api.auth``).

Step 2 also applies each webhook's payload filter (``app.filters``). Beside the flow, the
replayer (``app.replay``) re-reads the events topic for one webhook: replay and backfill.

``app.cli`` wires the roles (api, worker, scheduler, recorder, replayer, migrate, up) from one
``Settings``.
"""

__version__ = "0.1.0"
