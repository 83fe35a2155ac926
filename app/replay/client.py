"""``hookstream replay``: start a replay through the API and follow it with a progress bar."""

from __future__ import annotations

import time
from typing import Any

import httpx
import typer

POLL_S = 0.5


def replay(
    api_url: str,
    api_key: str,
    webhook_id: str,
    body: dict[str, Any],
    *,
    follow: bool = True,
) -> dict[str, Any]:
    """POST the replay, then (``follow``) poll it until it finishes, drawing its progress.
    Ctrl-C cancels it. Exits 1 on an API error or a replay that failed."""
    headers = {"Authorization": f"Bearer {api_key}"}
    with httpx.Client(base_url=api_url, timeout=10, trust_env=False, headers=headers) as client:
        job = _ok(client.post(f"/v1/webhooks/{webhook_id}/replay", json=body))
        typer.secho(f"replay {job['id']} queued ({job['mode']})", fg="cyan", err=True)
        if not follow:
            return job
        try:
            job = _follow(client, job)
        except KeyboardInterrupt:
            job = _ok(client.post(f"/v1/replays/{job['id']}/cancel"))
            typer.secho("cancelling…", fg="yellow", err=True)
            job = _follow(client, job)
    _summary(job)
    if job["status"] == "failed":
        raise typer.Exit(1)
    return job


def _follow(client: httpx.Client, job: dict[str, Any]) -> dict[str, Any]:
    with typer.progressbar(length=1000, label="replaying", file=None) as bar:
        shown = 0
        while job["status"] in ("queued", "running"):
            time.sleep(POLL_S)
            job = _ok(client.get(f"/v1/replays/{job['id']}"))
            now = int(job["progress"] * 1000)
            bar.label = (
                f"scanned {job['scanned']}  matched {job['matched']}  enqueued {job['enqueued']}"
            )
            bar.update(now - shown)
            shown = now
    return job


def _summary(job: dict[str, Any]) -> None:
    typer.echo(
        f"{job['id']}: {job['status']} — scanned {job['scanned']}, matched {job['matched']}, "
        f"enqueued {job['enqueued']}, skipped {job['skipped']}"
    )
    if job.get("earliest_available"):
        typer.secho(
            f"the events topic held events from {job['earliest_available']} on only "
            "(older ones were deleted by its retention)",
            fg="yellow",
            err=True,
        )
    if job.get("error"):
        typer.secho(job["error"], fg="red", err=True)


def _ok(response: httpx.Response) -> dict[str, Any]:
    if response.status_code >= 400:
        typer.secho(f"{response.status_code}: {response.text}", fg="red", err=True)
        raise typer.Exit(1)
    data: dict[str, Any] = response.json()
    return data
