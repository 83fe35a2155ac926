"""Offline checks of deploy/ and docker-compose.yml: no network, no Docker, no cluster.

Kubernetes manifests validate against the JSON schemas shipped by ``kubernetes-validate``;
KEDA's ScaledObject (a custom resource) is checked by hand. Every ``HOOKSTREAM_*`` variable
set anywhere must name a real setting, and the values must load into ``Settings``.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import tomllib
from collections.abc import Iterable, Iterator
from functools import cache
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml
from kubernetes_validate.utils import all_versions
from pydantic import BaseModel

from app.settings import Settings, parse_duration
from app.topics import Topics
from app.worker.attempts import deliver_group

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
K8S = DEPLOY / "k8s"
DOCKERFILE = DEPLOY / "Dockerfile"
COMPOSE = ROOT / "docker-compose.yml"
OVERLAYS = ("base", "keda", "hpa")
ROLES = ("api", "worker", "scheduler", "recorder", "replayer")
HOOKSTREAM_SERVICES = ("migrate", *ROLES)
K8S_VERSIONS = ("1.30.0", kubernetes_validate.latest_version())
PREFIX = "HOOKSTREAM_"


def _pristine_settings() -> Settings:
    """The defaults, whatever HOOKSTREAM_* variables the test run itself has."""
    saved = {k: os.environ.pop(k) for k in list(os.environ) if k.upper().startswith(PREFIX)}
    try:
        return Settings()
    finally:
        os.environ.update(saved)


DEFAULTS = _pristine_settings()
PROJECT_VERSION = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
IMAGE = f"hookstream:{PROJECT_VERSION}"


# ---- the HOOKSTREAM_* resolver ---------------------------------------------------------------


def setting_for(env_name: str) -> tuple[str, ...] | None:
    """The settings path an environment variable sets, or None if it sets nothing.

    Mirrors pydantic-settings: prefix ``HOOKSTREAM_``, case-insensitive, ``__`` between a
    group and its field. A bare group name (``HOOKSTREAM_KAFKA``) takes a JSON object.
    """
    if not env_name.upper().startswith(PREFIX):
        return None
    parts = env_name[len(PREFIX) :].lower().split("__")
    model: type[BaseModel] = Settings
    path: list[str] = []
    for i, part in enumerate(parts):
        field = model.model_fields.get(part)
        if field is None:
            return None
        path.append(part)
        annotation = field.annotation
        is_group = isinstance(annotation, type) and issubclass(annotation, BaseModel)
        if i == len(parts) - 1:
            return tuple(path)
        if not is_group:
            return None  # a leaf with more parts after it
        assert isinstance(annotation, type)
        model = annotation
    return None


def test_resolver_knows_real_settings_and_refuses_others() -> None:
    assert setting_for("HOOKSTREAM_KAFKA__BOOTSTRAP_SERVERS") == ("kafka", "bootstrap_servers")
    assert setting_for("HOOKSTREAM_RETRY_SCHEDULE") == ("retry_schedule",)
    assert setting_for("hookstream_api__port") == ("api", "port")
    assert setting_for("HOOKSTREAM_KAFKA") == ("kafka",)
    assert setting_for("HOOKSTREAM_KAFKA__BOOTSTRAP_SERVER") is None  # typo
    assert setting_for("HOOKSTREAM_KAFKA_BOOTSTRAP_SERVERS") is None  # one underscore
    assert setting_for("HOOKSTREAM_RETRY_SCHEDULE__X") is None  # a leaf has no fields
    assert setting_for("HOOKSTREAM_API__PORT__X") is None
    assert setting_for("HOOKSTREAM_NOPE") is None


# ---- loading the files -----------------------------------------------------------------------


def load_yaml_docs(path: Path) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc]


def kustomization_file(directory: Path) -> Path:
    for name in ("kustomization.yaml", "kustomization.yml", "Kustomization"):
        if (directory / name).is_file():
            return directory / name
    raise AssertionError(f"{directory} has no kustomization")


def resolve_resources(directory: Path, seen: frozenset[Path] = frozenset()) -> list[dict[str, Any]]:
    """``kustomize build`` for what these kustomizations use: nested ``resources:`` only."""
    directory = directory.resolve()
    assert directory not in seen, f"kustomization cycle through {directory}"
    kustomization = yaml.safe_load(kustomization_file(directory).read_text())
    unsupported = set(kustomization) - {"apiVersion", "kind", "resources"}
    assert not unsupported, f"{directory}: the Python build does not handle {unsupported}"
    docs: list[dict[str, Any]] = []
    for entry in kustomization.get("resources", []):
        target = (directory / entry).resolve()
        if target.is_dir():
            docs.extend(resolve_resources(target, seen | {directory}))
        else:
            assert target.is_file(), f"{directory}: resource {entry} does not exist"
            docs.extend(load_yaml_docs(target))
    return docs


def kustomize_binary() -> list[str] | None:
    if shutil.which("kustomize"):
        return ["kustomize", "build"]
    if shutil.which("kubectl"):
        return ["kubectl", "kustomize"]
    return None


@cache
def build(overlay: str) -> list[dict[str, Any]]:
    return resolve_resources(K8S / overlay)


def key(doc: dict[str, Any]) -> tuple[str, str, str]:
    return (doc["apiVersion"], doc["kind"], doc["metadata"]["name"])


def by_kind(docs: list[dict[str, Any]], kind: str) -> dict[str, dict[str, Any]]:
    return {d["metadata"]["name"]: d for d in docs if d["kind"] == kind}


def containers(doc: dict[str, Any]) -> list[dict[str, Any]]:
    spec = doc["spec"]["template"]["spec"]
    return [*spec.get("initContainers", []), *spec["containers"]]


def k8s_env(docs: list[dict[str, Any]]) -> dict[str, str]:
    """The environment the Hookstream containers get from the ConfigMap and the Secret."""
    env: dict[str, str] = {}
    for cm in by_kind(docs, "ConfigMap").values():
        env.update(cm.get("data", {}))
    for secret in by_kind(docs, "Secret").values():
        env.update(secret.get("stringData", {}))
    return env


def settings_from(env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> Settings:
    with monkeypatch.context() as patch:
        for name in [n for n in os.environ if n.upper().startswith(PREFIX)]:
            patch.delenv(name)
        for name, value in env.items():
            patch.setenv(name, str(value))
        return Settings()


def compose() -> dict[str, Any]:
    data = yaml.safe_load(COMPOSE.read_text())
    assert isinstance(data, dict)
    return data


def interpolate(value: object) -> str:
    """Compose's ``${NAME:-default}`` with nothing set in the environment."""
    return re.sub(r"\$\{[A-Za-z_][A-Za-z0-9_]*:?-([^}]*)\}", r"\1", str(value))


def compose_env(service: dict[str, Any]) -> dict[str, str]:
    env = service.get("environment", {})
    if isinstance(env, list):
        env = dict(item.split("=", 1) for item in env)
    return {k: interpolate(v) for k, v in env.items()}


def dockerfile_instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined and comments dropped."""
    lines: list[str] = []
    pending = ""
    for raw in DOCKERFILE.read_text().splitlines():
        stripped = raw.strip()
        if not pending and (not stripped or stripped.startswith("#")):
            continue
        if pending and stripped.startswith("#"):
            continue
        if stripped.endswith("\\"):
            pending += stripped[:-1] + " "
            continue
        lines.append(pending + stripped)
        pending = ""
    assert not pending, "Dockerfile ends in a continuation"
    out = []
    for line in lines:
        instruction, _, args = line.partition(" ")
        out.append((instruction.upper(), args.strip()))
    return out


def final_stage() -> list[tuple[str, str]]:
    instructions = dockerfile_instructions()
    last_from = max(i for i, (ins, _) in enumerate(instructions) if ins == "FROM")
    return instructions[last_from:]


def dockerfile_env() -> dict[str, str]:
    env: dict[str, str] = {}
    for instruction, args in dockerfile_instructions():
        if instruction != "ENV":
            continue
        words = shlex.split(args)
        if words and "=" not in words[0]:  # legacy `ENV NAME value`
            env[words[0]] = " ".join(words[1:])
        else:
            for word in words:
                name, _, value = word.partition("=")
                env[name] = value
    return env


def probe_port(container: dict[str, Any], probe: dict[str, Any]) -> int:
    port = probe["httpGet"]["port"]
    if isinstance(port, int):
        return port
    named = {p["name"]: p["containerPort"] for p in container.get("ports", []) if "name" in p}
    assert port in named, f"probe port {port!r} is not a named container port"
    return int(named[port])


# ---- Kubernetes: schemas ---------------------------------------------------------------------


def iter_manifests() -> Iterator[tuple[str, dict[str, Any]]]:
    for path in sorted(K8S.rglob("*.yaml")):
        if path.name.startswith("kustomization"):
            continue
        for doc in load_yaml_docs(path):
            yield str(path.relative_to(K8S)), doc


def test_schema_versions_are_shipped() -> None:
    shipped = {v.rsplit(".", 1)[0] for v in all_versions()}
    for version in K8S_VERSIONS:
        assert version.rsplit(".", 1)[0] in shipped


@pytest.mark.parametrize("version", K8S_VERSIONS)
def test_every_builtin_manifest_validates_against_kubernetes_schemas(version: str) -> None:
    checked = 0
    for name, doc in iter_manifests():
        if doc["apiVersion"].startswith("keda.sh/"):
            continue  # a custom resource: checked by hand below
        try:
            kubernetes_validate.validate(doc, version, strict=True)
        except kubernetes_validate.ValidationError as exc:
            pytest.fail(f"{name} {doc['kind']}/{doc['metadata']['name']}: {exc.message}")
        checked += 1
    assert checked >= 10


def test_only_keda_resources_lack_a_schema() -> None:
    for name, doc in iter_manifests():
        try:
            kubernetes_validate.validate(doc, K8S_VERSIONS[0], strict=True)
        except kubernetes_validate.SchemaNotFoundError:
            assert doc["apiVersion"] == "keda.sh/v1alpha1", f"{name}: unknown {doc['kind']}"


# ---- Kubernetes: kustomize -------------------------------------------------------------------


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_kustomization_builds(overlay: str) -> None:
    docs = build(overlay)
    keys = [key(d) for d in docs]
    assert len(keys) == len(set(keys)), f"{overlay}: duplicate resources"
    command = kustomize_binary()
    if command is None:
        return  # the Python build above is the check
    result = subprocess.run(
        [*command, str(K8S / overlay)], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stderr
    built = [d for d in yaml.safe_load_all(result.stdout) if d]
    # The Python build is faithful: the real one yields the same objects.
    assert sorted(map(key, built)) == sorted(keys)
    assert {json.dumps(d, sort_keys=True) for d in built} == {
        json.dumps(d, sort_keys=True) for d in docs
    }


def test_base_has_no_autoscaler_and_each_overlay_exactly_one() -> None:
    def autoscalers(overlay: str) -> set[str]:
        return {d["kind"] for d in build(overlay)} & {"ScaledObject", "HorizontalPodAutoscaler"}

    assert autoscalers("base") == set()
    assert autoscalers("keda") == {"ScaledObject"}
    assert autoscalers("hpa") == {"HorizontalPodAutoscaler"}
    base = {key(d) for d in build("base")}
    assert base <= {key(d) for d in build("keda")}
    assert base <= {key(d) for d in build("hpa")}


# ---- Kubernetes: what the manifests say ------------------------------------------------------


@pytest.fixture(scope="module")
def base() -> list[dict[str, Any]]:
    return build("base")


@pytest.fixture
def deployed(base: list[dict[str, Any]], monkeypatch: pytest.MonkeyPatch) -> Settings:
    """The settings the pods run with: the ConfigMap and Secret loaded by ``Settings``."""
    return settings_from(k8s_env(base), monkeypatch)


def test_base_has_the_roles_service_config_pdbs_and_migrate_job(base: list[dict[str, Any]]) -> None:
    deployments = by_kind(base, "Deployment")
    assert set(deployments) == set(ROLES)
    for role, deployment in deployments.items():
        (container,) = deployment["spec"]["template"]["spec"]["containers"]
        assert container["image"] == IMAGE
        assert container["args"] == [role]
    (job,) = by_kind(base, "Job").values()
    assert [c["args"] for c in containers(job)] == [["migrate"]]
    assert [c["image"] for c in containers(job)] == [IMAGE]
    assert set(by_kind(base, "PodDisruptionBudget")) == set(ROLES)
    assert set(by_kind(base, "Service")) == {"api"}
    assert by_kind(base, "ConfigMap") and by_kind(base, "Secret")
    assert deployments["scheduler"]["spec"]["replicas"] == 1
    # The autoscaler owns the worker's replicas; a fixed value would reset it on every apply.
    assert "replicas" not in deployments["worker"]["spec"]


def test_env_comes_from_the_configmap_and_secret(base: list[dict[str, Any]]) -> None:
    configmaps, secrets = set(by_kind(base, "ConfigMap")), set(by_kind(base, "Secret"))
    workloads = [*by_kind(base, "Deployment").values(), *by_kind(base, "Job").values()]
    for workload in workloads:
        for container in containers(workload):
            refs = container["envFrom"]
            assert {r["configMapRef"]["name"] for r in refs if "configMapRef" in r} <= configmaps
            assert {r["secretRef"]["name"] for r in refs if "secretRef" in r} <= secrets
            assert any("configMapRef" in r for r in refs)
            assert any("secretRef" in r for r in refs)
    secret_keys = {k for s in by_kind(base, "Secret").values() for k in s.get("stringData", {})}
    assert "HOOKSTREAM_API_KEYS" in secret_keys
    config_keys = {k for c in by_kind(base, "ConfigMap").values() for k in c["data"]}
    assert "HOOKSTREAM_API_KEYS" not in config_keys, "API keys belong in the Secret"


def test_k8s_settings_load(deployed: Settings) -> None:
    assert deployed.api.host == "0.0.0.0"
    assert deployed.worker.metrics_port and deployed.scheduler.metrics_port
    assert deployed.api_keys


def test_pods_are_locked_down_and_sized(base: list[dict[str, Any]]) -> None:
    workloads = [*by_kind(base, "Deployment").values(), *by_kind(base, "Job").values()]
    for workload in workloads:
        name = workload["metadata"]["name"]
        pod = workload["spec"]["template"]["spec"]
        assert pod["securityContext"]["runAsNonRoot"] is True, name
        assert pod["securityContext"].get("runAsUser", 10001) != 0, name
        tmp_volumes = {v["name"] for v in pod["volumes"] if "emptyDir" in v}
        for container in containers(workload):
            security = container["securityContext"]
            assert security["readOnlyRootFilesystem"] is True, name
            assert security["allowPrivilegeEscalation"] is False, name
            mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
            assert mounts.get("/tmp") in tmp_volumes, f"{name}: /tmp must be an emptyDir"
            for bound in ("requests", "limits"):
                assert {"cpu", "memory"} <= set(container["resources"][bound]), (name, bound)


def test_grace_period_outlasts_an_attempt_plus_drain(
    base: list[dict[str, Any]], deployed: Settings
) -> None:
    for deployment in by_kind(base, "Deployment").values():
        grace = deployment["spec"]["template"]["spec"]["terminationGracePeriodSeconds"]
        assert grace == 60
        assert grace >= 2 * deployed.delivery.attempt_timeout + 15


def test_probes(base: list[dict[str, Any]], deployed: Settings) -> None:
    deployments = by_kind(base, "Deployment")
    (api,) = containers(deployments["api"])
    assert api["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert api["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert probe_port(api, api["readinessProbe"]) == deployed.api.port
    assert probe_port(api, api["livenessProbe"]) == deployed.api.port
    metrics_ports = {
        "worker": deployed.worker.metrics_port,
        "scheduler": deployed.scheduler.metrics_port,
    }
    for role, port in metrics_ports.items():
        (container,) = containers(deployments[role])
        for kind in ("readinessProbe", "livenessProbe"):
            probe = container[kind]
            assert set(probe) & {"exec", "tcpSocket", "grpc"} == set(), (role, kind)
            assert probe["httpGet"]["path"] == "/metrics", (role, kind)
            assert probe_port(container, probe) == port, (role, kind)
        liveness = container["livenessProbe"]
        # A rebalance can take minutes: liveness tolerates at least 3 minutes of silence.
        budget = liveness.get("periodSeconds", 10) * liveness.get("failureThreshold", 3)
        assert budget >= 180, role
    # The recorder says on /readyz whether it writes (503 while held by a Cassandra outage);
    # liveness only asks whether it answers, so an outage never gets it killed.
    (recorder,) = containers(deployments["recorder"])
    assert recorder["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert recorder["livenessProbe"]["httpGet"]["path"] == "/healthz"
    for kind in ("readinessProbe", "livenessProbe"):
        assert probe_port(recorder, recorder[kind]) == deployed.recorder.metrics_port
    liveness = recorder["livenessProbe"]
    assert liveness["periodSeconds"] * liveness["failureThreshold"] >= 180


def test_service_reaches_the_api(base: list[dict[str, Any]], deployed: Settings) -> None:
    service = by_kind(base, "Service")["api"]
    api = by_kind(base, "Deployment")["api"]
    labels = api["spec"]["template"]["metadata"]["labels"]
    assert service["spec"]["selector"].items() <= labels.items()
    (port,) = service["spec"]["ports"]
    (container,) = containers(api)
    named = {p.get("name"): p["containerPort"] for p in container["ports"]}
    target = port["targetPort"]
    assert (named[target] if isinstance(target, str) else target) == deployed.api.port


def test_selectors_match_their_pods(base: list[dict[str, Any]]) -> None:
    deployments = by_kind(base, "Deployment")
    for deployment in deployments.values():
        labels = deployment["spec"]["template"]["metadata"]["labels"]
        assert deployment["spec"]["selector"]["matchLabels"].items() <= labels.items()
    for name, pdb in by_kind(base, "PodDisruptionBudget").items():
        labels = deployments[name]["spec"]["template"]["metadata"]["labels"]
        assert pdb["spec"]["selector"]["matchLabels"].items() <= labels.items()
        others = [d for n, d in deployments.items() if n != name]
        for other in others:
            other_labels = other["spec"]["template"]["metadata"]["labels"]
            assert not pdb["spec"]["selector"]["matchLabels"].items() <= other_labels.items()


# ---- Kubernetes: autoscaling -----------------------------------------------------------------


def test_keda_scales_the_worker_on_its_own_topics_never_retries(
    deployed: Settings,
) -> None:
    docs = build("keda")
    deployments = by_kind(docs, "Deployment")
    objects = by_kind(docs, "ScaledObject")
    assert objects, "no ScaledObject"
    topics = Topics.from_settings(deployed)
    worker_topics = {topics.events, topics.deliveries, topics.redeliver}
    retry_topics = set(topics.retries.values())
    assert retry_topics, "the default schedule has retry topics"
    env = k8s_env(docs)
    recorder = objects.pop("recorder", None)
    assert recorder is not None, "no ScaledObject for the recorder"
    check_recorder_scaling(recorder, deployed, deployments, env)
    for name, scaled in objects.items():
        assert scaled["apiVersion"] == "keda.sh/v1alpha1"
        assert scaled["kind"] == "ScaledObject"
        spec = scaled["spec"]
        target = spec["scaleTargetRef"]
        assert target.get("kind", "Deployment") == "Deployment"
        assert target["name"] in deployments, f"{name}: no Deployment {target['name']}"
        assert target["name"] == "worker"
        assert spec["minReplicaCount"] == 1
        assert spec["maxReplicaCount"] == deployed.kafka.partitions == 6
        behavior = spec["advanced"]["horizontalPodAutoscalerConfig"]["behavior"]
        assert behavior["scaleDown"]["stabilizationWindowSeconds"] == 300
        triggers = spec["triggers"]
        assert {t["type"] for t in triggers} == {"kafka"}
        seen = []
        for trigger in triggers:
            meta = trigger["metadata"]
            assert all(isinstance(v, str) for v in meta.values()), "KEDA metadata are strings"
            assert meta["topic"] in worker_topics
            assert meta["topic"] not in retry_topics
            # Match (Faust) and deliver (confluent-kafka) are two groups of the one worker.
            groups = {deployed.kafka.events_topic: deployed.kafka.consumer_group}
            assert meta["consumerGroup"] == groups.get(meta["topic"], deliver_group(deployed))
            assert meta["allowIdleConsumers"] == "false"
            assert int(meta["lagThreshold"]) > 0
            if "bootstrapServersFromEnv" in meta:
                assert setting_for(meta["bootstrapServersFromEnv"]) == (
                    "kafka",
                    "bootstrap_servers",
                )
                assert meta["bootstrapServersFromEnv"] in env
            else:
                assert meta["bootstrapServers"] == deployed.kafka.bootstrap_servers
            seen.append(meta["topic"])
        assert sorted(seen) == sorted(worker_topics), "one trigger per worker topic"
    # KEDA allows one ScaledObject per workload.
    targets = [s["spec"]["scaleTargetRef"]["name"] for s in objects.values()]
    assert len(targets) == len(set(targets))


def check_recorder_scaling(
    scaled: dict[str, Any],
    deployed: Settings,
    deployments: dict[str, dict[str, Any]],
    env: dict[str, str],
) -> None:
    """The recorder scales on its own group's lag of the records topic, and on nothing else."""
    assert scaled["apiVersion"] == "keda.sh/v1alpha1"
    spec = scaled["spec"]
    assert spec["scaleTargetRef"]["name"] == "recorder" in deployments
    assert "replicas" not in deployments["recorder"]["spec"], "KEDA owns the replicas"
    assert spec["minReplicaCount"] == 1
    assert spec["maxReplicaCount"] == deployed.kafka.partitions
    behavior = spec["advanced"]["horizontalPodAutoscalerConfig"]["behavior"]
    assert behavior["scaleDown"]["stabilizationWindowSeconds"] == 300
    (trigger,) = spec["triggers"]
    assert trigger["type"] == "kafka"
    meta = trigger["metadata"]
    assert all(isinstance(v, str) for v in meta.values()), "KEDA metadata are strings"
    assert meta["topic"] == Topics.from_settings(deployed).records
    assert meta["consumerGroup"] == deployed.recorder.consumer_group
    assert meta["consumerGroup"] != deployed.kafka.consumer_group
    assert meta["allowIdleConsumers"] == "false"
    assert int(meta["lagThreshold"]) > 0
    assert setting_for(meta["bootstrapServersFromEnv"]) == ("kafka", "bootstrap_servers")
    assert meta["bootstrapServersFromEnv"] in env


def test_hpa_alternative(deployed: Settings) -> None:
    docs = build("hpa")
    (hpa,) = by_kind(docs, "HorizontalPodAutoscaler").values()
    spec = hpa["spec"]
    assert spec["scaleTargetRef"] == {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "name": "worker",
    }
    assert spec["minReplicas"] == 1
    assert spec["maxReplicas"] == deployed.kafka.partitions
    assert spec["behavior"]["scaleDown"]["stabilizationWindowSeconds"] == 300
    (metric,) = spec["metrics"]
    assert metric["resource"]["name"] == "cpu"
    (worker,) = containers(by_kind(docs, "Deployment")["worker"])
    assert "cpu" in worker["resources"]["requests"], "CPU utilization needs a CPU request"


# ---- every HOOKSTREAM_* variable is a real setting -------------------------------------------


def all_env_names() -> dict[str, set[str]]:
    """Every environment variable name set anywhere, by where it is set."""
    found: dict[str, set[str]] = {}

    def add(where: str, names: Iterable[object]) -> None:
        for name in names:
            found.setdefault(str(name), set()).add(where)

    for service_name, service in compose()["services"].items():
        add(f"compose:{service_name}", compose_env(service))
    for overlay in OVERLAYS:
        for doc in build(overlay):
            where = f"k8s/{overlay}:{doc['kind']}/{doc['metadata']['name']}"
            if doc["kind"] == "ConfigMap":
                add(where, doc.get("data", {}))
            elif doc["kind"] == "Secret":
                add(where, {**doc.get("data", {}), **doc.get("stringData", {})})
            elif doc["kind"] in {"Deployment", "Job", "StatefulSet"}:
                for container in containers(doc):
                    add(where, [e["name"] for e in container.get("env", [])])
            elif doc["kind"] == "ScaledObject":
                for trigger in doc["spec"]["triggers"]:
                    add(where, [v for k, v in trigger["metadata"].items() if k.endswith("FromEnv")])
    add("Dockerfile", dockerfile_env())
    return found


def test_every_hookstream_variable_is_a_real_setting() -> None:
    names = all_env_names()
    hookstream = {n: w for n, w in names.items() if n.upper().startswith(PREFIX)}
    assert len(hookstream) >= 10
    unknown = {n: sorted(w) for n, w in hookstream.items() if setting_for(n) is None}
    assert not unknown, f"not settings: {unknown}"


def test_compose_settings_load(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in HOOKSTREAM_SERVICES:
        settings = settings_from(compose_env(compose()["services"][name]), monkeypatch)
        assert settings.kafka.bootstrap_servers == "kafka:9092"
        assert settings.cassandra.hosts == ["cassandra"]
        assert settings.api.host == "0.0.0.0"
        assert [k.get_secret_value() for k in settings.api_keys] == ["dev-key"]


# ---- docker-compose.yml ----------------------------------------------------------------------


def test_compose_services() -> None:
    services = compose()["services"]
    assert set(services) >= {"kafka", "cassandra", *HOOKSTREAM_SERVICES}
    for name, service in services.items():
        assert service.get("healthcheck", {}).get("test") or name == "migrate", name
    assert services["kafka"]["image"] == "apache/kafka:4.1.1"
    assert services["cassandra"]["image"] == "cassandra:5.0"
    kafka_env = {k: str(v) for k, v in services["kafka"]["environment"].items()}
    assert kafka_env["KAFKA_PROCESS_ROLES"] == "broker,controller"
    assert kafka_env["KAFKA_CONTROLLER_QUORUM_VOTERS"] == "1@kafka:9093"
    assert kafka_env["KAFKA_ADVERTISED_LISTENERS"] == "PLAINTEXT://kafka:9092"
    assert kafka_env["KAFKA_AUTO_CREATE_TOPICS_ENABLE"] == "false"
    assert kafka_env["KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR"] == "1"
    assert "kafka-broker-api-versions.sh" in str(services["kafka"]["healthcheck"]["test"])
    assert "cqlsh" in str(services["cassandra"]["healthcheck"]["test"])


@pytest.mark.parametrize("name", HOOKSTREAM_SERVICES)
def test_compose_hookstream_service(name: str) -> None:
    service = compose()["services"][name]
    build_spec = service.get("build")
    if build_spec is not None:
        context = ROOT / build_spec.get("context", ".")
        assert (context / build_spec["dockerfile"]).resolve() == DOCKERFILE
    else:
        assert service["image"] == IMAGE
    assert service.get("image", IMAGE) == IMAGE
    command = service["command"]
    assert (command if isinstance(command, list) else command.split()) == [name]
    grace = parse_duration(service["stop_grace_period"]).total_seconds()
    assert grace > DEFAULTS.delivery.attempt_timeout + 15
    depends = service["depends_on"]
    if name == "migrate":
        assert str(service["restart"]) == "no"
        assert depends == {
            "kafka": {"condition": "service_healthy"},
            "cassandra": {"condition": "service_healthy"},
        }
    else:
        assert depends == {"migrate": {"condition": "service_completed_successfully"}}
        check = " ".join(service["healthcheck"]["test"])
        port = {
            "api": DEFAULTS.api.port,
            "worker": DEFAULTS.worker.metrics_port,
            "scheduler": DEFAULTS.scheduler.metrics_port,
            "recorder": DEFAULTS.recorder.metrics_port,
            "replayer": DEFAULTS.replay.metrics_port,
        }[name]
        path = "/healthz" if name in {"api", "recorder", "replayer"} else "/metrics"
        assert f":{port}{path}" in check
        env = compose_env(service)
        configured = {
            "api": env.get("HOOKSTREAM_API__PORT"),
            "worker": env.get("HOOKSTREAM_WORKER__METRICS_PORT"),
            "scheduler": env.get("HOOKSTREAM_SCHEDULER__METRICS_PORT"),
            "recorder": env.get("HOOKSTREAM_RECORDER__METRICS_PORT"),
            "replayer": env.get("HOOKSTREAM_REPLAY__METRICS_PORT"),
        }[name]
        assert configured in (None, str(port))


def test_compose_api_keys_default_from_the_shell() -> None:
    raw = compose()["services"]["api"]["environment"]["HOOKSTREAM_API_KEYS"]
    assert raw == "${HOOKSTREAM_API_KEYS:-dev-key}"


# ---- Dockerfile ------------------------------------------------------------------------------


def test_dockerfile_is_multistage_on_python_311_slim() -> None:
    froms = [args for ins, args in dockerfile_instructions() if ins == "FROM"]
    assert len(froms) >= 2
    assert all(f.split()[0] == "python:3.11-slim" for f in froms)


def test_dockerfile_entrypoint_is_exec_form() -> None:
    stage = dict(final_stage())
    assert json.loads(stage["ENTRYPOINT"]) == ["hookstream"]
    assert json.loads(stage["CMD"]) == ["api"]


def test_dockerfile_runs_as_non_root() -> None:
    users = [args for ins, args in final_stage() if ins == "USER"]
    assert users, "no USER in the final stage"
    user = users[-1].split(":")[0]
    assert user not in {"root", "0"}
    assert user == "10001"


def test_dockerfile_installs_with_constraints() -> None:
    instructions = dockerfile_instructions()
    copies = [args for ins, args in instructions if ins in {"COPY", "ADD"}]
    runs = " ".join(args for ins, args in instructions if ins == "RUN")
    assert any("constraints.txt" in a for a in copies), "constraints.txt is not copied"
    assert re.search(r"pip install\b[^&;]*-c \S*constraints\.txt", runs)
    # The runtime stage installs; no dev extra sneaks in.
    assert "[dev]" not in runs


def test_dockerfile_ports_and_env() -> None:
    stage = final_stage()
    exposed = {int(p.split("/")[0]) for ins, a in stage if ins == "EXPOSE" for p in a.split()}
    assert exposed == {
        DEFAULTS.api.port,
        DEFAULTS.worker.metrics_port,
        DEFAULTS.scheduler.metrics_port,
        DEFAULTS.recorder.metrics_port,
    }
    assert dockerfile_env()["HOOKSTREAM_LOG__FORMAT"] == "json"


def test_dockerignore_keeps_the_context_small() -> None:
    patterns = {
        line.strip().rstrip("/")
        for line in (ROOT / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    }
    assert {".venv", ".git", ".pytest_cache", "bench/results", ".infra"} <= patterns
    # What the build needs must not be ignored.
    for needed in ("app", "pyproject.toml", "constraints.txt"):
        assert needed not in patterns
