"""Kafka plumbing shared by the API, the CLI and ``migrate``: topic creation and an asyncio
producer over confluent-kafka whose ``send`` returns only once Kafka acknowledged the message.

(The worker, the API, the replayer and ``reseal`` produce through it; the scheduler has its own
confluent-kafka loop.)

Connection security lives here once per client library: ``client_config`` for every
confluent-kafka client, ``aiokafka_config`` and ``faust_credentials`` for the worker's aiokafka
and Faust clients. ``CheckedAdmin`` (and ``metadata``) turns a refused SASL login or TLS handshake,
which librdkafka would retry forever, into an error naming the setting.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
import threading
import time
from collections.abc import Sequence
from typing import Any

from confluent_kafka import KafkaError, KafkaException, Producer
from confluent_kafka.admin import AdminClient, NewTopic

from app.errors import HandOffError, HookstreamError
from app.settings import Settings
from app.topics import Topics

log = logging.getLogger(__name__)

Headers = Sequence[tuple[str, bytes]]


def topic_specs(settings: Settings) -> list[NewTopic]:
    """Every topic with explicit partitions and configs (never broker auto-creation)."""
    topics = Topics.from_settings(settings)
    n, rf = settings.kafka.partitions, settings.kafka.replication_factor
    retention_ms = str(int(settings.cassandra.retention.total_seconds() * 1000))
    records_ms = str(int(settings.recorder.retention.total_seconds() * 1000))
    specs = [
        NewTopic(topics.events, n, rf),
        # Compacted: the latest state of every account and webhook, tombstones on delete.
        NewTopic(topics.accounts, 1, rf, config={"cleanup.policy": "compact"}),
        NewTopic(topics.webhooks, 1, rf, config={"cleanup.policy": "compact"}),
        NewTopic(topics.deliveries, n, rf),
        NewTopic(topics.redeliver, n, rf),
        NewTopic(topics.dead, n, rf, config={"retention.ms": retention_ms}),
        # The record log: the recorder writes it to Cassandra within seconds; the retention
        # only has to outlast a long Cassandra outage (the recorder catches up from here).
        NewTopic(topics.records, n, rf, config={"retention.ms": records_ms}),
        # Operator events (app.lifecycle), kept as long as the delivery log they talk about.
        NewTopic(topics.lifecycle, n, rf, config={"retention.ms": retention_ms}),
        # Replay jobs: a message only has to outlive its job (the job row is the truth).
        NewTopic(topics.replays, n, rf, config={"retention.ms": records_ms}),
    ]
    for delay, name in topics.retries.items():
        # A retry message must outlive its delay by a wide margin.
        keep_ms = max(int(delay.total_seconds() * 1000) * 4, 7 * 24 * 3600 * 1000)
        specs.append(NewTopic(name, n, rf, config={"retention.ms": str(keep_ms)}))
    return specs


def create_topics(settings: Settings, timeout: float = 30.0) -> list[str]:
    """Create the missing topics; idempotent. Returns the names it created."""
    checked = CheckedAdmin(settings)
    admin = checked.admin
    existing = set(checked.metadata(timeout=timeout).topics)
    wanted = [spec for spec in topic_specs(settings) if spec.topic not in existing]
    if not wanted:
        return []
    created = []
    for name, future in admin.create_topics(wanted, operation_timeout=timeout).items():
        try:
            future.result(timeout)
            created.append(name)
        except KafkaException as exc:
            if exc.args[0].code() != KafkaError.TOPIC_ALREADY_EXISTS:
                raise
    return created


def wait_for_topics(settings: Settings, names: list[str], timeout: float = 60.0) -> None:
    """Block until the broker's metadata lists every topic in ``names`` with partitions.

    A consumer group that joins before the broker publishes a just-created topic is assigned
    nothing and stays idle until its next metadata refresh (minutes). So roles wait here, at
    start-up, for what ``migrate`` created. Raises HookstreamError naming the missing topics.
    """
    checked = CheckedAdmin(settings)  # one client (one login) for the whole wait
    deadline = time.monotonic() + timeout
    missing = set(names)
    while True:
        topics = checked.metadata(timeout=10).topics
        missing = {n for n in names if n not in topics or not topics[n].partitions}
        if not missing:
            return
        if time.monotonic() > deadline:
            raise HookstreamError(
                f"Kafka topics missing: {', '.join(sorted(missing))} — run `hookstream migrate`"
            )
        time.sleep(0.5)


def client_config(settings: Settings) -> dict[str, Any]:
    """What every confluent-kafka client of Hookstream's shares: bootstrap servers and the
    connection security (``security.protocol``, SASL, TLS). The one place that maps those
    settings to librdkafka; every Producer, Consumer and AdminClient starts from it."""
    cfg = settings.kafka
    config: dict[str, Any] = {
        "bootstrap.servers": cfg.bootstrap_servers,
        "security.protocol": cfg.security_protocol,
    }
    if cfg.security_protocol.startswith("SASL_"):
        config["sasl.mechanism"] = cfg.sasl_mechanism
        if cfg.sasl_username is not None:
            config["sasl.username"] = cfg.sasl_username
        if cfg.sasl_password is not None:
            config["sasl.password"] = cfg.sasl_password.get_secret_value()
    if cfg.security_protocol in {"SSL", "SASL_SSL"}:
        if cfg.ssl_ca_file is not None:
            config["ssl.ca.location"] = str(cfg.ssl_ca_file)
        if cfg.ssl_cert_file is not None:
            config["ssl.certificate.location"] = str(cfg.ssl_cert_file)
        if cfg.ssl_key_file is not None:
            config["ssl.key.location"] = str(cfg.ssl_key_file)
        if cfg.ssl_key_password is not None:
            config["ssl.key.password"] = cfg.ssl_key_password.get_secret_value()
        config["ssl.endpoint.identification.algorithm"] = (
            "https" if cfg.ssl_check_hostname else "none"
        )
    return config


def ssl_context(settings: Settings) -> ssl.SSLContext | None:
    """The TLS context of the aiokafka (Faust) clients; None unless the protocol uses TLS."""
    cfg = settings.kafka
    if cfg.security_protocol not in {"SSL", "SASL_SSL"}:
        return None
    context = ssl.create_default_context(
        cafile=str(cfg.ssl_ca_file) if cfg.ssl_ca_file is not None else None
    )
    context.check_hostname = cfg.ssl_check_hostname
    if cfg.ssl_cert_file is not None:
        context.load_cert_chain(
            str(cfg.ssl_cert_file),
            str(cfg.ssl_key_file) if cfg.ssl_key_file is not None else None,
            cfg.ssl_key_password.get_secret_value() if cfg.ssl_key_password else None,
        )
    return context


def aiokafka_config(settings: Settings) -> dict[str, Any]:
    """The same connection settings as ``client_config``, as aiokafka keyword arguments."""
    cfg = settings.kafka
    config: dict[str, Any] = {
        "bootstrap_servers": cfg.bootstrap_servers,
        "security_protocol": cfg.security_protocol,
    }
    if (context := ssl_context(settings)) is not None:
        config["ssl_context"] = context
    if cfg.security_protocol.startswith("SASL_"):
        config["sasl_mechanism"] = cfg.sasl_mechanism
        config["sasl_plain_username"] = cfg.sasl_username
        config["sasl_plain_password"] = (
            cfg.sasl_password.get_secret_value() if cfg.sasl_password is not None else None
        )
    return config


def faust_credentials(settings: Settings) -> Any:
    """``broker_credentials`` of the Faust app: Faust turns these into the same aiokafka
    arguments as ``aiokafka_config`` (None: plaintext)."""
    import faust

    cfg = settings.kafka
    context = ssl_context(settings)
    if cfg.security_protocol.startswith("SASL_"):
        return faust.SASLCredentials(
            username=cfg.sasl_username,
            password=cfg.sasl_password.get_secret_value() if cfg.sasl_password else None,
            ssl_context=context,
            mechanism=cfg.sasl_mechanism,
        )
    if context is not None:
        return faust.SSLCredentials(context)
    return None


def _setting_at_fault(settings: Settings, err: KafkaError) -> str | None:
    """Which settings a librdkafka connection error points at, or None for an outage."""
    if err.code() == KafkaError._AUTHENTICATION:
        return (
            "HOOKSTREAM_KAFKA__SASL_USERNAME / HOOKSTREAM_KAFKA__SASL_PASSWORD"
            f" (mechanism {settings.kafka.sasl_mechanism})"
        )
    if err.code() == KafkaError._SSL or "certificate verify failed" in err.str():
        return "HOOKSTREAM_KAFKA__SSL_CA_FILE (or HOOKSTREAM_KAFKA__SSL_CHECK_HOSTNAME)"
    return None


def admin_client(settings: Settings, **config: Any) -> AdminClient:
    """An AdminClient on ``client_config``; use ``metadata`` with it to fail clearly."""
    return AdminClient({**client_config(settings), **config})


class CheckedAdmin:
    """An AdminClient on ``client_config`` whose ``metadata`` fails fast, naming the setting
    at fault, when the brokers refuse our credentials or certificate.

    librdkafka retries a refused SASL login or TLS handshake forever, so without this a role
    would hang at start-up; here the first such error ends the wait.
    """

    def __init__(self, settings: Settings, **config: Any) -> None:
        self._settings = settings
        self._refused: list[tuple[str, str]] = []
        self.admin = admin_client(settings, error_cb=self._on_error, log_level=0, **config)

    def _on_error(self, err: KafkaError) -> None:
        if (setting := _setting_at_fault(self._settings, err)) is not None:
            self._refused.append((err.str(), setting))

    def metadata(self, topic: str | None = None, timeout: float = 15.0) -> Any:
        """The cluster's metadata (``ClusterMetadata``), or a ``HookstreamError``."""
        servers = self._settings.kafka.bootstrap_servers
        deadline = time.monotonic() + timeout
        last = "no answer"
        while True:
            wait = min(2.0, max(deadline - time.monotonic(), 0.1))
            try:
                return self.admin.list_topics(topic, timeout=wait)
            except KafkaException as exc:
                last = str(exc.args[0].str() if exc.args else exc)
            self.admin.poll(0)  # deliver pending error callbacks
            if self._refused:
                error, setting = self._refused[-1]
                raise HookstreamError(
                    f"Kafka at {servers} refused the connection: {error} — check {setting}"
                )
            if time.monotonic() > deadline:
                raise HookstreamError(
                    f"Kafka at {servers} did not answer in {timeout:.0f} s ({last}); check "
                    "HOOKSTREAM_KAFKA__BOOTSTRAP_SERVERS and HOOKSTREAM_KAFKA__SECURITY_PROTOCOL "
                    f"({self._settings.kafka.security_protocol})"
                )


def metadata(settings: Settings, topic: str | None = None, timeout: float = 15.0) -> Any:
    """``CheckedAdmin(settings).metadata(topic, timeout)``: one look, with a client of its own."""
    return CheckedAdmin(settings).metadata(topic, timeout)


def producer_base_config(settings: Settings) -> dict[str, Any]:
    """The librdkafka configuration of every role's ``AsyncProducer`` (before overrides)."""
    return {
        **client_config(settings),
        "enable.idempotence": True,
        "acks": "all",
        "linger.ms": settings.kafka.linger.total_seconds() * 1000,
        "message.timeout.ms": 30000,
        # The Java client's key hashing, as aiokafka (Faust) and the scheduler use: a
        # webhook's messages land on one partition whichever client wrote them.
        "partitioner": "murmur2_random",
    }


class AsyncProducer:
    """confluent-kafka Producer (idempotent, acks=all) with awaitable acknowledgements.

    ``brokers_down`` is True from librdkafka's "all brokers down" report until the next
    acknowledged message: a health signal that does not wait for a message to time out.

    Delivery reports are served **on the event loop**: a timer calls ``poll(0)`` every
    ``BUSY_POLL_S`` while messages are unacknowledged and every ``IDLE_POLL_S`` otherwise (for
    the error callbacks), so each report settles its future directly. A polling thread did
    this before; at a thousand deliveries a second it cost 12 % of the worker's CPU
    (BENCHMARKS.md, session 4), most of it handing every report to the loop across the GIL.
    A report served elsewhere (``close`` from a thread flushes there) is passed to the loop
    thread-safely.
    """

    BUSY_POLL_S = 0.001
    IDLE_POLL_S = 0.1

    def __init__(self, settings: Settings, **config: Any) -> None:
        self.brokers_down = False
        self._loop: asyncio.AbstractEventLoop | None = None
        self._loop_thread: int | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._closed = False
        self._producer = Producer(
            {**producer_base_config(settings), "error_cb": self._on_error, **config}
        )
        # Built on the loop (every role does): serve the error callbacks from now on.
        # Built off it: bound by the first send.
        with contextlib.suppress(RuntimeError):
            self._bind(asyncio.get_running_loop())

    def _bind(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop, self._loop_thread = loop, threading.get_ident()
        # Not ``call_later(0, …)``: uvloop answers that with a plain Handle, which has no
        # ``when()`` for ``send`` to look at (a send before the first serve raised).
        self._timer = loop.call_later(self.BUSY_POLL_S, self._serve)

    def _serve(self) -> None:
        """On the loop: serve what librdkafka has ready (reports, errors), then come back."""
        if self._closed:
            return
        self._producer.poll(0)
        assert self._loop is not None
        busy = len(self._producer) > 0  # queued or awaiting the broker's acknowledgement
        self._timer = self._loop.call_later(
            self.BUSY_POLL_S if busy else self.IDLE_POLL_S, self._serve
        )

    async def send(
        self, topic: str, value: bytes | None, key: bytes | None = None, headers: Headers = ()
    ) -> None:
        """Produce and wait for Kafka's acknowledgement; raises HandOffError if refused."""
        loop = asyncio.get_running_loop()
        if self._loop is not loop:
            if self._timer is not None:
                self._timer.cancel()
            self._bind(loop)
        elif self._timer is not None and self._timer.when() - loop.time() > self.BUSY_POLL_S:
            # Idle until now: serve this message's report at the busy pace, not in 100 ms.
            self._timer.cancel()
            self._timer = loop.call_later(self.BUSY_POLL_S, self._serve)
        done: asyncio.Future[None] = loop.create_future()
        on_loop = self._loop_thread

        def report(err: KafkaError | None, _msg: object) -> None:
            error = None if err is None else HandOffError(f"kafka: {err.str()}")
            if err is None:
                self.brokers_down = False
            if threading.get_ident() == on_loop:
                _settle(done, error)
            else:  # flushed by ``close`` on another thread
                with contextlib.suppress(RuntimeError):  # the loop has closed: nobody waits
                    loop.call_soon_threadsafe(_settle, done, error)

        while True:
            try:
                self._producer.produce(
                    topic, value=value, key=key, headers=list(headers), on_delivery=report
                )
                break
            except BufferError:
                await asyncio.sleep(0.01)  # local queue full: back off until it drains
        await done

    def _on_error(self, err: KafkaError) -> None:
        # librdkafka reconnects by itself; report the outage once, not every reconnect.
        if err.code() == KafkaError._ALL_BROKERS_DOWN and not self.brokers_down:
            self.brokers_down = True
            log.warning("kafka producer: all brokers down; holding until they are back")
        else:
            log.debug("kafka producer: %s", err.str())

    def close(self, timeout: float = 10.0) -> None:
        """Flush (waiting up to ``timeout`` for acknowledgements) and stop serving reports.
        Callable on the loop or from a thread (``asyncio.to_thread(producer.close)``)."""
        self._producer.flush(timeout)
        self._closed = True


def _settle(future: asyncio.Future[None], error: Exception | None) -> None:
    if future.done():
        return
    if error is None:
        future.set_result(None)
    else:
        future.set_exception(error)
