"""Prometheus metrics, named in the one vocabulary (event, webhook, delivery, attempt).

The worker and scheduler serve them on their metrics port; the API on ``/metrics``.
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram, start_http_server

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)

EVENTS = Counter("hookstream_events_total", "Events read from the events topic.", ["result"])
DELIVERIES = Counter(
    "hookstream_deliveries_total", "Deliveries that reached a final status.", ["status"]
)
ATTEMPTS = Counter("hookstream_attempts_total", "HTTP attempts by outcome.", ["outcome"])
# The one metric with the account as a label: final deliveries, the figure an operator
# bills or alerts on per customer. Every other metric stays account-free, and this one is
# bounded (``account_label``): a label per account multiplies series by accounts, so past
# MAX_ACCOUNT_LABELS accounts seen by one process the rest count under "other".
ACCOUNT_DELIVERIES = Counter(
    "hookstream_account_deliveries_total",
    "Deliveries that reached a final status, per account (the first 100 seen; then other).",
    ["account", "status"],
)
MAX_ACCOUNT_LABELS = 100
_ACCOUNT_LABELS: set[str] = set()


def account_label(account_id: str) -> str:
    """The account's own label for its first MAX_ACCOUNT_LABELS accounts, else "other"."""
    if account_id in _ACCOUNT_LABELS:
        return account_id
    if len(_ACCOUNT_LABELS) < MAX_ACCOUNT_LABELS:
        _ACCOUNT_LABELS.add(account_id)
        return account_id
    return "other"


ATTEMPT_SECONDS = Histogram(
    "hookstream_attempt_duration_seconds", "Duration of one HTTP attempt.", buckets=LATENCY_BUCKETS
)
EVENT_TO_ATTEMPT = Histogram(
    "hookstream_event_to_first_attempt_seconds",
    "From the event's match to its first attempt's response.",
    buckets=LATENCY_BUCKETS,
)
IN_FLIGHT = Gauge("hookstream_in_flight", "Messages admitted and not yet acknowledged.", ["agent"])
DEAD_LETTERS = Counter(
    "hookstream_dead_letters_total", "Messages sent to the dead topic.", ["reason"]
)
CONSUMER_LAG = Gauge(
    "hookstream_consumer_lag",
    "Messages behind the partition's end (high watermark minus fetch position), per assigned "
    "partition of this worker.",
    ["topic", "partition"],
)
WORKER_READY = Gauge(
    "hookstream_worker_ready",
    "1 while every hand-off to Kafka and Cassandra succeeds; 0 while the worker holds work "
    "through an outage (it resumes by itself).",
)
WEBHOOKS_KNOWN = Gauge("hookstream_webhooks_known", "Webhooks in this worker's index.")
# The scheduler's metrics are read from its own counters at scrape time:
# app.scheduler.role.SchedulerCollector.


def serve(port: int) -> None:
    """Expose the default registry on ``port`` (0 disables it)."""
    if port:
        # All interfaces: Prometheus scrapes pods from inside the cluster.
        start_http_server(port, addr="0.0.0.0")
