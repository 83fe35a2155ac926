"""③ The scheduler (delay forwarder): forwards retry-topic messages to the redeliver topic
when they are due — never early, at most about a second late, never lost. A message due
later than its retry topic's tier holds it hops to the tier that fits what is left, so no
partition's head waits longer than its tier's delay (``policy.plan``).

- ``policy``    pure decisions: where and when a message leaves (forward or hop), due times on
                the monotonic clock, lateness, hold queues, acks
- ``forwarder`` ``Scheduler``: one confluent-kafka consumer and one idempotent producer
- ``role``      ``main(settings)``: the ``scheduler`` role, stopped by SIGTERM/SIGINT

Run model: ``Scheduler(settings).run(stop_event)`` blocks its thread (confluent-kafka is a
blocking client); ``main`` runs it in the main thread and sets the event on a signal.
"""

from app.scheduler.forwarder import Scheduler
from app.scheduler.policy import lateness_ms, ready_at
from app.scheduler.role import main

__all__ = ["Scheduler", "lateness_ms", "main", "ready_at"]
