"""Replay jobs, pure: what a replay asks for, its status and counts, and its job message.

A replay re-reads the events topic between ``since`` and ``until`` (Kafka timestamps) and
delivers the events that match one webhook (its account, types and filter) to that webhook
only. ``missing`` (the default) skips an event whose delivery to this webhook succeeded or is
still in progress (pending: its own retries will finish it); ``all`` sends every match again
except those in progress: one more attempt of the same delivery (same ``X-Webhook-Id`` and
``webhook-id``, so receivers dedupe), with origin ``replay``.

The job row (``replays`` table) is the truth; the job message on the replays topic only tells
a replayer to run it. A status moves queued → running → done | cancelled | failed.
"""

from __future__ import annotations

import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum

import orjson


class ReplayMode(StrEnum):
    MISSING = "missing"  # only events without a successful (or in-progress) delivery
    ALL = "all"  # every matching event, delivered once more


class ReplayStatus(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    DONE = "done"
    CANCELLED = "cancelled"
    FAILED = "failed"

    @property
    def finished(self) -> bool:
        return self in (ReplayStatus.DONE, ReplayStatus.CANCELLED, ReplayStatus.FAILED)


def new_replay_id() -> str:
    return "rpl_" + secrets.token_hex(12)


@dataclass(frozen=True, slots=True)
class Counts:
    """What a replay did so far: events read, matched (account, types and filter), attempts
    enqueued, and matches skipped (delivered already, or in progress)."""

    scanned: int = 0
    matched: int = 0
    enqueued: int = 0
    skipped: int = 0


@dataclass(frozen=True, slots=True)
class Replay:
    id: str
    account_id: str
    webhook_id: str
    mode: ReplayMode
    since: datetime
    until: datetime
    status: ReplayStatus
    created_at: datetime
    updated_at: datetime
    counts: Counts = Counts()
    progress: float = 0.0  # share of the range's offsets read, 0 to 1
    cancel_requested: bool = False
    # Set when the topic no longer holds the start of the range (retention): the timestamp
    # of the oldest event it still had, i.e. how far back the replay could go.
    earliest: datetime | None = None
    error: str | None = None
    finished_at: datetime | None = None
    # partition -> offset of the next event to read, saved after each batch was enqueued:
    # where a replayer that takes the job over resumes (empty: from the start).
    positions: Mapping[int, int] = field(default_factory=dict)


def job_message(replay: Replay) -> tuple[bytes, bytes]:
    """(key, value) of the job message: keyed by replay id, the value names it again."""
    return replay.id.encode(), orjson.dumps({"id": replay.id})


def job_id(value: bytes | None) -> str | None:
    """The replay id of a job message, or None for a message that is not one."""
    try:
        obj = orjson.loads(value or b"")
    except orjson.JSONDecodeError:
        return None
    found = obj.get("id") if isinstance(obj, dict) else None
    return found if isinstance(found, str) and found.startswith("rpl_") else None


def progress(starts: dict[int, int], ends: dict[int, int], positions: dict[int, int]) -> float:
    """The share of offsets read over every partition's [start, end) range (1.0 when empty)."""
    total = sum(max(0, ends[p] - starts[p]) for p in starts)
    if total == 0:
        return 1.0
    done = sum(
        min(max(0, positions.get(p, starts[p]) - starts[p]), ends[p] - starts[p]) for p in starts
    )
    return done / total
