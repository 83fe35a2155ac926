"""py-spy sampling of the worker while it runs at the sustained rate.

Two samplers attach at once (``--nonblocking``, so the worker is never paused): one writes a
flame graph (SVG), the other the collapsed stacks (``raw``), from which ``top`` computes the
functions with the most samples, by self time (the frame on top of the stack) and inclusive
(anywhere on the stack).

Only the thread holding the GIL is sampled (``--gil``): in the default mode py-spy counts a
thread waiting inside C (Faust's consumer thread in its own loop, librdkafka's ``poll``) as
busy, which put a sixth of the samples on threads that were mostly idle (BENCHMARKS.md,
"Session 5: the worker"). A thread that waits on a lock while holding the GIL (librdkafka's
``produce``) still shows: that is time the event loop cannot run.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any


def py_spy() -> str | None:
    here = Path(sys.executable).parent / "py-spy"
    return str(here) if here.exists() else shutil.which("py-spy")


def frame_name(frame: str) -> str:
    """``deliver (app/worker/deliver.py:57)`` -> ``app/worker/deliver.py:deliver``."""
    frame = frame.strip()
    if frame.endswith(")") and " (" in frame:
        func, where = frame[:-1].rsplit(" (", 1)
        path = where.rsplit(":", 1)[0]
        for marker in ("site-packages/", "/work/main/", "lib/python3."):
            if marker in path:
                path = path.split(marker, 1)[1]
                if marker == "lib/python3.":
                    path = "stdlib/" + path.split("/", 1)[-1]
                break
        return f"{path}:{func}"
    return frame


# Frames every sample of a thread passes through: they say nothing about costs.
WRAPPERS = (
    "<frozen runpy>",
    "typer/",
    "app/cli.py",
    "threading.py",
    "asyncio/base_events.py:BaseEventLoop.run",
    "asyncio/events.py:Handle._run",
    "concurrent/futures/thread.py",
    "mode/",
    "main.py:main",
)


def top(collapsed: str, n: int = 25) -> dict[str, Any]:
    self_counts: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    threads: Counter[str] = Counter()
    total = 0
    for line in collapsed.splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        raw = [f for f in stack.split(";") if f]
        thread = "?"
        if raw and raw[0].startswith("thread ("):
            thread = raw[0].split(":", 1)[-1].strip().rstrip(" 0123456789") or "?"
            raw = raw[1:]
        frames = [frame_name(f) for f in raw if not f.startswith("process ")]
        if not frames:
            continue
        total += count
        threads[thread] += count
        self_counts[frames[-1]] += count
        for name in set(frames):
            if not name.startswith(WRAPPERS):
                inclusive[name] += count

    def share(counter: Counter[str]) -> list[dict[str, Any]]:
        return [
            {"function": name, "samples": c, "percent": round(100 * c / max(total, 1), 1)}
            for name, c in counter.most_common(n)
        ]

    return {
        "samples": total,
        "threads": share(threads),
        "self": share(self_counts),
        "inclusive": share(inclusive),
    }


def record(pid: int, seconds: float, out: Path) -> dict[str, Any]:
    """Sample ``pid`` for ``seconds``; writes ``<out>.svg`` and ``<out>.txt`` (collapsed)."""
    binary = py_spy()
    if binary is None:
        return {"error": "py-spy is not installed (pip install py-spy)"}
    out.parent.mkdir(parents=True, exist_ok=True)
    svg, raw = out.with_suffix(".svg"), out.with_suffix(".txt")
    common = ["record", "--pid", str(pid), "--duration", str(int(seconds)), "--rate", "100",
              "--nonblocking", "--threads", "--gil"]  # fmt: skip
    procs = [
        subprocess.Popen(
            [binary, *common, "--format", fmt, "--output", str(path)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        for fmt, path in (("flamegraph", svg), ("raw", raw))
    ]
    errors = []
    for p in procs:
        try:
            _, err = p.communicate(timeout=seconds + 30)
        except subprocess.TimeoutExpired:
            p.kill()
            _, err = p.communicate()
        if p.returncode != 0:
            errors.append(err.decode(errors="replace")[-500:])
    if not raw.exists():
        return {"error": "; ".join(errors) or "py-spy wrote nothing"}
    found = top(raw.read_text(errors="replace"))
    found.update({"svg": str(svg), "collapsed": str(raw), "seconds": seconds, "errors": errors})
    return found
