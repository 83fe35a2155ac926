"""``hookstream up``'s supervision with real processes: the roles started as ``up`` starts
them (its role list, its launcher), the worker SIGKILLed, restarted, and delivering again."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import orjson
import pytest

from app.local.supervisor import Supervisor, launcher
from app.local.up import POLL_INTERVAL, ROLES
from app.settings import Settings
from tests.support import (
    API_KEY,
    Receiver,
    api_ready,
    event,
    eventually,
    pipeline_settings,
    prepare,
    produce_events,
    settings_env,
)

pytestmark = [pytest.mark.e2e, pytest.mark.integration]


@contextlib.asynccontextmanager
async def supervised(
    settings: Settings, log_dir: Path, lines: list[str]
) -> AsyncIterator[Supervisor]:
    """``up``'s roles under ``up``'s supervisor, polled at ``up``'s interval in the background."""
    supervisor = Supervisor(
        ROLES,
        launcher({**os.environ, **settings_env(settings)}, log_dir),
        say=lines.append,
        log_dir=log_dir,
    )
    supervisor.start()

    async def poll() -> None:
        while True:
            supervisor.poll()
            await asyncio.sleep(POLL_INTERVAL)

    poller = asyncio.create_task(poll())
    try:
        yield supervisor
    finally:
        poller.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await poller
        await asyncio.to_thread(supervisor.stop)


async def test_a_killed_worker_is_restarted_and_delivers_what_comes_after(
    stack_settings: Settings, unique: str, tmp_path: Path
) -> None:
    settings = pipeline_settings(stack_settings, unique)
    prepare(settings)
    receiver = Receiver()
    await receiver.start()
    lines: list[str] = []

    def delivered(event_id: str) -> bool:
        return any(orjson.loads(r.body)["id"] == event_id for r in receiver.at("/up"))

    base = f"http://127.0.0.1:{settings.api.port}"
    auth = {"Authorization": f"Bearer {API_KEY}"}
    try:
        async with (
            supervised(settings, tmp_path, lines) as supervisor,
            httpx.AsyncClient(base_url=base, headers=auth, trust_env=False) as api,
        ):
            await eventually(lambda: api_ready(api), timeout=90, what="the API ready")
            created = await api.post(
                "/v1/webhooks",
                json={"url": receiver.url("/up"), "events": ["user.created"], "active": True},
            )
            assert created.status_code == 201, created.text
            before = event()
            produce_events(settings, [before])
            await eventually(
                lambda: delivered(before["id"]), timeout=120, what="a delivery before the kill"
            )

            killed = supervisor.pid("worker")
            assert killed is not None
            others = {name: supervisor.pid(name) for name in ("api", "scheduler")}
            os.killpg(killed, signal.SIGKILL)
            await eventually(
                lambda: supervisor.pid("worker") not in (None, killed),
                timeout=10,  # noticed within one poll interval, restarted after 1 s
                what="the worker restarted",
            )
            assert supervisor.restarts("worker") == 1
            exit_line = next(line for line in lines if "SIGKILL" in line)
            assert "worker was killed by SIGKILL after" in exit_line
            assert "restarting in 1 s" in exit_line
            assert str(tmp_path / "worker.log") in exit_line
            assert any("worker restarted (restart 1, pid" in line for line in lines)
            # Only the worker was touched.
            assert {name: supervisor.pid(name) for name in others} == others
            assert "--- hookstream up: worker was killed by SIGKILL" in (
                (tmp_path / "worker.log").read_text(errors="replace")
            )

            after = event()
            produce_events(settings, [after])
            # The replacement joins the group once the killed member's session expires.
            await eventually(
                lambda: delivered(after["id"]),
                timeout=180,
                interval=0.5,
                what="a delivery by the restarted worker",
            )
    finally:
        await receiver.stop()
    # Leaving ``supervised`` stopped every role, as up's Ctrl-C does: no process is left.
    assert all(_gone(supervisor.pid(spec.name)) for spec in ROLES)


def _gone(pid: int | None) -> bool:
    if pid is None:
        return True
    try:
        os.killpg(pid, 0)
    except ProcessLookupError:
        return True
    return False
