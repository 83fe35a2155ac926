"""A small API client for the CLI tools (httpx: not on the delivery hot path)."""

from __future__ import annotations

import time
from typing import Any

import httpx
import orjson
import typer


def api_call(api_url: str, api_key: str, method: str, path: str, body: Any = None) -> Any:
    """Call the API, print the JSON answer; exit 1 with the error body on a 4xx/5xx."""
    with httpx.Client(base_url=api_url, timeout=10, trust_env=False) as client:
        response = client.request(
            method, path, json=body, headers={"Authorization": f"Bearer {api_key}"}
        )
    if response.status_code >= 400:
        typer.secho(f"{response.status_code}: {response.text}", fg="red", err=True)
        raise typer.Exit(1)
    if response.content:
        data = response.json()
        typer.echo(orjson.dumps(data, option=orjson.OPT_INDENT_2).decode())
        return data
    return None


def tail_deliveries(api_url: str, api_key: str, webhook_id: str, interval: float = 1.0) -> None:
    seen: dict[str, tuple[str, int]] = {}
    headers = {"Authorization": f"Bearer {api_key}"}
    with httpx.Client(base_url=api_url, timeout=10, trust_env=False, headers=headers) as client:
        while True:
            response = client.get(f"/v1/webhooks/{webhook_id}/deliveries", params={"limit": 50})
            if response.status_code >= 400:
                typer.secho(f"{response.status_code}: {response.text}", fg="red", err=True)
                raise typer.Exit(1)
            for item in reversed(response.json()["deliveries"]):
                state = (item["status"], item["attempts"])
                if seen.get(item["id"]) != state:
                    seen[item["id"]] = state
                    typer.echo(
                        f"{item['id']}  {item['event_id']}  {item['status']:<9}"
                        f" code={item.get('status_code')} attempts={item['attempts']}"
                    )
            time.sleep(interval)
