"""⑤ The recorder role: Kafka is the log, Cassandra the view.

The worker hands every delivery state, attempt and event to the ``hookstream.records`` topic
(``app.records.RecordLog``); the recorder consumes it in large batches, collapses each batch
to the latest state per delivery (``collapse``), writes Cassandra grouped by partition key
(``DeliveryRepository.record_many``) and commits only what was written (``recorder``). A
Cassandra outage delays the delivery log and nothing else: the recorder holds, reports
not-ready (``role``: ``/readyz``, ``hookstream_recorder_ready``) and catches up afterwards.
Where it shares cores with a worker it yields them (``app.priority``, niceness 10).
"""

from __future__ import annotations

from app.recorder.role import main

__all__ = ["main"]
