"""app.priority: every thread of the process is lowered, later threads inherit it, and an
operator's higher niceness stands. Run in a child process: niceness cannot be raised back."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

CHILD = textwrap.dedent(
    """
    import os, sys, threading
    from app.priority import lower

    os.setpriority(os.PRIO_PROCESS, 0, int(sys.argv[1]))  # this thread, as started
    started, stop = threading.Event(), threading.Event()
    before = threading.Thread(target=lambda: (started.set(), stop.wait()))
    before.start(); started.wait()
    changed = lower(int(sys.argv[2]))
    later = []
    after = threading.Thread(
        target=lambda: later.append(os.getpriority(os.PRIO_PROCESS, threading.get_native_id()))
    )
    after.start(); after.join()
    print(changed, os.getpriority(os.PRIO_PROCESS, 0),
          os.getpriority(os.PRIO_PROCESS, before.native_id), later[0])
    stop.set(); before.join()
    """
)


@pytest.mark.parametrize(
    ("started", "asked", "changed", "niceness"),
    [
        (0, 10, 2, 10),  # both threads lowered, the later one inherits
        (15, 10, 0, 15),  # already lower: left alone
        (0, 0, 0, 0),  # 0: as started
    ],
)
def test_lower(started: int, asked: int, changed: int, niceness: int) -> None:
    out = subprocess.run(
        [sys.executable, "-c", CHILD, str(started), str(asked)],
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    ).stdout.split()
    assert [int(x) for x in out] == [changed, niceness, niceness, niceness]
