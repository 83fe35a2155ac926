"""The store's one error: Cassandra could not do the work.

    HookstreamError
    └── HandOffError
        └── StoreUnavailable     Cassandra timed out, was unreachable or refused the request
                                 after the driver's retries (and ours, for idempotent writes)

It is a ``HandOffError`` because on the worker's write path it means exactly that: the attempt
was not recorded, so the message must not be acknowledged. The API maps it to 503.
Programming errors (a CQL syntax error, a missing table: ``cassandra.InvalidRequest``) are not
wrapped; they are bugs or a missing ``migrate``, not outages.
"""

from __future__ import annotations

from app.errors import HandOffError


class StoreUnavailable(HandOffError):
    """Cassandra did not complete a request (timeout, no host, unavailable replicas)."""
