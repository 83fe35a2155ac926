"""Replay decisions, pure: what a replay sends for a delivery state, its progress, its job
message."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from app.deliveries import DeliveryStatus
from app.replay.jobs import (
    Replay,
    ReplayMode,
    ReplayStatus,
    job_id,
    job_message,
    new_replay_id,
    progress,
)
from app.replay.runner import decide
from app.store.records import DeliveryRecord

NOW = datetime(2026, 1, 15, 12, 0, tzinfo=UTC)


def state(status: DeliveryStatus, attempts: int) -> DeliveryRecord:
    return DeliveryRecord("del_x", "hook_x", "evt_x", "user.created", status, attempts, NOW, NOW)


@pytest.mark.parametrize(
    ("mode", "current", "expected"),
    [
        (ReplayMode.MISSING, None, 1),  # never delivered (or before the webhook existed)
        (ReplayMode.ALL, None, 1),
        (ReplayMode.MISSING, state(DeliveryStatus.SUCCESS, 1), None),
        (ReplayMode.ALL, state(DeliveryStatus.SUCCESS, 1), 2),
        (ReplayMode.MISSING, state(DeliveryStatus.FAILED, 5), 6),
        (ReplayMode.ALL, state(DeliveryStatus.FAILED, 5), 6),
        (ReplayMode.MISSING, state(DeliveryStatus.CANCELLED, 0), 1),
        (ReplayMode.MISSING, state(DeliveryStatus.PENDING, 2), None),  # its retries finish it
        (ReplayMode.ALL, state(DeliveryStatus.PENDING, 2), None),
    ],
)
def test_decide(mode: ReplayMode, current: DeliveryRecord | None, expected: int | None) -> None:
    assert decide(mode, current) == expected


def test_progress_over_partitions() -> None:
    starts, ends = {0: 10, 1: 0, 2: 5}, {0: 20, 1: 10, 2: 5}
    assert progress(starts, ends, {}) == 0.0
    assert progress(starts, ends, {0: 15, 1: 5}) == 0.5
    assert progress(starts, ends, {0: 99, 1: 10}) == 1.0  # never beyond the range
    assert progress({0: 3}, {0: 3}, {}) == 1.0  # an empty range is done


def test_job_message_round_trip() -> None:
    replay = Replay(
        new_replay_id(),
        "default",
        "hook_x",
        ReplayMode.ALL,
        NOW,
        NOW,
        ReplayStatus.QUEUED,
        NOW,
        NOW,
    )
    key, value = job_message(replay)
    assert key == replay.id.encode() and job_id(value) == replay.id
    assert (
        job_id(b"not json") is None and job_id(b'{"id": "hook_x"}') is None and job_id(None) is None
    )


def test_finished_statuses() -> None:
    assert {s for s in ReplayStatus if s.finished} == {
        ReplayStatus.DONE,
        ReplayStatus.CANCELLED,
        ReplayStatus.FAILED,
    }
