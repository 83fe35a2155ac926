"""A role's CPU priority: the delivery log yields the CPU to the delivery path.

When the roles share cores (``hookstream up``, one VM, the bench), the recorder competes with
the worker for them, and at saturation every process's share is what the scheduler gives it.
Deliveries are the product's promise; the log is allowed to lag (it is a view of the records
topic, caught up in batches). A recorder at niceness 10 gets about a tenth of a contended
core against the worker's full weight, and it still keeps up: it runs when the worker waits.
Measured on a 2-core machine whose speed drifted by a quarter within minutes (BENCHMARKS.md,
"Session 12"): the 20,000-event drain 6 % faster on average over 13 alternated pairs (9
faster, 4 slower), the median p99 event → first attempt at 400 ev/s 90 against 122 ms over 21
runs each, and the records as current at the end of a drain. A policy more than a speed-up:
where the two compete, deliveries come first.

Where each role has cores of its own (Kubernetes pods, compose containers: a cgroup each),
niceness orders threads only inside that cgroup, so this changes nothing there.

Linux applies a niceness per thread, and a new thread inherits its creator's: every thread
that exists is set here, and the ones started later follow.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

log = logging.getLogger(__name__)

TASKS = Path("/proc/self/task")


def lower(niceness: int) -> int:
    """Raise every thread of this process to at least ``niceness`` (never lower one: an
    operator's ``nice -n 15 hookstream recorder`` stands). Returns the threads changed."""
    if niceness <= 0:
        return 0
    threads = [int(t.name) for t in TASKS.iterdir()] if TASKS.is_dir() else [0]
    changed = 0
    for tid in threads:
        try:
            if os.getpriority(os.PRIO_PROCESS, tid) < niceness:
                os.setpriority(os.PRIO_PROCESS, tid, niceness)
                changed += 1
        except OSError:  # the thread ended meanwhile, or no permission: leave it
            continue
    log.info("niceness %d for %d threads", niceness, changed)
    return changed
