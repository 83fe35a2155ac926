"""One server JVM as a detached process: its pid file, log file, start and stop.

"Ours" means: the pid in our pid file is alive, not a zombie, and its command line names our
run directory. The last check keeps a recycled pid, or a server someone started by hand on
other ports, from ever being signalled by us.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from collections import deque
from pathlib import Path

from app.localstack.java import server_env


def _cmdline(pid: int) -> str | None:
    """The process's command line, or None when it is gone or a zombie."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        # The state follows the parenthesised name, which may itself contain spaces.
        if stat[stat.rindex(")") + 2] == "Z":
            return None
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except (OSError, ValueError, IndexError):
        return None


class Daemon:
    """One server's process, found through ``<dir>/pid``; output goes to ``<dir>/server.log``."""

    def __init__(self, name: str, directory: Path) -> None:
        self.name = name
        self.dir = directory
        self.pid_file = directory / "pid"
        self.log_file = directory / "server.log"
        # Kept while we are the parent, so we reap the child instead of leaving a zombie.
        self._child: subprocess.Popen[bytes] | None = None

    def _ours(self, pid: int) -> bool:
        if self._child is not None and self._child.pid == pid:
            self._child.poll()
        cmdline = _cmdline(pid)
        return cmdline is not None and str(self.dir) in cmdline

    def recorded_pid(self) -> int | None:
        try:
            return int(self.pid_file.read_text().strip())
        except (OSError, ValueError):
            return None

    def running_pid(self) -> int | None:
        """The pid of our live server process, or None."""
        pid = self.recorded_pid()
        return pid if pid is not None and self._ours(pid) else None

    def strays(self) -> list[int]:
        """Every live process whose command line names our directory (pid file or not)."""
        found = []
        for entry in Path("/proc").iterdir():
            if entry.name.isdigit() and int(entry.name) != os.getpid():
                cmdline = _cmdline(int(entry.name))
                if cmdline is not None and str(self.dir) in cmdline and "java" in cmdline:
                    found.append(int(entry.name))
        return found

    def spawn(self, command: list[str]) -> int:
        """Start ``command`` in its own session (so a terminal's Ctrl-C does not reach it)."""
        with self.log_file.open("ab") as log:
            self._child = subprocess.Popen(
                command,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                env=server_env(),
                cwd=self.dir,
            )
        self.pid_file.write_text(f"{self._child.pid}\n")
        return self._child.pid

    def exit_code(self) -> int | None:
        """The exit code of a child we started and that has ended; None while it runs."""
        return None if self._child is None else self._child.poll()

    def stop(self, grace: float) -> None:
        """SIGTERM the process group, SIGKILL it after ``grace`` seconds; then forget the pid."""
        pids = set(self.strays())
        pid = self.running_pid()
        if pid is not None:
            pids.add(pid)
        for target in pids:
            _signal_group(target, signal.SIGTERM)
        deadline = time.monotonic() + grace
        while any(self._ours(p) for p in pids) and time.monotonic() < deadline:
            time.sleep(0.2)
        for target in [p for p in pids if self._ours(p)]:
            _signal_group(target, signal.SIGKILL)
        deadline = time.monotonic() + 10
        while any(self._ours(p) for p in pids) and time.monotonic() < deadline:
            time.sleep(0.1)
        if self._child is not None:
            # Reap our own child: the loops above stop at "zombie", and a zombie still has a pid.
            with contextlib.suppress(subprocess.TimeoutExpired):
                self._child.wait(5)
        self._child = None
        self.pid_file.unlink(missing_ok=True)

    def tail(self, lines: int = 40) -> str:
        try:
            with self.log_file.open(errors="replace") as log:
                return "".join(deque(log, maxlen=lines)).rstrip()
        except OSError:
            return "(no log yet)"


def _signal_group(pid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        # Our servers lead their own session, so their group id is their pid; signalling the
        # group also reaches any helper process the JVM forked.
        if os.getpgid(pid) == pid:
            os.killpg(pid, sig)
        else:
            os.kill(pid, sig)
