"""The local stack: one Kafka and one Cassandra, started together and stopped together.

``up`` is idempotent: servers of ours that already run are only checked; stale pid and lock files
of dead ones are cleared; a port held by anything else stops ``up`` before any JVM starts. A
failed ``up`` stops what it started, so no half-started JVM outlives the error.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from app.errors import StackError
from app.kafka import client_config
from app.localstack import jars
from app.localstack.cassandra import CassandraServer
from app.localstack.filelock import file_lock
from app.localstack.java import check_java
from app.localstack.kafka import KafkaServer
from app.localstack.layout import Layout
from app.localstack.ports import poll_interval, port_busy, port_open
from app.localstack.process import Daemon
from app.localstack.secure import SecureProfile
from app.settings import Settings

Progress = Callable[[str], None]
# A status probe must not hang a CLI or a fixture for long.
_STATUS_PROBE_TIMEOUT = 5.0


class Server(Protocol):
    """What the stack needs from one server (``KafkaServer``, ``CassandraServer``)."""

    name: str
    dir: Path
    port: int  # the client port; readiness is probed there
    ports: dict[str, int]
    ready_timeout: float
    stop_grace: float

    def clear_stale_files(self) -> None: ...
    def check_data(self) -> None: ...
    def prepare(self, java: str, lib: Path, log_file: Path) -> None: ...
    def command(self, java: str, lib: Path) -> list[str]: ...
    def probe(self, timeout: float) -> str: ...


@dataclass(frozen=True, slots=True)
class ServerStatus:
    name: str
    pid: int | None  # our live process; None when not ours or not running
    ready: bool  # answers its protocol on ``ports``, whoever runs it
    ports: dict[str, int]
    log: Path
    detail: str  # what the probe saw: a version, or why it is not ready

    def __str__(self) -> str:
        ports = " ".join(f"{k}={v}" for k, v in self.ports.items())
        owner = f"pid {self.pid}" if self.pid else "not ours" if self.ready else "stopped"
        state = "ready" if self.ready else "not ready"
        return f"{self.name:<9} {state:<9} {owner:<12} {ports}  ({self.detail})"


@dataclass(frozen=True, slots=True)
class StackStatus:
    run_dir: Path
    kafka: ServerStatus
    cassandra: ServerStatus

    @property
    def ready(self) -> bool:
        return self.kafka.ready and self.cassandra.ready

    @property
    def running(self) -> bool:
        """Any server process of ours alive."""
        return self.kafka.pid is not None or self.cassandra.pid is not None

    def __str__(self) -> str:
        return f"{self.kafka}\n{self.cassandra}\nrun dir: {self.run_dir}"


def _quiet(_: str) -> None:
    pass


class LocalStack:
    """Real Kafka and Cassandra for development and tests, on the ports the settings name.

    ``name`` picks the run directory under ``<stack.home>/run/``; by default it is derived
    from the ports, so the same settings always find the same data again.
    """

    def __init__(
        self, settings: Settings, *, name: str | None = None, secure: bool = False
    ) -> None:
        """``secure``: the secure test profile (``app.localstack.secure``): SASL_SSL Kafka and
        password + TLS Cassandra, in its own run directory (``secure-k…``); ``settings`` then
        becomes the client settings that connect to it."""
        layout = Layout.from_settings(settings, name)
        profile = None
        if secure:
            if name is None:
                layout = Layout.from_settings(settings, f"secure-{layout.run_dir.name}")
            profile = SecureProfile(layout.run_dir)
            settings = profile.client_settings(settings)
        self.settings = settings
        self.layout = layout
        self.secure = profile
        self.kafka = KafkaServer(
            layout, settings.stack.kafka_heap, profile, client_config(settings) if secure else None
        )
        self.cassandra = CassandraServer(
            layout, settings.stack.cassandra_heap, profile, settings if secure else None
        )
        self._servers: tuple[Server, ...] = (self.cassandra, self.kafka)
        self._daemons = {s.name: Daemon(s.name, s.dir) for s in self._servers}

    @property
    def run_dir(self) -> Path:
        return self.layout.run_dir

    def daemon(self, server: str) -> Daemon:
        """The process handle of ``"kafka"`` or ``"cassandra"`` (pid, log file)."""
        return self._daemons[server]

    # -- up -------------------------------------------------------------------------------

    def up(self, progress: Progress | None = None) -> None:
        """Start whatever is not running and return once both servers answer their protocol.

        Raises ``StackError`` naming a busy port, a wrong Java, a failed jar fetch, or a
        server that exited or timed out (with the last lines of its log).
        """
        say = progress or _quiet
        with file_lock(self.layout.lock_file):
            to_start: list[Server] = []
            for server in self._servers:
                daemon = self._daemons[server.name]
                pid = daemon.running_pid()
                if pid is not None:
                    continue
                self._clear_stale(server, daemon, say)
                to_start.append(server)
            # Every port is checked before any download or JVM: a clash fails in a second.
            for server in to_start:
                for label, port in server.ports.items():
                    if port_busy(port):
                        raise StackError(
                            f"port {port} ({server.name} {label}) on 127.0.0.1 is in use by a "
                            f"process that is not this stack ({self.run_dir}); stop it or pick "
                            "other ports in the settings"
                        )
            # Data that cannot be used is refused before anything starts, too.
            for server in to_start:
                server.check_data()
            java = check_java(self.settings.stack.java) if to_start else ""
            libs = {server.name: self._fetch(server, say) for server in to_start}
            started: list[Server] = []
            try:
                for server in to_start:
                    daemon = self._daemons[server.name]
                    _rotate(daemon.log_file)
                    server.dir.mkdir(parents=True, exist_ok=True)
                    server.prepare(java, libs[server.name], daemon.log_file)
                    pid = daemon.spawn(server.command(java, libs[server.name]))
                    started.append(server)
                    say(f"{server.name} starting (pid {pid}, log {daemon.log_file})")
                self._await_ready(list(self._servers), started, say)
            except BaseException:
                for server in started:
                    self._daemons[server.name].stop(server.stop_grace)
                raise

    def _clear_stale(self, server: Server, daemon: Daemon, say: Progress) -> None:
        """Called under the lock when no process of ours runs for ``server``."""
        if daemon.recorded_pid() is not None:
            say(f"{server.name}: removing stale pid file (pid {daemon.recorded_pid()} is gone)")
            daemon.pid_file.unlink(missing_ok=True)
        if daemon.strays():
            # A JVM of ours without a pid file (deleted by hand): it holds our ports and data.
            say(f"{server.name}: stopping untracked processes {daemon.strays()}")
            daemon.stop(server.stop_grace)
        server.clear_stale_files()

    def _fetch(self, server: Server, say: Progress) -> Path:
        version = (
            self.settings.stack.kafka_version
            if server.name == "kafka"
            else self.settings.stack.cassandra_version
        )
        return jars.fetch(self.layout.jars_dir, server.name, version, say)

    def _await_ready(self, servers: list[Server], started: list[Server], say: Progress) -> None:
        with ThreadPoolExecutor(max_workers=len(servers)) as pool:
            futures = [pool.submit(self._wait_ready, s, s in started, say) for s in servers]
            errors = [f.exception() for f in futures]
        failures = [e for e in errors if e is not None]
        if len(failures) == 1:
            raise failures[0]
        if failures:
            raise StackError("\n\n".join(str(e) for e in failures))

    def _wait_ready(self, server: Server, started_here: bool, say: Progress) -> None:
        daemon = self._daemons[server.name]
        begin = time.monotonic()
        deadline = begin + server.ready_timeout
        where = f"127.0.0.1:{server.port}"
        last = "port not open yet"
        while True:
            if started_here and (code := daemon.exit_code()) is not None:
                raise StackError(
                    f"{server.name} exited with code {code} before it was ready; "
                    f"last lines of {daemon.log_file}:\n{daemon.tail()}"
                )
            if not started_here and daemon.running_pid() is None:
                raise StackError(
                    f"{server.name} stopped while being checked; "
                    f"last lines of {daemon.log_file}:\n{daemon.tail()}"
                )
            if port_open(server.port):
                try:
                    detail = server.probe(min(5.0, max(deadline - time.monotonic(), 1.0)))
                except Exception as exc:  # any driver error only means "not yet"
                    last = f"{type(exc).__name__}: {exc}"
                else:
                    elapsed = time.monotonic() - begin
                    if started_here:
                        say(f"{server.name} ready on {where} in {elapsed:.1f} s ({detail})")
                    else:
                        say(
                            f"{server.name} already running (pid {daemon.running_pid()}), "
                            f"ready on {where} ({detail})"
                        )
                    return
            if time.monotonic() > deadline:
                raise StackError(
                    f"{server.name} not ready on {where} after {server.ready_timeout:.0f} s "
                    f"(last check: {last}); last lines of {daemon.log_file}:\n{daemon.tail()}"
                )
            time.sleep(poll_interval(begin))

    # -- down, status ---------------------------------------------------------------------

    def down(self, wipe: bool = False, progress: Progress | None = None) -> None:
        """Stop both servers (SIGTERM, SIGKILL after a grace period); ``wipe`` deletes all data.

        Only processes of this stack are signalled. Raises ``StackError`` if one survives.
        """
        say = progress or _quiet
        with file_lock(self.layout.lock_file):
            with ThreadPoolExecutor(max_workers=len(self._servers)) as pool:
                for server in self._servers:
                    daemon = self._daemons[server.name]
                    if daemon.running_pid() or daemon.strays():
                        say(f"stopping {server.name} (pid {daemon.running_pid()})")
                    pool.submit(daemon.stop, server.stop_grace)
            left = {s.name: self._daemons[s.name].strays() for s in self._servers}
            if any(left.values()):
                raise StackError(f"processes of the local stack survived SIGKILL: {left}")
            if wipe and self.run_dir.exists():
                shutil.rmtree(self.run_dir)
                say(f"wiped {self.run_dir}")
            say("local stack stopped")

    def status(self) -> StackStatus:
        """Per server: our pid if it runs, and whether it answers its protocol right now."""
        kafka, cassandra = (self._server_status(s) for s in (self.kafka, self.cassandra))
        return StackStatus(run_dir=self.run_dir, kafka=kafka, cassandra=cassandra)

    def is_ready(self) -> bool:
        return self.status().ready

    def _server_status(self, server: Server) -> ServerStatus:
        daemon = self._daemons[server.name]
        ready, detail = False, "port closed"
        if port_open(server.port):
            try:
                detail, ready = server.probe(_STATUS_PROBE_TIMEOUT), True
            except Exception as exc:  # not answering is a status, not an error
                detail = f"not answering: {type(exc).__name__}: {exc}"
        return ServerStatus(
            name=server.name,
            pid=daemon.running_pid(),
            ready=ready,
            ports=dict(server.ports),
            log=daemon.log_file,
            detail=detail,
        )


def _rotate(log_file: Path) -> None:
    """Keep the previous run's log as ``server.log.1`` so a failure tail shows only this run."""
    if log_file.exists():
        log_file.replace(log_file.with_name(log_file.name + ".1"))
