"""``hookstream up``: the whole flow on this machine, visibly.

Real Kafka and Cassandra (the local stack) → migrate → API, worker and scheduler as child
processes → a demo receiver → a demo webhook → the public docs' sample events → their
deliveries shown from the API's delivery log. A role that exits is restarted with backoff
(``app.local.supervisor``) and the terminal says so. Ctrl-C stops the children and the stack.

The local run allows 127.0.0.0/8 through the SSRF guard and plain-http webhook URLs on
purpose: the demo receiver listens on loopback.
"""

from __future__ import annotations

import os
import secrets
import signal
import socket
import sys
import time
from datetime import UTC, datetime
from typing import Any

import httpx

from app.errors import HookstreamError
from app.events import build_event, format_timestamp
from app.local.produce import produce_events
from app.local.supervisor import RoleSpec, Supervisor, launcher
from app.settings import SEED_EVENT_TYPES, Settings
from app.webhooks import generate_secret

# The roles ``up`` runs and supervises, in start order (stopped in reverse). One line a role.
ROLES: tuple[RoleSpec, ...] = (
    RoleSpec("api", ("api",)),
    RoleSpec("worker", ("worker",)),
    RoleSpec("scheduler", ("scheduler",)),
    RoleSpec("recorder", ("recorder",)),
    RoleSpec("replayer", ("replayer",)),
)
POLL_INTERVAL = 0.5  # seconds between looks at the children: an exit is noticed this late

# The public docs' standard-format example, and one event of every other documented type.
SAMPLE_DATA: dict[str, dict[str, Any]] = {
    "user.created": {
        "id": "user_123",
        "name": "John Doe",
        "email": "john@example.com",
        "status": "active",
    },
    "user.updated": {"id": "user_123", "name": "John Doe", "status": "active"},
    "user.deleted": {"id": "user_123"},
    "project.created": {"id": "proj_1", "name": "Apollo"},
    "project.updated": {"id": "proj_1", "name": "Apollo 2"},
    "project.deleted": {"id": "proj_1"},
    "file.uploaded": {"id": "file_1", "name": "report.pdf", "size": 48213},
    "payment.succeeded": {"id": "pay_1", "amount": 4200, "currency": "usd"},
    "payment.failed": {"id": "pay_2", "amount": 990, "currency": "usd", "reason": "declined"},
}


def _say(text: str) -> None:
    print(f"• {text}", file=sys.stderr, flush=True)


def run_up(settings: Settings, *, receiver_port: int, publish_samples: bool) -> None:
    from app.cli import _migrate
    from app.localstack import LocalStack

    stack = LocalStack(settings)
    log_dir = settings.stack.home / "logs"
    log_dir.mkdir(parents=True, exist_ok=True)
    children: Supervisor | None = None
    interrupted = False
    _refuse_busy_ports(
        {
            "API": (settings.api.host, settings.api.port),
            "demo receiver": ("127.0.0.1", receiver_port),
        }
    )
    # A stack that was already running (``hookstream stack up``) is left running at the end.
    started_stack = not stack.is_ready()
    _stop_on_signals()
    try:
        stack.up(_say)
        _migrate(settings)
        api_key = next(
            (k.get_secret_value() for k in settings.api_keys), "dev_" + secrets.token_hex(12)
        )
        env = {
            **os.environ,
            "HOOKSTREAM_API_KEYS": ",".join(
                [api_key, *(k.get_secret_value() for k in settings.api_keys)]
            ),
            "HOOKSTREAM_ALLOWED_NETWORKS": os.environ.get(
                "HOOKSTREAM_ALLOWED_NETWORKS", "127.0.0.0/8"
            ),
            "HOOKSTREAM_API__ALLOW_HTTP": "true",
            "HOOKSTREAM_LOG__FORMAT": "text",
        }
        secret = generate_secret()
        receiver = RoleSpec(
            "receiver",
            ("listen", "--secret", secret, "--port", str(receiver_port)),
            to_terminal=True,
        )
        children = Supervisor([*ROLES, receiver], launcher(env, log_dir), say=_say, log_dir=log_dir)
        children.start()
        for role in ROLES:
            _say(f"started {role.name} (log: {log_dir / (role.name + '.log')})")
        api_url = f"http://{settings.api.host}:{settings.api.port}"
        client = httpx.Client(
            base_url=api_url,
            timeout=10,
            trust_env=False,
            headers={"Authorization": f"Bearer {api_key}"},
        )
        _wait_api(client, children)
        webhook = _create_demo_webhook(client, secret, receiver_port)
        _say(f"demo webhook {webhook['id']} → {webhook['url']} (events: *)")
        if publish_samples:
            run = secrets.token_hex(4)
            now = format_timestamp(datetime.now(UTC))
            events = [
                build_event(f"evt_{run}_{n}", t, now, SAMPLE_DATA[t])
                for n, t in enumerate(SEED_EVENT_TYPES, 1)
            ]
            produce_events(settings, events)
            _say(f"published {len(events)} sample events to {settings.kafka.events_topic}")
            _show_deliveries(client, children, webhook["id"], len(events))
        print(
            f"\nHookstream is running. API: {api_url}  (Authorization: Bearer {api_key})\n"
            f"Try: curl -X POST -H 'Authorization: Bearer {api_key}' "
            f"{api_url}/v1/webhooks/{webhook['id']}/test\n"
            f"Console: {api_url}/console  (sign in with that key)   API docs: {api_url}/docs\n"
            "Logs: " + str(log_dir) + "   A role that exits is restarted.  "
            "Press Ctrl-C to stop everything.",
            flush=True,
        )
        while True:
            children.poll()
            time.sleep(POLL_INTERVAL)
    except KeyboardInterrupt:
        interrupted = True
        print(file=sys.stderr)
        _say("Ctrl-C: stopping")
    finally:
        # A second Ctrl-C must not cut the clean stop short (each step has its own deadline).
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        if children is not None:
            children.stop()
        if started_stack:
            stack.down(progress=_say)
        if interrupted:
            _say("stopped cleanly")


def _stop_on_signals() -> None:
    """Ctrl-C and SIGTERM both end ``up`` through its clean stop. SIGINT is restored to
    Python's handler too: a shell that starts ``up`` in the background leaves it ignored."""

    def stop(_signum: int, _frame: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)


def _refuse_busy_ports(ports: dict[str, tuple[str, int]]) -> None:
    for what, (host, port) in ports.items():
        with socket.socket() as probe:
            probe.settimeout(0.5)
            if probe.connect_ex((host, port)) == 0:
                raise HookstreamError(
                    f"port {port} ({what}) is already in use: is `hookstream up` already "
                    "running? Stop it with Ctrl-C, or choose other ports "
                    "(HOOKSTREAM_API__PORT, --receiver-port)."
                )


def _wait_api(client: httpx.Client, children: Supervisor, timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    last = "no answer"
    while time.monotonic() < deadline:
        children.poll()
        try:
            response = client.get("/readyz")
            if response.status_code == 200:
                _say("API ready")
                return
            last = response.text
        except httpx.TransportError as exc:
            last = str(exc)
        time.sleep(POLL_INTERVAL)
    raise HookstreamError(f"the API did not become ready: {last} (see the lines above and api.log)")


DEMO_DESCRIPTION = "hookstream up: demo receiver"


def _create_demo_webhook(client: httpx.Client, secret: str, port: int) -> dict[str, Any]:
    _delete_old_demo_webhooks(client)
    response = client.post(
        "/v1/webhooks",
        json={
            "url": f"http://127.0.0.1:{port}/webhook",
            "events": ["*"],
            "secret": secret,
            "active": True,
            "description": DEMO_DESCRIPTION,
        },
    )
    if response.status_code != 201:
        raise HookstreamError(f"creating the demo webhook failed: {response.text}")
    result: dict[str, Any] = response.json()
    return result


def _delete_old_demo_webhooks(client: httpx.Client) -> None:
    """Delete the demo webhooks of earlier runs: they point at the same receiver with other
    secrets, so every sample event (and their retries) would fail its signatures there."""
    cursor: str | None = None
    old: list[str] = []
    while True:
        response = client.get("/v1/webhooks", params={"cursor": cursor} if cursor else {})
        if response.status_code != 200:
            return  # not fatal: the demo still works, beside the mismatch lines
        page = response.json()
        old += [w["id"] for w in page["webhooks"] if w.get("description") == DEMO_DESCRIPTION]
        cursor = page.get("next_cursor")
        if not cursor:
            break
    for webhook_id in old:
        client.delete(f"/v1/webhooks/{webhook_id}")
    if old:
        _say(f"deleted {len(old)} demo webhook(s) of earlier runs")


def _show_deliveries(
    client: httpx.Client, children: Supervisor, webhook_id: str, expected: int, timeout: float = 90
) -> None:
    deadline = time.monotonic() + timeout
    deliveries: list[dict[str, Any]] = []
    while time.monotonic() < deadline:
        children.poll()
        response = client.get(f"/v1/webhooks/{webhook_id}/deliveries", params={"limit": 100})
        if response.status_code == 200:
            deliveries = response.json()["deliveries"]
            if sum(d["status"] == "success" for d in deliveries) >= expected:
                break
        time.sleep(POLL_INTERVAL)
    print(f"\nDelivery log (GET /v1/webhooks/{webhook_id}/deliveries):", flush=True)
    print(f"  {'delivery':<32} {'event':<18} {'type':<18} {'status':<8} code attempts")
    for d in sorted(deliveries, key=lambda d: d["event_id"]):
        print(
            f"  {d['id']:<32} {d['event_id']:<18} {d.get('event_type', ''):<18} "
            f"{d['status']:<8} {d.get('status_code')!s:<4} {d['attempts']}"
        )
    ok = sum(d["status"] == "success" for d in deliveries)
    print(
        f"  {ok}/{expected} delivered; the receiver answers 200 only after verifying both "
        "signatures (X-Webhook-Signature and webhook-signature).",
        flush=True,
    )
