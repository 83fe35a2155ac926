"""The secure test profile of the local stack: Kafka with a SASL_SSL listener (SCRAM users) and
Cassandra with PasswordAuthenticator and client encryption, as production clusters run them.

``LocalStack(settings, secure=True)`` uses it. The material lives in ``<run dir>/tls/``, made once
with the ``cryptography`` package (no keytool): a CA, a server certificate for 127.0.0.1 and
localhost in a PKCS#12 keystore both servers read, and random passwords. The client side is
``client_settings``: the same settings with every security field pointing at that material, so
tests and the stack's own readiness probes connect exactly as Hookstream's roles do.

    Kafka      SASL_SSL on the client port (SCRAM-SHA-512 and -256 users created by
               ``kafka-storage format --add-scram``, also used between brokers); the KRaft
               controller listener stays PLAINTEXT on loopback.
    Cassandra  PasswordAuthenticator; the role ``hookstream`` is created at first readiness
               probe through the default superuser. Client encryption is mandatory.
"""

from __future__ import annotations

import datetime
import ipaddress
import json
import secrets
from dataclasses import dataclass
from pathlib import Path

from app.settings import Settings

USER = "hookstream"
# Cassandra's built-in superuser; only the probe uses it, to create the ``hookstream`` role.
CASSANDRA_SUPERUSER = ("cassandra", "cassandra")
SCRAM_MECHANISMS = ("SCRAM-SHA-512", "SCRAM-SHA-256")


@dataclass(frozen=True, slots=True)
class Certificate:
    """A PEM key and certificate, and the CA that signed it (for tests that need a rogue CA)."""

    key_pem: bytes
    cert_pem: bytes


def new_ca(name: str) -> Certificate:
    """A self-signed CA valid for a year."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import rsa
    from cryptography.x509.oid import NameOID

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=365))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True, key_cert_sign=True, crl_sign=True,
                content_commitment=False, key_encipherment=False, data_encipherment=False,
                key_agreement=False, encipher_only=False, decipher_only=False,
            ),
            critical=True,
        )
        .sign(key, hashes.SHA256())
    )  # fmt: skip
    return Certificate(
        key_pem=key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ),
        cert_pem=cert.public_bytes(serialization.Encoding.PEM),
    )


def server_keystore(ca: Certificate, password: str) -> tuple[bytes, bytes]:
    """(PKCS#12 keystore, PEM certificate) of a server certificate for 127.0.0.1/localhost."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import rsa
    from cryptography.hazmat.primitives.serialization import pkcs12
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    ca_key = serialization.load_pem_private_key(ca.key_pem, password=None)
    ca_cert = x509.load_pem_x509_certificate(ca.cert_pem)
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")]))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=365))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
        .add_extension(
            x509.ExtendedKeyUsage(
                [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]
            ),
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())  # type: ignore[arg-type]
    )
    # PBES2/AES-256 with an HMAC-SHA256 MAC: what Java 17's PKCS12 KeyStore reads.
    encryption = (
        serialization.PrivateFormat.PKCS12.encryption_builder()
        .kdf_rounds(50_000)
        .key_cert_algorithm(pkcs12.PBES.PBESv2SHA256AndAES256CBC)
        .hmac_hash(hashes.SHA256())
        .build(password.encode())
    )
    keystore = pkcs12.serialize_key_and_certificates(b"server", key, cert, [ca_cert], encryption)
    return keystore, cert.public_bytes(serialization.Encoding.PEM)


class SecureProfile:
    """The TLS material and credentials of one secure stack, made on first use."""

    def __init__(self, run_dir: Path) -> None:
        self.dir = run_dir / "tls"
        self.ca_file = self.dir / "ca.pem"
        self.keystore = self.dir / "server.p12"
        self._credentials = self.dir / "credentials.json"

    def password_file(self, what: str) -> Path:
        """``kafka`` or ``cassandra``: the password alone in a file, for the *_FILE settings."""
        return self.dir / f"{what}.password"

    def ensure(self) -> None:
        """Create the CA, the server keystore and the passwords once (idempotent)."""
        if self._credentials.is_file() and self.keystore.is_file() and self.ca_file.is_file():
            if not self.password_file("cassandra").is_file():  # made before these files were
                self._write_password_files(json.loads(self._credentials.read_text()))
            return
        self.dir.mkdir(parents=True, exist_ok=True)
        self.dir.chmod(0o700)
        passwords = {
            "keystore": secrets.token_urlsafe(18),
            "kafka": secrets.token_urlsafe(18),
            "cassandra": secrets.token_urlsafe(18),
        }
        ca = new_ca("Hookstream secure test stack CA")
        keystore, _ = server_keystore(ca, passwords["keystore"])
        self.keystore.write_bytes(keystore)
        self.ca_file.write_bytes(ca.cert_pem)
        self._write_password_files(passwords)
        # Written last: its presence means the rest is complete.
        self._credentials.write_text(json.dumps(passwords))
        self._credentials.chmod(0o600)

    def _write_password_files(self, passwords: dict[str, str]) -> None:
        for what in ("kafka", "cassandra"):
            path = self.password_file(what)
            path.write_text(passwords[what] + "\n")
            path.chmod(0o600)

    def client_env(self) -> dict[str, str]:
        """The HOOKSTREAM_* variables that point any role at this stack (passwords as files,
        so none is printed); the ports come from the stack's own settings."""
        self.ensure()
        return {
            "HOOKSTREAM_KAFKA__SECURITY_PROTOCOL": "SASL_SSL",
            "HOOKSTREAM_KAFKA__SASL_MECHANISM": "SCRAM-SHA-512",
            "HOOKSTREAM_KAFKA__SASL_USERNAME": USER,
            "HOOKSTREAM_KAFKA__SASL_PASSWORD_FILE": str(self.password_file("kafka")),
            "HOOKSTREAM_KAFKA__SSL_CA_FILE": str(self.ca_file),
            "HOOKSTREAM_CASSANDRA__USERNAME": USER,
            "HOOKSTREAM_CASSANDRA__PASSWORD_FILE": str(self.password_file("cassandra")),
            "HOOKSTREAM_CASSANDRA__SSL": "true",
            "HOOKSTREAM_CASSANDRA__SSL_CA_FILE": str(self.ca_file),
        }

    def password(self, what: str) -> str:
        """``keystore``, ``kafka`` or ``cassandra``."""
        self.ensure()
        value: str = json.loads(self._credentials.read_text())[what]
        return value

    def client_settings(self, settings: Settings) -> Settings:
        """``settings`` connecting to this stack as Hookstream's roles would: SASL_SSL with
        SCRAM-SHA-512 to Kafka, password and TLS to Cassandra, certificates checked."""
        from pydantic import SecretStr

        self.ensure()
        return settings.model_copy(
            update={
                "kafka": settings.kafka.model_copy(
                    update={
                        "security_protocol": "SASL_SSL",
                        "sasl_mechanism": "SCRAM-SHA-512",
                        "sasl_username": USER,
                        "sasl_password": SecretStr(self.password("kafka")),
                        "ssl_ca_file": self.ca_file,
                        "ssl_check_hostname": True,
                    }
                ),
                "cassandra": settings.cassandra.model_copy(
                    update={
                        "username": USER,
                        "password": SecretStr(self.password("cassandra")),
                        "ssl": True,
                        "ssl_ca_file": self.ca_file,
                        "ssl_check_hostname": True,
                    }
                ),
            }
        )

    # -- server side ---------------------------------------------------------------------

    def kafka_properties(self, port: int, controller_port: int) -> dict[str, str]:
        """server.properties entries that replace the plaintext listener with SASL_SSL."""
        jaas = (
            "org.apache.kafka.common.security.scram.ScramLoginModule required "
            f'username="{USER}" password="{self.password("kafka")}";'
        )
        props = {
            "listeners": f"SASL_SSL://127.0.0.1:{port},CONTROLLER://127.0.0.1:{controller_port}",
            "advertised.listeners": f"SASL_SSL://127.0.0.1:{port}",
            "listener.security.protocol.map": "SASL_SSL:SASL_SSL,CONTROLLER:PLAINTEXT",
            "inter.broker.listener.name": "SASL_SSL",
            "sasl.enabled.mechanisms": ",".join(SCRAM_MECHANISMS),
            "sasl.mechanism.inter.broker.protocol": "SCRAM-SHA-512",
            "ssl.keystore.type": "PKCS12",
            "ssl.keystore.location": str(self.keystore),
            "ssl.keystore.password": self.password("keystore"),
            "ssl.key.password": self.password("keystore"),
            "ssl.truststore.type": "PEM",
            "ssl.truststore.location": str(self.ca_file),
            "ssl.client.auth": "none",
            "ssl.endpoint.identification.algorithm": "https",
        }
        for mechanism in SCRAM_MECHANISMS:
            props[f"listener.name.sasl_ssl.{mechanism.lower()}.sasl.jaas.config"] = jaas
        return props

    def kafka_format_args(self) -> list[str]:
        """StorageTool arguments that create the SCRAM users in the cluster's first metadata."""
        password = self.password("kafka")
        return [
            arg
            for mechanism in SCRAM_MECHANISMS
            for arg in ("--add-scram", f"{mechanism}=[name={USER},password={password}]")
        ]

    def cassandra_yaml(self) -> dict[str, str]:
        """cassandra.yaml top-level entries (YAML text per key) for password login and TLS."""
        return {
            "authenticator": "PasswordAuthenticator",
            "client_encryption_options": (
                "\n  enabled: true"
                "\n  optional: false"
                f"\n  keystore: {self.keystore}"
                f"\n  keystore_password: {self.password('keystore')}"
                "\n  store_type: PKCS12"
                "\n  require_client_auth: false"
            ),
        }


def override_properties(text: str, overrides: dict[str, str]) -> str:
    """``key=value`` lines of ``text`` replaced by ``overrides``; new keys appended."""
    lines, seen = [], set()
    for line in text.splitlines():
        key = line.partition("=")[0].strip()
        if key in overrides and not line.lstrip().startswith("#"):
            lines.append(f"{key}={overrides[key]}")
            seen.add(key)
        else:
            lines.append(line)
    lines += [f"{k}={v}" for k, v in overrides.items() if k not in seen]
    return "\n".join(lines) + "\n"


def override_yaml(text: str, overrides: dict[str, str]) -> str:
    """Top-level ``key: value`` lines of ``text`` replaced by ``overrides``; new keys appended.
    (Only for flat top-level keys, which is what the template's overridden keys are.)"""
    lines, seen = [], set()
    for line in text.splitlines():
        key, sep, _ = line.partition(":")
        if sep and not line.startswith((" ", "#", "-")) and key in overrides:
            lines.append(f"{key}: {overrides[key]}")
            seen.add(key)
        else:
            lines.append(line)
    lines += [f"{k}: {v}" for k, v in overrides.items() if k not in seen]
    return "\n".join(lines) + "\n"
