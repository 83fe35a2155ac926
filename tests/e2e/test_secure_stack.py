"""Production connectivity against real secured servers: Kafka with only a SASL_SSL listener
(SCRAM-SHA-512 users) and Cassandra with PasswordAuthenticator and mandatory client TLS, both
on certificates made at test time (``app.localstack.secure``).

The whole path runs through them with real role processes — API → Kafka → worker → receiver →
records → recorder → Cassandra → API — and a wrong password or an untrusted CA stops a role
within seconds with a message naming the setting, not a hang or a traceback.

Ports 23092/23093 (Kafka) and 23042/23000 (Cassandra), apart from every other stack and below
Linux's ephemeral range (32768-60999), where any outgoing connection may hold a port: one CI
run found 49092 busy when the stack started, and nothing of a stack listening there.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import orjson
import pytest
from confluent_kafka import KafkaException, Producer
from confluent_kafka.admin import AdminClient
from pydantic import SecretStr

from app.api.publish import publish_webhook
from app.kafka import AsyncProducer
from app.keyring import PREFIX, decode_key, key_id, new_key
from app.localstack.layout import on_ports
from app.localstack.secure import new_ca
from app.localstack.testing import ensure_stack
from app.settings import SecretsSettings, Settings
from app.store import Store
from app.store.session import connect
from app.topics import Topics
from tests.support import (
    Receiver,
    Role,
    api_client,
    api_ready,
    create_webhook,
    event,
    eventually,
    pipeline_settings,
    prepare,
    produce_events,
    read_topic,
)

pytestmark = [pytest.mark.e2e, pytest.mark.integration]

PORTS = {"kafka": 23092, "controller": 23093, "cassandra": 23042, "storage": 23000}
# A refused login or handshake must end a role well inside this (it is reported at once; an
# unreachable broker would only be reported after app.connectivity's 15 s).
REFUSAL_EXIT_S = 30


@pytest.fixture(scope="module")
def secure_settings(request: pytest.FixtureRequest) -> Settings:
    """Client settings of the secure stack (started here, or reused when it already runs)."""
    base = on_ports(Settings(), **PORTS)
    stack = ensure_stack(base, request.addfinalizer, secure=True)
    return stack.settings


@pytest.fixture(scope="module")
def settings(secure_settings: Settings) -> Settings:
    """The pipeline's settings: the secure servers, and a key ring sealing webhook secrets."""
    settings = pipeline_settings(
        secure_settings,
        uuid.uuid4().hex[:10],
        secrets=SecretsSettings(keys=(SecretStr(new_key()),)),
    )
    prepare(settings)  # migrate over TLS with a password, topics over SASL_SSL
    return settings


@pytest.fixture(scope="module")
def rogue_ca(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A CA that signed nothing the servers present."""
    path = tmp_path_factory.mktemp("rogue") / "ca.pem"
    path.write_bytes(new_ca("Not the stack's CA").cert_pem)
    return path


@pytest.fixture
async def pipeline(settings: Settings) -> AsyncIterator[Receiver]:
    receiver = Receiver()
    await receiver.start()
    roles = [Role(name, settings).start() for name in ("api", "worker", "scheduler", "recorder")]
    try:
        yield receiver
    finally:
        for role in roles:
            await role.astop()
        await receiver.stop()


def test_the_servers_refuse_plaintext_clients(secure_settings: Settings) -> None:
    """The secured servers really are secured: without SASL_SSL no metadata, without
    credentials and TLS no CQL session (else the tests below would prove nothing)."""
    from cassandra.cluster import Cluster, NoHostAvailable

    admin = AdminClient(
        {"bootstrap.servers": secure_settings.kafka.bootstrap_servers, "log_level": 0}
    )
    with pytest.raises(KafkaException, match=r"(?i)transport|timed out"):
        admin.list_topics(timeout=3)
    cluster = Cluster(["127.0.0.1"], port=PORTS["cassandra"], protocol_version=5)
    try:
        with pytest.raises(NoHostAvailable):
            cluster.connect()
    finally:
        cluster.shutdown()


async def test_an_event_is_delivered_and_logged_through_the_secured_servers(
    settings: Settings, pipeline: Receiver
) -> None:
    receiver = pipeline
    async with api_client(settings) as api:
        await eventually(lambda: api_ready(api), timeout=90, what="the API to be ready")
        created = await api.post(
            "/v1/webhooks",
            json={"url": receiver.url("/secure"), "events": ["user.created"], "active": True},
        )
        assert created.status_code == 201, created.text
        webhook = created.json()

        sent = event("user.created", name="Secure Sam")
        produce_events(settings, [sent])  # the test's own producer: client_config, SASL_SSL
        # Matched by the Faust worker (aiokafka over SASL_SSL), delivered, recorded.
        await eventually(lambda: receiver.at("/secure"), timeout=60, what="the delivery")
        got = receiver.at("/secure")[0]
        assert got.body == orjson.dumps(sent)
        signature = hmac.new(webhook["secret"].encode(), got.body, hashlib.sha256).hexdigest()
        assert got.headers["X-Webhook-Signature"] == signature

        async def logged() -> list[dict[str, object]]:
            response = await api.get(f"/v1/webhooks/{webhook['id']}/deliveries")
            assert response.status_code == 200, response.text
            return [d for d in response.json()["deliveries"] if d["status"] == "success"]

        # Written by the recorder (confluent-kafka over SASL_SSL) to Cassandra (password, TLS).
        deliveries = await eventually(logged, timeout=30, what="the delivery in the log")
        assert deliveries[0]["event_id"] == sent["id"]
        assert deliveries[0]["attempts"] == 1

        # At rest the secret is sealed: neither the row nor the topic record holds it, yet the
        # worker signed with it (above) and the API reads it back.
        row = _raw_row(settings, webhook["id"])
        assert row["secret"].startswith(PREFIX), row
        assert webhook["secret"] not in str(row)
        records = [m for m in read_topic(settings, Topics.from_settings(settings).webhooks)]
        mine = [m.value() for m in records if m.key() == webhook["id"].encode()]
        assert mine, "the webhook's record on the compacted topic"
        assert all(webhook["secret"].encode() not in value for value in mine)
        assert all(PREFIX.encode() in value for value in mine)
        secret = await api.get(f"/v1/webhooks/{webhook['id']}/secret")
        assert secret.json()["secret"] == webhook["secret"]


def _raw_row(settings: Settings, webhook_id: str) -> dict[str, object]:
    """The webhook's row as Cassandra holds it (the driver, no repository in between)."""
    session = connect(settings)
    try:
        row: dict[str, object] = session.execute(
            f"SELECT secret, previous_secrets FROM {settings.cassandra.keyspace}.webhooks "
            "WHERE id = %s",
            (webhook_id,),
        ).one()
        return row
    finally:
        session.cluster.shutdown()


async def test_migrate_seals_plain_secrets_from_before_and_reseals_to_a_new_key(
    settings: Settings,
) -> None:
    """Rows and topic records written without a key are sealed by ``hookstream migrate``;
    after a new key joins the ring (newest first), the next migrate re-seals to it."""
    plain = settings.model_copy(update={"secrets": SecretsSettings()})
    topics = Topics.from_settings(settings)
    store = await Store.connect(plain)
    producer = AsyncProducer(plain)
    try:
        before = await create_webhook(store, "https://example.com/plain")
        assert await publish_webhook(producer, topics, before)  # as an older API published it
    finally:
        await asyncio.to_thread(producer.close)
        await store.close()
    assert _raw_row(settings, before.id)["secret"] == before.secret  # plain, as before

    migrate_role = Role("migrate", settings).start()
    assert await migrate_role.exited(60) == 0, migrate_role.log()
    first = settings.secrets.keys[0].get_secret_value()
    sealed = str(_raw_row(settings, before.id)["secret"])
    assert sealed.startswith(f"{PREFIX}{key_id(decode_key(first))}:")
    latest = [m for m in read_topic(settings, topics.webhooks) if m.key() == before.id.encode()]
    assert before.secret.encode() not in latest[-1].value()

    newer = new_key()
    rotated = settings.model_copy(
        update={"secrets": SecretsSettings(keys=(SecretStr(newer), SecretStr(first)))}
    )
    migrate_role = Role("migrate", rotated).start()
    assert await migrate_role.exited(60) == 0, migrate_role.log()
    assert "re-sealed with the newest key" in migrate_role.log()
    resealed = str(_raw_row(settings, before.id)["secret"])
    assert resealed.startswith(f"{PREFIX}{key_id(decode_key(newer))}:")
    store = await Store.connect(rotated)
    try:
        got = await store.webhooks.get(before.id)
    finally:
        await store.close()
    assert got is not None and got.secret == before.secret


def _kafka(settings: Settings, **update: object) -> Settings:
    return settings.model_copy(update={"kafka": settings.kafka.model_copy(update=update)})


def _cassandra(settings: Settings, **update: object) -> Settings:
    return settings.model_copy(update={"cassandra": settings.cassandra.model_copy(update=update)})


BROKEN = {
    "kafka password": (
        "worker",
        lambda s, ca: _kafka(s, sasl_password=SecretStr("wrong-password")),
        "HOOKSTREAM_KAFKA__SASL_PASSWORD",
    ),
    "kafka CA": (
        "scheduler",
        lambda s, ca: _kafka(s, ssl_ca_file=ca),
        "HOOKSTREAM_KAFKA__SSL_CA_FILE",
    ),
    "cassandra password": (
        "api",
        lambda s, ca: _cassandra(s, password=SecretStr("wrong-password")),
        "HOOKSTREAM_CASSANDRA__PASSWORD",
    ),
    "cassandra CA": (
        "recorder",
        lambda s, ca: _cassandra(s, ssl_ca_file=ca),
        "HOOKSTREAM_CASSANDRA__SSL_CA_FILE",
    ),
}


@pytest.mark.parametrize("case", list(BROKEN))
async def test_a_refused_login_or_certificate_stops_a_role_naming_the_setting(
    settings: Settings, rogue_ca: Path, case: str
) -> None:
    role_name, breaks, setting = BROKEN[case]
    role = Role(role_name, breaks(settings, rogue_ca)).start()
    try:
        code = await role.exited(REFUSAL_EXIT_S)
    finally:
        role.stop(5)
    log = role.log()
    assert code != 0, log
    assert setting in log, log
    assert "Traceback" not in log, log
    # The secret itself never reaches the log.
    assert settings.kafka.sasl_password is not None
    assert settings.kafka.sasl_password.get_secret_value() not in log
    assert "wrong-password" not in log


def test_the_producer_of_the_cli_speaks_sasl_ssl(settings: Settings) -> None:
    """``hookstream produce``'s client and the test helper both go through client_config."""
    from app.kafka import client_config

    producer = Producer({**client_config(settings), "acks": "all"})
    producer.produce(settings.kafka.events_topic, b"{}")
    assert producer.flush(15) == 0
