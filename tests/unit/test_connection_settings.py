"""The connection settings mapped to each client library, once (app.kafka, app.store.session)."""

from __future__ import annotations

import ssl
from pathlib import Path

import faust
import pytest
from pydantic import SecretStr

from app.kafka import aiokafka_config, client_config, faust_credentials, producer_base_config
from app.localstack.secure import new_ca
from app.settings import Settings
from app.store.session import security_options


@pytest.fixture
def ca_file(tmp_path: Path) -> Path:
    path = tmp_path / "ca.pem"
    path.write_bytes(new_ca("test CA").cert_pem)
    return path


def secured(ca_file: Path, **kafka: object) -> Settings:
    base = Settings()
    return base.model_copy(
        update={
            "kafka": base.kafka.model_copy(
                update={
                    "security_protocol": "SASL_SSL",
                    "sasl_mechanism": "SCRAM-SHA-256",
                    "sasl_username": "svc",
                    "sasl_password": SecretStr("s3cret-pw"),
                    "ssl_ca_file": ca_file,
                    **kafka,
                }
            ),
            "cassandra": base.cassandra.model_copy(
                update={
                    "username": "svc",
                    "password": SecretStr("c-pw"),
                    "ssl": True,
                    "ssl_ca_file": ca_file,
                }
            ),
        }
    )


def test_plaintext_by_default_with_nothing_else() -> None:
    settings = Settings()
    assert client_config(settings) == {
        "bootstrap.servers": settings.kafka.bootstrap_servers,
        "security.protocol": "PLAINTEXT",
    }
    assert aiokafka_config(settings)["security_protocol"] == "PLAINTEXT"
    assert "ssl_context" not in aiokafka_config(settings)
    assert faust_credentials(settings) is None
    assert security_options(settings) == {}


def test_sasl_ssl_reaches_librdkafka(ca_file: Path) -> None:
    config = client_config(secured(ca_file))
    assert config["security.protocol"] == "SASL_SSL"
    assert config["sasl.mechanism"] == "SCRAM-SHA-256"
    assert (config["sasl.username"], config["sasl.password"]) == ("svc", "s3cret-pw")
    assert config["ssl.ca.location"] == str(ca_file)
    assert config["ssl.endpoint.identification.algorithm"] == "https"
    unchecked = client_config(secured(ca_file, ssl_check_hostname=False))
    assert unchecked["ssl.endpoint.identification.algorithm"] == "none"


def test_sasl_ssl_reaches_aiokafka_and_faust(ca_file: Path) -> None:
    settings = secured(ca_file)
    config = aiokafka_config(settings)
    assert config["security_protocol"] == "SASL_SSL"
    assert config["sasl_mechanism"] == "SCRAM-SHA-256"
    assert config["sasl_plain_password"] == "s3cret-pw"
    context = config["ssl_context"]
    assert isinstance(context, ssl.SSLContext)
    assert context.check_hostname and context.verify_mode == ssl.CERT_REQUIRED
    credentials = faust_credentials(settings)
    assert isinstance(credentials, faust.SASLCredentials)
    assert credentials.protocol.value == "SASL_SSL"
    assert credentials.mechanism.value == "SCRAM-SHA-256"
    assert "s3cret-pw" not in repr(credentials)


def test_tls_only_gives_faust_ssl_credentials(ca_file: Path) -> None:
    settings = secured(ca_file, security_protocol="SSL")
    assert "sasl.mechanism" not in client_config(settings)
    assert isinstance(faust_credentials(settings), faust.SSLCredentials)


def test_cassandra_gets_a_login_and_a_checked_tls_context(ca_file: Path) -> None:
    options = security_options(secured(ca_file))
    assert options["auth_provider"].username == "svc"
    assert options["ssl_context"].check_hostname


def test_passwords_come_from_mounted_files_and_stay_out_of_repr(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "kafka").write_text("from-file\n")
    (tmp_path / "cassandra").write_text("c-file")
    monkeypatch.setenv("HOOKSTREAM_KAFKA__SASL_PASSWORD", "from-env")
    monkeypatch.setenv("HOOKSTREAM_KAFKA__SASL_PASSWORD_FILE", str(tmp_path / "kafka"))
    monkeypatch.setenv("HOOKSTREAM_CASSANDRA__PASSWORD_FILE", str(tmp_path / "cassandra"))
    settings = Settings()
    assert settings.kafka.sasl_password is not None
    assert settings.kafka.sasl_password.get_secret_value() == "from-file"  # the file wins
    assert settings.cassandra.password is not None
    assert settings.cassandra.password.get_secret_value() == "c-file"
    assert "from-file" not in repr(settings) and "c-file" not in repr(settings)


def test_an_unreadable_password_file_names_the_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    from app.errors import SettingsError
    from app.settings import load_settings

    monkeypatch.setenv("HOOKSTREAM_CASSANDRA__PASSWORD_FILE", "/nonexistent/password")
    with pytest.raises(SettingsError, match=r"HOOKSTREAM_CASSANDRA.*cannot read /nonexistent"):
        load_settings()


@pytest.mark.parametrize(
    ("linger", "ms"), [("5ms", 5.0), ("0", 0.0), ("20ms", 20.0), ("1s", 1000.0)]
)
def test_the_producers_linger_is_the_setting(linger: str, ms: float) -> None:
    # Produce batching is the latency/throughput knob (README, Scaling): it must reach librdkafka.
    settings = Settings.model_validate({"kafka": {"linger": linger}})
    config = producer_base_config(settings)
    assert config["linger.ms"] == ms
    assert (config["acks"], config["enable.idempotence"]) == ("all", True)


def test_the_default_linger_is_five_ms() -> None:
    assert producer_base_config(Settings())["linger.ms"] == 5.0
