"""The replayer's Prometheus metrics (a few increments per batch, never per event)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge

EVENTS = Counter(
    "hookstream_replay_events_total",
    "Events handled by replays: scanned (read from the events topic), matched (the webhook's "
    "account, types and filter), enqueued (an attempt sent to the deliveries topic).",
    ["result"],
)
REPLAYS = Counter("hookstream_replays_total", "Replays finished, by final status.", ["status"])
RUNNING = Gauge("hookstream_replay_running", "1 while this replayer runs a replay.")
READY = Gauge(
    "hookstream_replayer_ready",
    "1 while the replayer is connected and taking jobs; 0 while it starts or holds through an "
    "outage.",
)
