"""``up``'s supervision: the backoff policy as a table, and the loop driven by a fake clock and
fake child processes (real processes are in tests/e2e/test_up_supervision.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from app.local.supervisor import (
    Backoff,
    Process,
    RoleSpec,
    Supervisor,
    _short,
    describe_exit,
    human_seconds,
)

DEFAULT = Backoff()  # 1 s doubling to 30 s, reset after 60 s of running


@pytest.mark.parametrize(
    ("policy", "streak", "ran_for", "expected"),
    [
        (DEFAULT, 0, 0.2, (1, 1.0)),  # a first exit: 1 s
        (DEFAULT, 1, 0.2, (2, 2.0)),  # doubling…
        (DEFAULT, 2, 3.0, (3, 4.0)),
        (DEFAULT, 3, 0.0, (4, 8.0)),
        (DEFAULT, 4, 0.0, (5, 16.0)),
        (DEFAULT, 5, 0.0, (6, 30.0)),  # …capped at 30 s
        (DEFAULT, 6, 59.9, (7, 30.0)),  # just short of stable: the streak goes on
        (DEFAULT, 6, 60.0, (1, 1.0)),  # ran stably: start over at 1 s
        (DEFAULT, 0, 3600.0, (1, 1.0)),
        (DEFAULT, 10_000, 0.0, (10_001, 30.0)),  # days of crashing: no float overflow
        (Backoff(first=0.5, factor=3, cap=10, stable=5), 0, 0.0, (1, 0.5)),
        (Backoff(first=0.5, factor=3, cap=10, stable=5), 1, 4.9, (2, 1.5)),
        (Backoff(first=0.5, factor=3, cap=10, stable=5), 2, 0.0, (3, 4.5)),
        (Backoff(first=0.5, factor=3, cap=10, stable=5), 3, 0.0, (4, 10.0)),
        (Backoff(first=0.5, factor=3, cap=10, stable=5), 3, 5.0, (1, 0.5)),
    ],
)
def test_backoff_table(
    policy: Backoff, streak: int, ran_for: float, expected: tuple[int, float]
) -> None:
    assert policy.after_exit(streak, ran_for) == expected


@pytest.mark.parametrize(
    ("code", "text"),
    [
        (0, "exited with code 0"),
        (70, "exited with code 70"),
        (-9, "was killed by SIGKILL"),
        (-15, "was killed by SIGTERM"),
        (-200, "was killed by signal 200"),
    ],
)
def test_describe_exit(code: int, text: str) -> None:
    assert describe_exit(code) == text


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(0.4, "0.4 s"), (1.0, "1 s"), (2.5, "2.5 s"), (12.3, "12 s"), (185, "3 min 5 s"),
     (7800, "2 h 10 min")],
)  # fmt: skip
def test_human_seconds(seconds: float, text: str) -> None:
    assert human_seconds(seconds) == text


def test_log_paths_under_home_are_shown_with_a_tilde() -> None:
    assert _short(Path.home() / ".cache/hookstream/logs/worker.log") == (
        "~/.cache/hookstream/logs/worker.log"
    )
    assert _short(Path("/var/log/worker.log")) == "/var/log/worker.log"


class FakeProcess:
    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.returncode: int | None = None

    def poll(self) -> int | None:
        return self.returncode

    def wait(self, timeout: float | None = None) -> int:
        assert self.returncode is not None, "a fake process only waits once it has exited"
        return self.returncode


class Rig:
    """A supervisor over fake processes, with a clock the test moves by hand."""

    def __init__(self, *names: str, fail_launches: int = 0) -> None:
        self.now = 0.0
        self.lines: list[str] = []
        self.launched: list[tuple[float, str, FakeProcess]] = []
        self.fail_launches = fail_launches
        self.supervisor = Supervisor(
            [RoleSpec(name, (name,)) for name in names],
            self.launch,
            say=self.lines.append,
            clock=lambda: self.now,
        )

    def launch(self, spec: RoleSpec) -> Process:
        if self.fail_launches:
            self.fail_launches -= 1
            raise FileNotFoundError(2, "No such file or directory")
        process = FakeProcess(1000 + len(self.launched))
        self.launched.append((self.now, spec.name, process))
        return process

    def latest(self, name: str) -> FakeProcess:
        return [p for _, n, p in self.launched if n == name][-1]

    def at(self, now: float) -> None:
        self.now = now
        self.supervisor.poll()


def test_a_killed_role_is_reported_and_restarted_after_its_delay_alone() -> None:
    rig = Rig("api", "worker", "scheduler")
    rig.supervisor.start()
    assert [name for _, name, _ in rig.launched] == ["api", "worker", "scheduler"]
    first = rig.latest("worker")

    first.returncode = -9
    rig.at(5.0)
    assert rig.supervisor.pid("worker") is None  # waiting out its delay
    (line,) = rig.lines
    assert "worker was killed by SIGKILL after 5 s; restarting in 1 s" in line
    rig.at(5.9)
    assert len(rig.launched) == 3  # not before its delay
    rig.at(6.0)
    assert len(rig.launched) == 4
    assert rig.supervisor.pid("worker") == rig.latest("worker").pid != first.pid
    assert rig.supervisor.restarts("worker") == 1
    assert f"worker restarted (restart 1, pid {rig.latest('worker').pid})" in rig.lines[-1]
    assert rig.supervisor.restarts("api") == rig.supervisor.restarts("scheduler") == 0


def test_a_role_that_keeps_crashing_is_started_on_the_backoff_schedule_not_in_a_loop() -> None:
    rig = Rig("worker")
    rig.supervisor.start()
    step = 0.5  # up's poll interval
    for tick in range(1, int(120 / step) + 1):
        rig.latest("worker").returncode = 1  # every run exits at once
        rig.at(tick * step)
    starts = [when for when, _, _ in rig.launched]
    # Exits are noticed on the next tick (+0.5 s), then 1, 2, 4, 8, 16, 30, 30 s of delay.
    assert starts == [0.0, 1.5, 4.0, 8.5, 17.0, 33.5, 64.0, 94.5]
    assert "exited with code 1" in rig.lines[0]
    assert "restarting in 30 s" in rig.lines[-1]


def test_a_stable_run_resets_the_backoff() -> None:
    rig = Rig("worker")
    rig.supervisor.start()
    for when, delay in ((1.0, "1 s"), (12.0, "2 s"), (23.0, "4 s")):  # quick crashes
        rig.latest("worker").returncode = 70
        rig.at(when)
        assert f"after 1 s; restarting in {delay}" in rig.lines[-1]
        rig.at(when + 10)  # restarted
    rig.latest("worker").returncode = 70
    rig.at(33.0 + 90)  # this run lasted 90 s: stable
    assert "exited with code 70 after 1 min 30 s; restarting in 1 s" in rig.lines[-1]


def test_a_start_that_fails_is_retried_with_backoff() -> None:
    rig = Rig("worker", fail_launches=2)
    rig.supervisor.start()
    assert rig.launched == []
    assert "worker could not start" in rig.lines[0] and "retrying in 1 s" in rig.lines[0]
    rig.at(1.0)
    assert "retrying in 2 s" in rig.lines[1]
    rig.at(2.9)
    assert rig.launched == []
    rig.at(3.0)
    assert rig.supervisor.pid("worker") == rig.latest("worker").pid


def test_nothing_is_restarted_once_stopping() -> None:
    rig = Rig("worker")
    rig.supervisor.start()
    rig.latest("worker").returncode = 1
    rig.at(1.0)  # waiting to restart
    rig.supervisor.stop()
    rig.at(100.0)
    assert len(rig.launched) == 1
