"""The supervision ``hookstream up`` gives its roles: a role that exits is started again.

Two parts. ``Backoff`` is the policy, pure: how long to wait before the next start, given
how many exits came in a row and how long the last run lasted. ``Supervisor`` owns the child
processes: ``poll()`` notices exits, says so on the terminal and restarts each role when its
delay has passed; ``stop()`` ends them all. The roles are data (``RoleSpec``), so a new role
is one more entry in ``up``'s list.

A role's own outage handling (holding through a Kafka or Cassandra outage) comes first; this
is the net under it, for what made a process exit anyway: a bug, a poisoned state, a kill.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import IO, Protocol


@dataclass(frozen=True)
class RoleSpec:
    """One supervised child: its name on the terminal and in its log file's name, and the
    ``hookstream`` arguments that start it. ``to_terminal`` children (the demo receiver)
    print to the terminal instead of a log file."""

    name: str
    args: tuple[str, ...]
    to_terminal: bool = False


@dataclass(frozen=True)
class Backoff:
    """Restart delays: ``first``, multiplied by ``factor`` after each exit in a row, at most
    ``cap``. A run that lasted ``stable`` seconds or more ends the streak: its exit waits
    ``first`` again (a role that crashes once a day restarts at once, every time)."""

    first: float = 1.0
    factor: float = 2.0
    cap: float = 30.0
    stable: float = 60.0

    def after_exit(self, streak: int, ran_for: float) -> tuple[int, float]:
        """The streak including this exit, and the seconds to wait before the next start.

        ``streak`` counts the exits in a row before this one (0 for a role's first exit)."""
        streak = 1 if ran_for >= self.stable else streak + 1
        # The exponent is bounded so a role that has crashed for days cannot overflow a float.
        return streak, min(self.cap, self.first * self.factor ** min(streak - 1, 64))


class Process(Protocol):
    """What the supervisor needs of a child (``subprocess.Popen`` is one)."""

    @property
    def pid(self) -> int: ...

    def poll(self) -> int | None: ...

    def wait(self, timeout: float | None = None) -> int: ...


Launch = Callable[[RoleSpec], Process]


def launcher(env: dict[str, str], log_dir: Path) -> Launch:
    """Start ``hookstream <args>`` as a child in a session of its own, so a Ctrl-C on the
    terminal reaches only ``up``, which then stops the children in order. Output is appended
    to ``<log_dir>/<name>.log``, across restarts."""

    def launch(spec: RoleSpec) -> Process:
        command = [sys.executable, "-m", "app.cli", *spec.args]
        if spec.to_terminal:
            return _popen(command, env, None)
        # The child keeps its own copy of the file descriptor; ours closes at once, so
        # restarts do not pile up open files in ``up``.
        with open(log_path(log_dir, spec), "ab") as log:
            return _popen(command, env, log)

    return launch


def log_path(log_dir: Path, spec: RoleSpec) -> Path:
    return log_dir / f"{spec.name}.log"


def _popen(command: list[str], env: dict[str, str], log: IO[bytes] | None) -> Process:
    return subprocess.Popen(
        command,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT if log is not None else None,
        stdin=subprocess.DEVNULL,
        start_new_session=True,
    )


@dataclass
class _Child:
    spec: RoleSpec
    process: Process | None = None
    started_at: float = 0.0
    streak: int = 0  # exits in a row without a stable run
    restarts: int = 0
    restart_at: float | None = None  # set while waiting out a backoff delay


class Supervisor:
    """Starts the roles, restarts each one that exits after its backoff delay, stops them.

    Not thread-safe: one caller drives ``start``, ``poll`` and ``stop``. ``poll`` never
    blocks, so the caller decides how often to look (``up``: every half second)."""

    def __init__(
        self,
        specs: Sequence[RoleSpec],
        launch: Launch,
        *,
        say: Callable[[str], None],
        log_dir: Path | None = None,
        backoff: Backoff | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._children = [_Child(spec) for spec in specs]
        self._launch = launch
        self._say = say
        self._log_dir = log_dir
        self._backoff = backoff or Backoff()
        self._clock = clock
        self._stopping = False

    def start(self) -> None:
        """Start every role that is not running yet."""
        for child in self._children:
            if child.process is None:
                self._start(child, self._clock())

    def pid(self, name: str) -> int | None:
        """The pid of the named role's current process; None while it waits to restart."""
        child = self._child(name)
        if child.process is None or child.restart_at is not None:
            return None
        return child.process.pid

    def restarts(self, name: str) -> int:
        return self._child(name).restarts

    def poll(self) -> None:
        """Notice exits (and say so), and start each role whose delay has passed."""
        if self._stopping:
            return
        now = self._clock()
        for child in self._children:
            if child.restart_at is None and child.process is not None:
                code = child.process.poll()
                if code is not None:
                    self._exited(child, code, now)
            if child.restart_at is not None and now >= child.restart_at:
                self._start(child, now)

    def stop(self, grace: float = 30.0) -> None:
        """SIGTERM every running role in reverse start order, SIGKILL what outlives
        ``grace``. No role is started again afterwards."""
        self._stopping = True
        running = [c for c in self._children if c.process is not None and c.process.poll() is None]
        for child in reversed(running):
            self._say(f"stopping {child.spec.name}")
            _signal(child, signal.SIGTERM)
        for child in running:
            assert child.process is not None
            try:
                child.process.wait(grace)
            except subprocess.TimeoutExpired:
                _signal(child, signal.SIGKILL)
                child.process.wait(5)

    def _exited(self, child: _Child, code: int, now: float) -> None:
        ran_for = now - child.started_at
        child.streak, delay = self._backoff.after_exit(child.streak, ran_for)
        child.restart_at = now + delay
        where = f" (log: {_short(log_path(self._log_dir, child.spec))})" if self._log_dir else ""
        self._say(
            f"{_clock_time()} {child.spec.name} {describe_exit(code)} after "
            f"{human_seconds(ran_for)}; restarting in {human_seconds(delay)}{where}"
        )
        self._mark_log(child, f"{child.spec.name} {describe_exit(code)}")

    def _start(self, child: _Child, now: float) -> None:
        restarting = child.process is not None
        try:
            child.process = self._launch(child.spec)
        except OSError as exc:
            # Treated like an exit at once: the same backoff, so a missing binary cannot spin.
            child.streak, delay = self._backoff.after_exit(child.streak, 0.0)
            child.restart_at = now + delay
            self._say(
                f"{_clock_time()} {child.spec.name} could not start ({exc}); "
                f"retrying in {human_seconds(delay)}"
            )
            return
        child.started_at = now
        child.restart_at = None
        if restarting:
            child.restarts += 1
            self._say(
                f"{_clock_time()} {child.spec.name} restarted "
                f"(restart {child.restarts}, pid {child.process.pid})"
            )

    def _mark_log(self, child: _Child, what: str) -> None:
        """A line in the role's own log, so a reader of worker.log sees where one run ended."""
        if self._log_dir is None or child.spec.to_terminal:
            return
        with contextlib.suppress(OSError), open(log_path(self._log_dir, child.spec), "a") as log:
            log.write(f"--- hookstream up: {what} at {datetime.now().isoformat(' ', 'seconds')}\n")

    def _child(self, name: str) -> _Child:
        return next(c for c in self._children if c.spec.name == name)


def describe_exit(code: int) -> str:
    """``exited with code 70`` or ``was killed by SIGKILL`` (Popen's negative codes)."""
    if code < 0:
        try:
            name = signal.Signals(-code).name
        except ValueError:
            name = f"signal {-code}"
        return f"was killed by {name}"
    return f"exited with code {code}"


def human_seconds(seconds: float) -> str:
    """``0.4 s``, ``12 s``, ``3 min 5 s``, ``2 h 10 min``: short enough for one line."""
    if seconds < 10:
        return f"{seconds:.1f} s".replace(".0 s", " s")
    whole = round(seconds)
    if whole < 60:
        return f"{whole} s"
    if whole < 3600:
        return f"{whole // 60} min {whole % 60} s"
    return f"{whole // 3600} h {whole % 3600 // 60} min"


def _short(path: Path) -> str:
    """The path with the home directory as ``~``, so the terminal line stays short."""
    with contextlib.suppress(ValueError, RuntimeError):
        return "~/" + str(path.relative_to(Path.home()))
    return str(path)


def _clock_time() -> str:
    return datetime.now().strftime("%H:%M:%S")


def _signal(child: _Child, sig: signal.Signals) -> None:
    assert child.process is not None
    # Each role leads its own process group (start_new_session): signal the whole group.
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(child.process.pid, sig)
