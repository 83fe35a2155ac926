"""One typed settings tree, built once at start-up (in ``app.cli``) and passed down.

Every value comes from the environment with the prefix ``HOOKSTREAM_``; nested groups use
``__`` (``HOOKSTREAM_KAFKA__BOOTSTRAP_SERVERS``). Three settings named by the public docs stay
at the top level: ``HOOKSTREAM_RETRY_SCHEDULE``, ``HOOKSTREAM_ALLOWED_NETWORKS`` and
``HOOKSTREAM_API_KEYS``. Nothing here opens a connection; there is no module-level instance.
"""

from __future__ import annotations

import ipaddress
import re
from datetime import timedelta
from pathlib import Path
from typing import Annotated, Literal, TypeVar

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    SecretStr,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

SEED_EVENT_TYPES = (
    "user.created",
    "user.updated",
    "user.deleted",
    "project.created",
    "project.updated",
    "project.deleted",
    "file.uploaded",
    "payment.succeeded",
    "payment.failed",
)

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?\s*$")
_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, None: 1.0}


def parse_duration(text: str) -> timedelta:
    """``"30s"``, ``"5m"``, ``"2h"``, ``"250ms"`` or a bare number of seconds."""
    match = _DURATION.match(text)
    if match is None:
        raise ValueError(f"{text!r} is not a duration such as 0, 30s, 5m or 2h")
    return timedelta(seconds=float(match.group(1)) * _UNIT_SECONDS[match.group(2)])


def format_duration(delay: timedelta) -> str:
    """The shortest exact spelling, used in retry topic names: 30s, 5m, 2h, 1500ms."""
    ms = round(delay.total_seconds() * 1000)
    for unit, size in (("d", 86_400_000), ("h", 3_600_000), ("m", 60_000), ("s", 1000)):
        if ms and ms % size == 0:
            return f"{ms // size}{unit}"
    return f"{ms}ms"


def _duration(value: object) -> object:
    return parse_duration(value) if isinstance(value, str) else value


# A timedelta that also reads "30s", "5m", "2h" or a bare number of seconds from the env.
Duration = Annotated[timedelta, BeforeValidator(_duration)]


def _split_csv(value: object) -> object:
    if isinstance(value, str):
        return [part.strip() for part in value.split(",") if part.strip()]
    return value


class _Group(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


_G = TypeVar("_G", bound=_Group)


def _secrets_from_files(group: _G, **fields: str) -> _G:
    """Fill each secret from its ``*_file`` (a Kubernetes Secret mounted as a file) when set.

    One trailing newline is dropped: ``echo pw > file`` and ``kubectl create secret
    --from-file`` both leave one. A file that cannot be read fails start-up, naming the file.
    """
    for file_field, secret_field in fields.items():
        path = getattr(group, file_field)
        if path is None:
            continue
        try:
            text = Path(path).read_text()
        except OSError as exc:
            raise ValueError(f"cannot read {path}: {exc.strerror}") from None
        secret = SecretStr(text[:-1] if text.endswith("\n") else text)
        # The groups are frozen; this runs once, inside validation, before anyone holds one.
        object.__setattr__(group, secret_field, secret)
    return group


class KafkaSettings(_Group):
    bootstrap_servers: str = Field("127.0.0.1:9092", description="Kafka bootstrap servers.")
    topic_prefix: str = Field(
        "hookstream", description="Prefix of Hookstream's own topics (`<prefix>.deliveries`)."
    )
    events_topic: str = Field("events", description="The topic producers write events to.")
    partitions: int = Field(
        6, ge=1, description="Partitions of the events, deliveries, redeliver and retry topics."
    )
    replication_factor: int = Field(1, ge=1, description="Replication factor of created topics.")
    # Each produce batch costs the broker, and the producer's thread, about the same whatever
    # it holds; at 2 ms a drain's attempt messages went one per partition per request
    # (BENCHMARKS.md, session 13: 5 ms drained 8 % faster for ~2 ms more median latency).
    linger: Duration = Field(
        timedelta(milliseconds=5),
        description="How long a produced message may wait to be batched (librdkafka linger.ms).",
    )
    consumer_group: str = Field("hookstream-worker", description="The workers' consumer group.")
    scheduler_group: str = Field(
        "hookstream-scheduler", description="The scheduler's consumer group."
    )
    # Connection security, applied to every client (app.kafka: client_config, aiokafka_config).
    security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = Field(
        "PLAINTEXT", description="Kafka `security.protocol` (SASL_SSL for a managed cluster)."
    )
    sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] = Field(
        "SCRAM-SHA-512", description="SASL mechanism (with a SASL_* protocol)."
    )
    sasl_username: str | None = Field(None, description="SASL user name.")
    sasl_password: SecretStr | None = Field(None, description="SASL password.")
    sasl_password_file: Path | None = Field(
        None, description="A file holding the SASL password (a mounted secret); wins if set."
    )
    ssl_ca_file: Path | None = Field(
        None, description="PEM CA bundle that signs the brokers' certificates (default: system)."
    )
    ssl_cert_file: Path | None = Field(
        None, description="PEM client certificate (mutual TLS only)."
    )
    ssl_key_file: Path | None = Field(None, description="PEM private key of the client cert.")
    ssl_key_password: SecretStr | None = Field(
        None, description="Password of an encrypted client key."
    )
    ssl_key_password_file: Path | None = Field(
        None, description="A file holding the client key's password; wins if set."
    )
    ssl_check_hostname: bool = Field(
        True, description="Check that a broker's certificate names the host connected to."
    )

    @model_validator(mode="after")
    def _read_secret_files(self) -> KafkaSettings:
        return _secrets_from_files(
            self, sasl_password_file="sasl_password", ssl_key_password_file="ssl_key_password"
        )


class CassandraSettings(_Group):
    hosts: Annotated[list[str], NoDecode] = Field(
        default_factory=lambda: ["127.0.0.1"], description="Contact points, comma-separated."
    )
    port: int = Field(9042, ge=1, le=65535, description="CQL native transport port.")
    keyspace: str = Field("hookstream", pattern=r"^[a-z][a-z0-9_]{0,47}$", description="Keyspace.")
    local_dc: str = Field("datacenter1", description="Local data centre for load balancing.")
    replication_factor: int = Field(1, ge=1, description="Keyspace replication factor.")
    retention: Duration = Field(
        timedelta(days=30), description="TTL of every delivery, attempt and event row."
    )
    consistency: Literal["ONE", "LOCAL_ONE", "LOCAL_QUORUM", "QUORUM", "EACH_QUORUM", "ALL"] = (
        Field(
            "LOCAL_QUORUM",
            description="Consistency of every read and write (LOCAL_QUORUM: a read sees an "
            "acknowledged write, on one node or many).",
        )
    )
    username: str | None = Field(None, description="PasswordAuthenticator user name.")
    password: SecretStr | None = Field(None, description="PasswordAuthenticator password.")
    password_file: Path | None = Field(
        None, description="A file holding the password (a mounted secret); wins if set."
    )
    ssl: bool = Field(False, description="Client encryption (TLS) to every node.")
    ssl_ca_file: Path | None = Field(
        None, description="PEM CA bundle that signs the nodes' certificates (default: system)."
    )
    ssl_cert_file: Path | None = Field(None, description="PEM client certificate (mutual TLS).")
    ssl_key_file: Path | None = Field(None, description="PEM private key of the client cert.")
    ssl_check_hostname: bool = Field(
        True, description="Check that a node's certificate names the address connected to."
    )

    @model_validator(mode="after")
    def _read_secret_files(self) -> CassandraSettings:
        return _secrets_from_files(self, password_file="password")

    _split_hosts = field_validator("hosts", mode="before")(_split_csv)


class DeliverySettings(_Group):
    concurrency: int = Field(256, ge=1, description="Attempts in flight per worker process.")
    per_webhook_concurrency: int = Field(
        16, ge=1, description="Attempts in flight per webhook, so one slow receiver can't starve."
    )
    connect_timeout: float = Field(5.0, gt=0, description="Seconds to open a connection.")
    attempt_timeout: float = Field(15.0, gt=0, description="Overall deadline of one attempt (s).")
    response_max_bytes: int = Field(
        65536, ge=0, description="Response body bytes read at most, then the connection closes."
    )
    response_excerpt_bytes: int = Field(
        1024, ge=0, description="Response body bytes kept in the attempt log."
    )
    max_retry_after: Duration = Field(
        timedelta(hours=6), description="Upper clamp for a receiver's Retry-After."
    )
    event_max_bytes: int = Field(262144, ge=1024, description="Largest accepted event (bytes).")


class ApiSettings(_Group):
    host: str = Field("127.0.0.1", description="Address the API listens on.")
    port: int = Field(8080, ge=1, le=65535, description="Port the API listens on.")
    allow_http: bool = Field(
        False, description="Accept plain http:// webhook URLs (local development only)."
    )
    page_limit: int = Field(100, ge=1, le=1000, description="Largest page a list returns.")
    max_body_bytes: int = Field(
        1_048_576,
        ge=1024,
        description="Largest request body; a larger one is refused with 413 before it is read.",
    )
    enqueue_timeout: Duration = Field(
        timedelta(seconds=10),
        gt=timedelta(0),
        description="How long Kafka may take to acknowledge a test, retry or recover attempt; "
        "then the API's producer drops the message and the API answers 503.",
    )
    rate_limit: float = Field(
        100.0,
        ge=0,
        description="Requests per second one API key may make, per API replica (0: no limit); "
        "past it, 429 with Retry-After.",
    )
    rate_burst: int = Field(200, ge=1, description="Requests one API key may make at once.")
    max_webhooks: int = Field(
        100,
        ge=1,
        description="Webhooks an account may have, unless the account sets its own limit.",
    )


class WorkerSettings(_Group):
    metrics_port: int = Field(9464, ge=0, le=65535, description="Prometheus port (0: off).")
    webhook_reload_interval: Duration = Field(
        timedelta(seconds=30), description="How often workers reload all webhooks from Cassandra."
    )
    instance_id: str | None = Field(
        None,
        description="Static group membership id (Kubernetes: the pod name). A restarted worker "
        "with the same id takes its partitions back without a rebalance. Unique per process.",
    )

    @field_validator("instance_id", mode="before")
    @classmethod
    def _unset_when_empty(cls, value: object) -> object:
        # An empty variable means "not set": a shared id would fence every worker but one.
        return None if value == "" else value

    session_timeout: Duration = Field(
        timedelta(seconds=10),
        description="Kafka session timeout: how soon a killed worker's partitions move on.",
    )
    commit_interval: Duration = Field(
        timedelta(milliseconds=200),
        description="How often finished offsets are committed (bounds duplicates after a kill).",
    )
    dedupe_window: int = Field(
        100_000, ge=0, description="Recent event ids remembered to skip a re-produced event."
    )


class SchedulerSettings(_Group):
    metrics_port: int = Field(9465, ge=0, le=65535, description="Prometheus port (0: off).")


class RecorderSettings(_Group):
    """The recorder role: the records topic into Cassandra, in large batches."""

    metrics_port: int = Field(
        9466, ge=0, le=65535, description="Prometheus, /healthz and /readyz port (0: off)."
    )
    consumer_group: str = Field("hookstream-recorder", description="The recorders' consumer group.")
    batch_max: int = Field(
        2000, ge=1, description="Records taken into one Cassandra write at most."
    )
    batch_wait: Duration = Field(
        timedelta(milliseconds=50),
        description="How long a batch waits to fill before it is written.",
    )
    write_concurrency: int = Field(
        32, ge=1, description="Cassandra requests in flight per recorder while writing a batch."
    )
    nice: int = Field(
        10,
        ge=0,
        le=19,
        description="Niceness of the recorder's threads (0: as started): where roles share "
        "cores, deliveries get the CPU first and the log catches up.",
    )
    # Requests across partition keys (app.store.batches): fewer, larger requests are most of
    # the recorder's saving; the server warns above its thresholds, refuses above 50 KiB.
    request_keys: int = Field(
        32,
        ge=1,
        description="Partition keys per Cassandra request at most (raise the server's "
        "unlogged_batch_across_partitions_warn_threshold to match).",
    )
    request_bytes: int = Field(
        24_000,
        ge=1_000,
        le=40_000,
        description="Estimated bytes per Cassandra request across keys at most (raise the "
        "server's batch_size_warn_threshold to match; it refuses above 50 KiB).",
    )
    retry_backoff_max: Duration = Field(
        timedelta(seconds=10),
        description="Longest pause between retries of a batch Cassandra refused.",
    )
    retention: Duration = Field(
        timedelta(days=3),
        description="Retention of the records topic (outlast a Cassandra outage).",
    )


class LifecycleSettings(_Group):
    """A webhook's life: secret rotation, endpoint health and auto-disable."""

    secret_grace: Duration = Field(
        timedelta(hours=24),
        description="How long a rotated-out secret keeps signing beside the new one.",
    )
    max_previous_secrets: int = Field(
        3, ge=0, le=10, description="Rotated-out secrets kept signing at most (the newest)."
    )
    disable_after: Duration = Field(
        timedelta(days=5),
        description="Disable a webhook whose attempts have all failed for this long (0: never).",
    )
    disable_on_gone: bool = Field(
        True, description="Disable a webhook at once when its endpoint answers 410 Gone."
    )
    health_window: Duration = Field(
        timedelta(hours=1),
        gt=timedelta(0),
        description="A webhook's success rate counts attempts of this window and the one before.",
    )


class ReplaySettings(_Group):
    """The replayer role: replays and backfills re-read from the events topic (app.replay)."""

    metrics_port: int = Field(
        9467, ge=0, le=65535, description="Prometheus, /healthz and /readyz port (0: off)."
    )
    consumer_group: str = Field(
        "hookstream-replayer", description="The replayers' consumer group (of the jobs topic)."
    )
    rate: float = Field(
        200.0,
        gt=0,
        description="Attempts a replay enqueues per second at most, so live deliveries keep "
        "their latency.",
    )
    batch: int = Field(
        500, ge=1, le=10000, description="Events read per batch (progress and cancel checks)."
    )


class StackSettings(_Group):
    """The local stack of real servers (``hookstream stack up``): ports and where files live."""

    home: Path = Field(
        Path.home() / ".cache" / "hookstream",
        description="Jar cache and run directories of the local stack.",
    )
    java: str = Field(
        "/usr/lib/jvm/java-17-openjdk-amd64/bin/java", description="The Java 17 binary."
    )
    kafka_version: str = Field("4.1.1", description="Apache Kafka release from Maven Central.")
    cassandra_version: str = Field("5.0.8", description="Apache Cassandra release.")
    kafka_controller_port: int = Field(9093, ge=1, le=65535, description="KRaft controller port.")
    cassandra_storage_port: int = Field(7000, ge=1, le=65535, description="Cassandra gossip port.")
    cassandra_heap: str = Field("1g", description="Cassandra -Xmx.")
    kafka_heap: str = Field("512m", description="Kafka -Xmx.")


class SecretsSettings(_Group):
    """The key ring that seals webhook secrets at rest (``app.keyring``)."""

    keys: Annotated[tuple[SecretStr, ...], NoDecode] = Field(
        default=(),
        description="Base64 32-byte AES keys, newest first, comma-separated: new secrets are "
        "sealed with the first, any opens what it sealed. None: secrets stay plain (warned).",
    )
    keys_file: Path | None = Field(
        None, description="A file with the keys, one per line, newest first; wins if set."
    )

    @field_validator("keys", mode="before")
    @classmethod
    def _split(cls, value: object) -> object:
        return _split_csv(value)

    @field_validator("keys")
    @classmethod
    def _valid_keys(cls, value: tuple[SecretStr, ...]) -> tuple[SecretStr, ...]:
        from app.keyring import decode_key

        for key in value:
            decode_key(key.get_secret_value())  # raises ValueError, named by load_settings
        return value

    @model_validator(mode="after")
    def _read_keys_file(self) -> SecretsSettings:
        if self.keys_file is None:
            return self
        try:
            lines = Path(self.keys_file).read_text().split()
        except OSError as exc:
            raise ValueError(f"cannot read {self.keys_file}: {exc.strerror}") from None
        keys = tuple(SecretStr(line) for line in lines)
        for key in keys:
            from app.keyring import decode_key

            decode_key(key.get_secret_value())
        object.__setattr__(self, "keys", keys)  # frozen; still inside validation
        return self


class LogSettings(_Group):
    format: Literal["auto", "json", "text"] = Field(
        "auto", description="json in containers, text on a terminal (auto decides by tty)."
    )
    level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = Field("INFO", description="Log level.")


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="HOOKSTREAM_",
        env_nested_delimiter="__",
        frozen=True,
        extra="ignore",
    )

    retry_schedule: Annotated[tuple[timedelta, ...], NoDecode] = Field(
        default=tuple(parse_duration(d) for d in ("0", "30s", "5m", "30m", "2h")),
        description="Delay before each attempt; its length is the number of attempts.",
    )
    allowed_networks: Annotated[
        tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...], NoDecode
    ] = Field(
        default=(),
        description="Networks deliveries may reach although the SSRF guard refuses them "
        "(e.g. 127.0.0.0/8 for local development).",
    )
    api_keys: Annotated[tuple[SecretStr, ...], NoDecode] = Field(
        default=(), description="API keys accepted besides those created with `apikey create`."
    )
    event_types: Annotated[tuple[str, ...], NoDecode] = Field(
        default=SEED_EVENT_TYPES, description="The event type catalogue (webhook.test is added)."
    )
    kafka: KafkaSettings = Field(default_factory=KafkaSettings)  # type: ignore[arg-type]
    cassandra: CassandraSettings = Field(default_factory=CassandraSettings)  # type: ignore[arg-type]
    delivery: DeliverySettings = Field(default_factory=DeliverySettings)  # type: ignore[arg-type]
    api: ApiSettings = Field(default_factory=ApiSettings)  # type: ignore[arg-type]
    worker: WorkerSettings = Field(default_factory=WorkerSettings)  # type: ignore[arg-type]
    scheduler: SchedulerSettings = Field(default_factory=SchedulerSettings)  # type: ignore[arg-type]
    recorder: RecorderSettings = Field(default_factory=RecorderSettings)  # type: ignore[arg-type]
    replay: ReplaySettings = Field(default_factory=ReplaySettings)  # type: ignore[arg-type]
    lifecycle: LifecycleSettings = Field(default_factory=LifecycleSettings)  # type: ignore[arg-type]
    stack: StackSettings = Field(default_factory=StackSettings)  # type: ignore[arg-type]
    secrets: SecretsSettings = Field(default_factory=SecretsSettings)  # type: ignore[arg-type]
    log: LogSettings = Field(default_factory=LogSettings)  # type: ignore[arg-type]

    @field_validator("retry_schedule", mode="before")
    @classmethod
    def _schedule(cls, value: object) -> object:
        if isinstance(value, str):
            value = [parse_duration(part) for part in value.split(",") if part.strip()]
        return value

    @field_validator("retry_schedule")
    @classmethod
    def _schedule_shape(cls, value: tuple[timedelta, ...]) -> tuple[timedelta, ...]:
        if not value:
            raise ValueError("needs at least one attempt, e.g. 0,30s,5m,30m,2h")
        if value[0] != timedelta(0):
            raise ValueError("the first attempt is immediate: the schedule starts with 0")
        if any(later <= timedelta(0) for later in value[1:]):
            raise ValueError("every retry delay after the first attempt must be positive")
        return value

    _split_keys = field_validator("api_keys", mode="before")(_split_csv)
    _split_types = field_validator("event_types", mode="before")(_split_csv)

    @field_validator("allowed_networks", mode="before")
    @classmethod
    def _networks(cls, value: object) -> object:
        value = _split_csv(value)
        if isinstance(value, list | tuple):
            return tuple(ipaddress.ip_network(str(v), strict=False) for v in value)
        return value

    @property
    def max_attempts(self) -> int:
        return len(self.retry_schedule)


def load_settings() -> Settings:
    """Build the settings once; an invalid value raises ``SettingsError`` naming the variable."""
    from pydantic import ValidationError

    from app.errors import SettingsError

    try:
        return Settings()
    except ValidationError as exc:
        problems = []
        for error in exc.errors():
            path = "__".join(str(p) for p in error["loc"]).upper()
            problems.append(f"HOOKSTREAM_{path}: {error['msg']}")
        raise SettingsError("invalid settings:\n  " + "\n  ".join(problems)) from None


def settings_table() -> str:
    """The README's settings table, generated from the model (a test keeps them equal)."""
    rows = ["| variable | default | what it does |", "|---|---|---|"]

    def walk(model: type[BaseModel], prefix: str) -> None:
        for name, info in model.model_fields.items():
            annotation = info.annotation
            if isinstance(annotation, type) and issubclass(annotation, _Group):
                walk(annotation, f"{prefix}{name.upper()}__")
                continue
            default = info.get_default(call_default_factory=True)
            rows.append(
                f"| `{prefix}{name.upper()}` | `{_show_default(default)}` | {info.description} |"
            )

    walk(Settings, "HOOKSTREAM_")
    return "\n".join(rows)


def _show_default(value: object) -> str:
    if isinstance(value, timedelta):
        return format_duration(value) if value else "0"
    if isinstance(value, tuple | list):
        return ",".join(_show_default(v) for v in value)
    if isinstance(value, Path) and str(value).startswith(str(Path.home())):
        return "~" + str(value)[len(str(Path.home())) :]
    return str(value)
