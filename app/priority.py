"""A role's CPU priority: the delivery log yields the CPU to the delivery path.

When the roles share cores (``hookstream up``, one VM, the bench), the recorder competes with
the worker for them, and at saturation every process's share is what the scheduler gives it.
Deliveries are the product's promise; the log is allowed to lag (it is a view of the records
topic, caught up in batches). A recorder at niceness 10 gets about a tenth of a contended
core against the worker's full weight, yet it still keeps up: it runs when the worker waits,
and its batches grow while it waits, which makes each record cheaper for it and for
Cassandra. Measured on the 20,000-event drain (BENCHMARKS.md, "Session 12"): more
deliveries/s, less CPU per delivery in every process, and the records caught up as soon after
the last arrival as at niceness 0.

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
