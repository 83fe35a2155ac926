"""The secure overlay (deploy/k8s/secure): production connectivity wired from Secrets as files.

Built with ``kubectl kustomize`` (its JSON patches are beyond test_deploy's Python build);
skipped where neither kustomize nor kubectl is installed.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from app.keyring import new_key
from tests.unit.test_deploy import (
    K8S,
    K8S_VERSIONS,
    by_kind,
    containers,
    k8s_env,
    kustomize_binary,
    setting_for,
    settings_from,
)

MOUNTS = {"credentials": "/etc/hookstream/credentials", "tls": "/etc/hookstream/tls"}


@pytest.fixture(scope="module")
def docs() -> list[dict[str, Any]]:
    command = kustomize_binary()
    if command is None:
        # CI must render the overlay, never pass by skipping it (the Python build of
        # tests/unit/test_deploy.py does not apply patches, so it cannot stand in here).
        if os.environ.get("CI"):
            pytest.fail("neither kustomize nor kubectl is installed (required in CI)")
        pytest.skip("neither kustomize nor kubectl is installed")
    built = subprocess.run(
        [*command, str(K8S / "secure")], capture_output=True, text=True, timeout=60, check=True
    )
    return [d for d in yaml.safe_load_all(built.stdout) if d]


def test_the_overlay_validates(docs: list[dict[str, Any]]) -> None:
    for doc in docs:
        if not doc["apiVersion"].startswith("keda.sh/"):
            kubernetes_validate.validate(doc, K8S_VERSIONS[-1], strict=True)


def test_every_hookstream_container_mounts_the_credentials_and_the_ca(
    docs: list[dict[str, Any]],
) -> None:
    workloads = [*by_kind(docs, "Deployment").values(), *by_kind(docs, "Job").values()]
    assert len(workloads) >= 5
    for workload in workloads:
        volumes = {v["name"]: v for v in workload["spec"]["template"]["spec"]["volumes"]}
        assert volumes["credentials"]["secret"]["secretName"] == "hookstream-credentials"
        assert volumes["tls"]["secret"]["secretName"] == "hookstream-tls"
        (container,) = [c for c in containers(workload) if c.get("args")]
        mounted = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
        assert {k: mounted.get(k) for k in MOUNTS} == MOUNTS, workload["metadata"]["name"]
        assert all(m.get("readOnly") for m in container["volumeMounts"] if m["name"] in MOUNTS)


def test_no_password_sits_in_the_configmap(docs: list[dict[str, Any]]) -> None:
    config = {k for cm in by_kind(docs, "ConfigMap").values() for k in cm["data"]}
    assert not {k for k in config if k.endswith(("PASSWORD", "__KEYS", "API_KEYS"))}
    assert {"HOOKSTREAM_KAFKA__SASL_PASSWORD_FILE", "HOOKSTREAM_SECRETS__KEYS_FILE"} <= config


def test_the_settings_load_from_the_mounted_files(
    docs: list[dict[str, Any]], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    env = k8s_env([d for d in docs if d["metadata"]["name"] != "hookstream-credentials"])
    assert all(setting_for(name) for name in env if name.startswith("HOOKSTREAM_"))
    # The files as Kubernetes would mount them, under a temporary root.
    credentials = tmp_path / "credentials"
    credentials.mkdir()
    key = new_key()
    files = {"kafka-password": "k-pass", "cassandra-password": "c-pass", "secret-keys": key}
    for name, value in files.items():
        (credentials / name).write_text(value + "\n")
    env = {k: v.replace(MOUNTS["credentials"], str(credentials)) for k, v in env.items()}
    settings = settings_from(env, monkeypatch)
    assert settings.kafka.security_protocol == "SASL_SSL"
    assert settings.kafka.sasl_password is not None
    assert settings.kafka.sasl_password.get_secret_value() == "k-pass"
    assert settings.cassandra.password is not None
    assert settings.cassandra.password.get_secret_value() == "c-pass"
    assert settings.cassandra.ssl and settings.cassandra.ssl_ca_file is not None
    assert [k.get_secret_value() for k in settings.secrets.keys] == [key]
    assert "k-pass" not in repr(settings)
