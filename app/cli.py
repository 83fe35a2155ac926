"""``hookstream``: the roles (api, worker, scheduler, recorder, replayer, migrate, up) and
their tools.

All wiring happens here: settings are built once per command and passed down. Exit codes:
0 success, 1 a failed operation (message on stderr), 2 bad usage or settings.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from app.errors import HookstreamError, SettingsError
from app.settings import Settings, load_settings

cli = typer.Typer(
    name="hookstream",
    help="Kafka-native webhook delivery: roles to run it and tools to use it.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
stack_cli = typer.Typer(help="The local stack of real Kafka and Cassandra.", no_args_is_help=True)
webhooks_cli = typer.Typer(help="Manage webhooks through the API.", no_args_is_help=True)
deliveries_cli = typer.Typer(help="Read delivery logs through the API.", no_args_is_help=True)
apikey_cli = typer.Typer(help="API keys.", no_args_is_help=True)
accounts_cli = typer.Typer(help="Accounts, through the admin API.", no_args_is_help=True)
cli.add_typer(stack_cli, name="stack")
cli.add_typer(webhooks_cli, name="webhooks")
cli.add_typer(deliveries_cli, name="deliveries")
cli.add_typer(apikey_cli, name="apikey")
cli.add_typer(accounts_cli, name="accounts")

EXIT_FAILED = 1
EXIT_USAGE = 2


def _settings() -> Settings:
    try:
        settings = load_settings()
    except SettingsError as exc:
        typer.secho(str(exc), fg="red", err=True)
        raise typer.Exit(EXIT_USAGE) from None
    from app import logs

    logs.configure(settings.log)
    return settings


def _say(text: str) -> None:
    typer.secho(f"• {text}", fg="cyan", err=True)


# ── roles ────────────────────────────────────────────────────────────────────────────────


@cli.command()
def api() -> None:
    """⑥ Serve the REST API (webhooks, delivery logs, test and redelivery)."""
    import uvicorn

    from app.api.main import build_app
    from app.connectivity import check_connectivity

    settings = _settings()
    check_connectivity(settings)
    uvicorn.run(
        build_app(settings),
        host=settings.api.host,
        port=settings.api.port,
        log_config=None,
        access_log=False,
        timeout_graceful_shutdown=20,
        # httptools (llhttp, C) rather than h11 (pure Python): h11 was 5 % of the API's CPU
        # per delivery-log page (BENCHMARKS.md, session 4). Named, so a missing one fails.
        http="httptools",
    )


@cli.command()
def worker() -> None:
    """②④ Match events to webhooks and deliver attempts (Faust agents)."""
    from app.connectivity import check_connectivity
    from app.worker.main import main

    settings = _settings()
    check_connectivity(settings)
    main(settings)


@cli.command()
def scheduler() -> None:
    """③ Forward due retries from the retry topics to the redeliver topic."""
    from app import metrics
    from app.connectivity import check_connectivity
    from app.scheduler import main

    settings = _settings()
    check_connectivity(settings, cassandra=False)
    metrics.serve(settings.scheduler.metrics_port)
    main(settings)


@cli.command()
def recorder() -> None:
    """⑤ Write the records topic (delivery states, attempts, events) to Cassandra in batches."""
    from app.connectivity import check_connectivity
    from app.recorder import main

    settings = _settings()
    check_connectivity(settings)
    main(settings)


@cli.command()
def replayer() -> None:
    """Run replay jobs: re-read the events topic for one webhook at a bounded rate."""
    from app.connectivity import check_connectivity
    from app.replay.role import main

    settings = _settings()
    check_connectivity(settings)
    main(settings)


@cli.command()
def migrate() -> None:
    """Create the Cassandra keyspace and tables and the Kafka topics (idempotent)."""
    settings = _settings()
    _migrate(settings)


def _migrate(settings: Settings) -> None:
    from app.kafka import create_topics
    from app.store.schema import migrate as migrate_schema

    migrate_schema(settings)
    _say(f"Cassandra keyspace {settings.cassandra.keyspace} is up to date")
    created = create_topics(settings)
    _say(f"Kafka topics: {len(created)} created, the rest already existed")
    from app.keyring import key_ring
    from app.reseal import reseal_webhooks

    if key_ring(settings).enabled:
        _say(f"webhook secrets: {reseal_webhooks(settings)} re-sealed with the newest key")
    else:
        _say("webhook secrets: no HOOKSTREAM_SECRETS__KEYS, they stay in plain text")


@cli.command()
def up(
    receiver_port: Annotated[int, typer.Option(help="Port of the demo receiver.")] = 4000,
    events: Annotated[bool, typer.Option(help="Publish the sample events.")] = True,
) -> None:
    """Everything locally: stack, API, worker, scheduler, a demo receiver, sample events.

    Runs until Ctrl-C, which stops everything cleanly.
    """
    from app.local.up import run_up

    run_up(_settings(), receiver_port=receiver_port, publish_samples=events)


# ── the local stack ──────────────────────────────────────────────────────────────────────


@stack_cli.command("up")
def stack_up(
    secure: Annotated[
        bool,
        typer.Option(
            help="The secure profile: Kafka over SASL_SSL (SCRAM), Cassandra with a password "
            "and TLS, in their own run directory; prints the variables that connect to it."
        ),
    ] = False,
) -> None:
    """Fetch the server jars (once) and start Kafka and Cassandra; wait until they answer."""
    from app.localstack import LocalStack

    stack = LocalStack(_settings(), secure=secure)
    stack.up(_say)
    if stack.secure is not None:
        for name, value in stack.secure.client_env().items():
            typer.echo(f"export {name}={value}")


@stack_cli.command("down")
def stack_down(
    wipe: Annotated[bool, typer.Option(help="Also delete the servers' data.")] = False,
    secure: Annotated[bool, typer.Option(help="The secure profile's stack.")] = False,
) -> None:
    """Stop Kafka and Cassandra (SIGTERM, then SIGKILL after a grace period)."""
    from app.localstack import LocalStack

    LocalStack(_settings(), secure=secure).down(wipe=wipe, progress=_say)


@stack_cli.command("status")
def stack_status(
    secure: Annotated[bool, typer.Option(help="The secure profile's stack.")] = False,
) -> None:
    """Show whether each server runs and answers its protocol. Exit 1 if not ready."""
    from app.localstack import LocalStack

    status = LocalStack(_settings(), secure=secure).status()
    typer.echo(str(status))
    if not status.ready:
        raise typer.Exit(EXIT_FAILED)


# ── tools ────────────────────────────────────────────────────────────────────────────────


@cli.command()
def produce(
    event_type: Annotated[str | None, typer.Option("--type", help="Event type.")] = None,
    data: Annotated[str | None, typer.Option(help="The event's data as a JSON object.")] = None,
    event_id: Annotated[str | None, typer.Option("--id", help="Event id (default: new).")] = None,
    file: Annotated[
        Path | None, typer.Option(help="A JSON file with one event or a list; - for stdin.")
    ] = None,
    account: Annotated[
        str | None,
        typer.Option(help="The account the events belong to (the hookstream-account header)."),
    ] = None,
) -> None:
    """Validate events and produce them to the events topic (idempotent, acks=all)."""
    from app.accounts import is_account_id
    from app.local.produce import events_from_options, produce_events

    settings = _settings()
    try:
        batch = events_from_options(event_type, data, event_id, file)
    except HookstreamError as exc:
        typer.secho(f"invalid event: {exc}", fg="red", err=True)
        raise typer.Exit(EXIT_USAGE) from None
    if account is not None and not is_account_id(account):
        typer.secho(f"invalid account: {account!r} is not an account id", fg="red", err=True)
        raise typer.Exit(EXIT_USAGE)
    sent = produce_events(settings, batch, progress=_say, account=account)
    typer.echo(f"produced {sent} event(s) to {settings.kafka.events_topic}")


@cli.command()
def listen(
    secret: Annotated[str, typer.Option(help="The webhook's secret (whsec_…).")],
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 4000,
    status: Annotated[int, typer.Option(help="Status to answer verified requests with.")] = 200,
    path: Annotated[str, typer.Option(help="URL path to serve.")] = "/webhook",
) -> None:
    """A local receiver: verifies both signature schemes and prints each event."""
    from app.local.listen import run_listener

    run_listener(secret=secret, port=port, status=status, path=path)


@webhooks_cli.command("create")
def webhooks_create(
    url: Annotated[str, typer.Argument(help="Where to POST events.")],
    event: Annotated[list[str], typer.Option("--event", "-e", help="Event type or wildcard.")],
    secret: Annotated[str | None, typer.Option(help="whsec_… (default: generated).")] = None,
    api_url: Annotated[str, typer.Option(envvar="HOOKSTREAM_API_URL")] = "http://127.0.0.1:8080",
    api_key: Annotated[str, typer.Option(envvar="HOOKSTREAM_API_KEY")] = "",
) -> None:
    """Create a webhook; prints it (with its secret) as JSON."""
    from app.local.client import api_call

    body: dict[str, object] = {"url": url, "events": event}
    if secret:
        body["secret"] = secret
    api_call(api_url, api_key, "POST", "/v1/webhooks", body)


@webhooks_cli.command("list")
def webhooks_list(
    api_url: Annotated[str, typer.Option(envvar="HOOKSTREAM_API_URL")] = "http://127.0.0.1:8080",
    api_key: Annotated[str, typer.Option(envvar="HOOKSTREAM_API_KEY")] = "",
) -> None:
    """List webhooks as JSON."""
    from app.local.client import api_call

    api_call(api_url, api_key, "GET", "/v1/webhooks")


@webhooks_cli.command("delete")
def webhooks_delete(
    webhook_id: Annotated[str, typer.Argument(help="hook_…")],
    api_url: Annotated[str, typer.Option(envvar="HOOKSTREAM_API_URL")] = "http://127.0.0.1:8080",
    api_key: Annotated[str, typer.Option(envvar="HOOKSTREAM_API_KEY")] = "",
) -> None:
    """Delete a webhook; its scheduled retries end as cancelled."""
    from app.local.client import api_call

    api_call(api_url, api_key, "DELETE", f"/v1/webhooks/{webhook_id}")


@deliveries_cli.command("list")
def deliveries_list(
    webhook_id: Annotated[str, typer.Argument(help="hook_…")],
    status: Annotated[str | None, typer.Option(help="pending, success or failed.")] = None,
    api_url: Annotated[str, typer.Option(envvar="HOOKSTREAM_API_URL")] = "http://127.0.0.1:8080",
    api_key: Annotated[str, typer.Option(envvar="HOOKSTREAM_API_KEY")] = "",
) -> None:
    """A webhook's delivery log, newest first, as JSON."""
    from app.local.client import api_call

    query = f"?status={status}" if status else ""
    api_call(api_url, api_key, "GET", f"/v1/webhooks/{webhook_id}/deliveries{query}")


@deliveries_cli.command("tail")
def deliveries_tail(
    webhook_id: Annotated[str, typer.Argument(help="hook_…")],
    api_url: Annotated[str, typer.Option(envvar="HOOKSTREAM_API_URL")] = "http://127.0.0.1:8080",
    api_key: Annotated[str, typer.Option(envvar="HOOKSTREAM_API_KEY")] = "",
) -> None:
    """Follow a webhook's delivery log live (Ctrl-C to stop)."""
    from app.local.client import tail_deliveries

    tail_deliveries(api_url, api_key, webhook_id)


AccountOption = Annotated[
    str, typer.Option("--account", help="The account the key acts in (default: default).")
]


@apikey_cli.command("create")
def apikey_create(
    name: Annotated[str, typer.Option(help="What the key is for.")] = "default",
    account: AccountOption = "default",
) -> None:
    """Create an API key for an account (straight in Cassandra: the way to make the first
    key). It is printed once; only its hash is stored."""
    from app.local.keys import create_key

    try:
        key, stored = create_key(_settings(), name, account)
    except HookstreamError as exc:
        typer.secho(str(exc), fg="red", err=True)
        raise typer.Exit(EXIT_FAILED) from None
    _say(f"key {stored.id} for account {stored.account_id} (shown once):")
    typer.echo(key)


@apikey_cli.command("list")
def apikey_list(account: AccountOption = "default") -> None:
    """The account's keys: id, prefix, name, created (never the keys themselves)."""
    from app.local.keys import list_keys

    for stored in list_keys(_settings(), account):
        typer.echo(f"{stored.id}  {stored.prefix}…  {stored.created_at:%Y-%m-%d}  {stored.name}")


@apikey_cli.command("revoke")
def apikey_revoke(key_id: Annotated[str, typer.Argument(help="key_… (from apikey list)")]) -> None:
    """Revoke a key: every API replica refuses it from its next request."""
    from app.local.keys import revoke_key

    if not revoke_key(_settings(), key_id):
        typer.secho(f"no key {key_id}", fg="red", err=True)
        raise typer.Exit(EXIT_FAILED)
    _say(f"revoked {key_id}")


ApiUrl = Annotated[str, typer.Option(envvar="HOOKSTREAM_API_URL")]
ApiKey = Annotated[str, typer.Option(envvar="HOOKSTREAM_API_KEY", help="An operator key.")]


@accounts_cli.command("create")
def accounts_create(
    name: Annotated[str, typer.Argument(help="Who the account is for.")],
    account_id: Annotated[
        str | None, typer.Option("--id", help="Pick the id (default: acct_ + random).")
    ] = None,
    max_webhooks: Annotated[int | None, typer.Option(help="Webhooks allowed.")] = None,
    api_url: ApiUrl = "http://127.0.0.1:8080",
    api_key: ApiKey = "",
) -> None:
    """Create an account (through the admin API; needs an operator key)."""
    from app.local.client import api_call

    body: dict[str, object] = {"name": name}
    if account_id is not None:
        body["id"] = account_id
    if max_webhooks is not None:
        body["max_webhooks"] = max_webhooks
    api_call(api_url, api_key, "POST", "/v1/accounts", body)


@accounts_cli.command("list")
def accounts_list(api_url: ApiUrl = "http://127.0.0.1:8080", api_key: ApiKey = "") -> None:
    """Every account, as JSON."""
    from app.local.client import api_call

    api_call(api_url, api_key, "GET", "/v1/accounts")


@accounts_cli.command("disable")
def accounts_disable(
    account_id: Annotated[str, typer.Argument(help="The account id.")],
    reason: Annotated[str, typer.Option(help="Why (shown on refusals).")] = "by an operator",
    api_url: ApiUrl = "http://127.0.0.1:8080",
    api_key: ApiKey = "",
) -> None:
    """Disable an account: its keys are refused, its events dead-lettered, its pending
    deliveries cancelled."""
    from app.local.client import api_call

    api_call(api_url, api_key, "POST", f"/v1/accounts/{account_id}/disable", {"reason": reason})


@accounts_cli.command("enable")
def accounts_enable(
    account_id: Annotated[str, typer.Argument(help="The account id.")],
    api_url: ApiUrl = "http://127.0.0.1:8080",
    api_key: ApiKey = "",
) -> None:
    """Enable a disabled account again."""
    from app.local.client import api_call

    api_call(api_url, api_key, "POST", f"/v1/accounts/{account_id}/enable")


@cli.command()
def replay(
    webhook_id: Annotated[str, typer.Argument(help="hook_…")],
    *,
    since: Annotated[str, typer.Option(help="RFC 3339: events from this time.")],
    until: Annotated[str | None, typer.Option(help="RFC 3339 (default: now).")] = None,
    mode: Annotated[str, typer.Option(help="missing (undelivered only) or all.")] = "missing",
    follow: Annotated[bool, typer.Option(help="Follow it with a progress bar.")] = True,
    api_url: Annotated[str, typer.Option(envvar="HOOKSTREAM_API_URL")] = "http://127.0.0.1:8080",
    api_key: Annotated[str, typer.Option(envvar="HOOKSTREAM_API_KEY")] = "",
) -> None:
    """Replay (or backfill) events from the events topic to one webhook; Ctrl-C cancels."""
    from app.replay.client import replay as run_replay

    body: dict[str, object] = {"since": since, "mode": mode}
    if until:
        body["until"] = until
    run_replay(api_url, api_key, webhook_id, body, follow=follow)


def main() -> None:
    try:
        cli()
    except HookstreamError as exc:
        typer.secho(f"error: {exc}", fg="red", err=True)
        sys.exit(EXIT_FAILED)


if __name__ == "__main__":
    main()
