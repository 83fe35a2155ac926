"""The recorder's Prometheus metrics (one batch costs a few observations, never one per row,
except the record lag, which is observed per message: a histogram observation is ~1 µs)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

from app.metrics import LATENCY_BUCKETS

RECORDS = Counter(
    "hookstream_records_total",
    "Messages of the records topic handled: written to Cassandra, or invalid (skipped).",
    ["result"],
)
ROWS = Counter("hookstream_record_rows_written_total", "Cassandra rows written by the recorder.")
BATCH_SIZE = Histogram(
    "hookstream_record_batch_messages",
    "Messages per recorder batch.",
    buckets=(1, 10, 50, 100, 250, 500, 1000, 2000, 5000),
)
WRITE_SECONDS = Histogram(
    "hookstream_record_write_seconds",
    "Time to write one batch to Cassandra (successful writes).",
    buckets=LATENCY_BUCKETS,
)
RECORD_LAG = Histogram(
    "hookstream_record_lag_seconds",
    "From a record's produce time (Kafka timestamp) to its rows acknowledged by Cassandra.",
    buckets=LATENCY_BUCKETS,
)
WRITE_FAILURES = Counter(
    "hookstream_record_write_failures_total",
    "Batch writes Cassandra did not complete (retried with backoff; nothing is committed).",
)
READY = Gauge(
    "hookstream_recorder_ready",
    "1 while the recorder is writing (or idle and connected); 0 while it holds through an "
    "outage or is starting.",
)
LAG = Gauge(
    "hookstream_recorder_lag",
    "Records on the partition not yet written to Cassandra (high watermark minus the written "
    "offset), per assigned partition.",
    ["partition"],
)
