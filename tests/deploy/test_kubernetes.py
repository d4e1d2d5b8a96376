"""k8s/: the kustomize base and overlays, rendered (`kustomize build`, or `kubectl kustomize`) and
checked without a cluster: every manifest against the Kubernetes OpenAPI schemas of several versions
(`pip install kubernetes-validate`, strict: unknown fields are errors), then what the schemas cannot see
(probes, grace period, secrets by reference, selectors that select, the catalog's workers being the
Services that exist). No renderer installed: skipped, with the reason."""

from __future__ import annotations

import re
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml

from routing.catalog import Catalog, parse_catalog
from tests.deploy.tools import K8S, REPO, documented_settings, find_tool, require_tool, worker_key_variables

TARGETS = ("base", "overlays/dev", "overlays/prod")
KUBERNETES_VERSIONS = ("1.29.0", "1.33.0")
CRD_KINDS = {("monitoring.coreos.com/v1", "ServiceMonitor")}

Manifest = dict[str, Any]


def renderer() -> list[str]:
    if kustomize := find_tool("kustomize"):
        return [kustomize, "build"]
    if kubectl := find_tool("kubectl"):
        return [kubectl, "kustomize"]
    pytest.skip("neither kustomize nor kubectl is installed (kubectl kustomize renders the overlays)")


_rendered: dict[str, tuple[str, list[Manifest]]] = {}


def render(target: str) -> tuple[str, list[Manifest]]:
    if target not in _rendered:
        result = subprocess.run([*renderer(), str(K8S / target)], capture_output=True, text=True, timeout=120)
        assert result.returncode == 0, result.stderr
        docs = [d for d in yaml.safe_load_all(result.stdout) if d]
        _rendered[target] = (result.stdout, docs)
    return _rendered[target]


@pytest.fixture(params=TARGETS)
def target(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture(params=("overlays/dev", "overlays/prod"))
def overlay(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def of_kind(docs: list[Manifest], kind: str) -> list[Manifest]:
    return [d for d in docs if d["kind"] == kind]


def named(docs: list[Manifest], kind: str, name: str) -> Manifest:
    found = [d for d in of_kind(docs, kind) if d["metadata"]["name"] == name]
    assert len(found) == 1, f"expected one {kind} {name}, found {len(found)}"
    return found[0]


def generated(docs: list[Manifest], name: str) -> Manifest:
    """A ConfigMap from configMapGenerator (its name gets a content hash suffix)."""
    found = [d for d in of_kind(docs, "ConfigMap") if re.fullmatch(rf"{name}(-[a-z0-9]{{10}})?", d["metadata"]["name"])]
    assert len(found) == 1, f"expected one ConfigMap {name}, found {len(found)}"
    return found[0]


def pod_templates(docs: list[Manifest]) -> Iterator[tuple[Manifest, Manifest]]:
    for doc in docs:
        if doc["kind"] in ("Deployment", "StatefulSet", "DaemonSet", "Job"):
            yield doc, doc["spec"]["template"]


def gateway_container(docs: list[Manifest]) -> Manifest:
    containers = named(docs, "Deployment", "llm-gateway")["spec"]["template"]["spec"]["containers"]
    assert len(containers) == 1
    return dict(containers[0])


def env_value(docs: list[Manifest], container: Manifest, name: str) -> str:
    for item in container.get("env", []):
        if item["name"] == name:
            return str(item["value"])
    for source in container.get("envFrom", []):
        config = [d for d in of_kind(docs, "ConfigMap") if d["metadata"]["name"] == source["configMapRef"]["name"]]
        if config and name in config[0].get("data", {}):
            return str(config[0]["data"][name])
    raise AssertionError(f"{name} is not set in container {container['name']}")


def catalog_of(docs: list[Manifest]) -> Catalog:
    return parse_catalog(generated(docs, "llm-gateway-catalog")["data"]["models.yaml"], "rendered ConfigMap")


def selects(selector: dict[str, str], labels: dict[str, str]) -> bool:
    return all(labels.get(k) == v for k, v in selector.items())


# ---- schemas -----------------------------------------------------------------------------------------------

def test_renders(target: str) -> None:
    _, docs = render(target)
    assert docs


def test_every_manifest_matches_the_kubernetes_schemas(target: str, tmp_path: Path) -> None:
    validator = require_tool("kubernetes-validate")
    text, _ = render(target)
    manifest = tmp_path / "rendered.yaml"
    manifest.write_text(text)
    args = [validator, "--strict", "--quiet"]
    for version in KUBERNETES_VERSIONS:
        args += ["-k", version]
    result = subprocess.run([*args, str(manifest)], capture_output=True, text=True, timeout=300)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    # Custom resources have no schema there (checked below instead); any other kind must have one.
    unknown = [line for line in output.splitlines() if line.startswith("WARN")
               and not any(f"kind {kind} with api version {api}" in line for api, kind in CRD_KINDS)]
    assert not unknown, output


def test_service_monitors_select_a_service_port(target: str) -> None:
    _, docs = render(target)
    monitors = of_kind(docs, "ServiceMonitor")
    assert monitors, "Prometheus Operator should scrape the gateway"
    for monitor in monitors:
        assert monitor["apiVersion"] == "monitoring.coreos.com/v1"
        assert set(monitor) <= {"apiVersion", "kind", "metadata", "spec"}
        selector = monitor["spec"]["selector"]["matchLabels"]
        services = [s for s in of_kind(docs, "Service") if selects(selector, s["metadata"].get("labels", {}))]
        assert len(services) == 1, f"ServiceMonitor {monitor['metadata']['name']} selects {len(services)} Services"
        ports = {p.get("name") for p in services[0]["spec"]["ports"]}
        for endpoint in monitor["spec"]["endpoints"]:
            assert endpoint["port"] in ports
            assert endpoint["path"] == "/metrics"


# ---- the gateway Deployment ----------------------------------------------------------------------------------

def test_gateway_probes_grace_and_resources(target: str) -> None:
    _, docs = render(target)
    deployment = named(docs, "Deployment", "llm-gateway")
    pod = deployment["spec"]["template"]["spec"]
    container = gateway_container(docs)
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert container["livenessProbe"]["httpGet"]["path"] == "/livez"
    drain = float(env_value(docs, container, "GATEWAY_DRAIN_SECONDS"))
    assert pod["terminationGracePeriodSeconds"] > drain + 30, "drain + uvicorn's 30 s graceful shutdown"
    for kind in ("requests", "limits"):
        assert {"cpu", "memory"} <= set(container["resources"][kind])
    assert "replicas" not in deployment["spec"], "the HPA owns the replica count"


def test_gateway_runs_as_the_image_user_on_the_image_port(target: str) -> None:
    _, docs = render(target)
    dockerfile = (REPO / "Dockerfile").read_text()
    uid = int(re.findall(r"^USER (\d+)", dockerfile, re.MULTILINE)[-1])
    port = int(re.findall(r"^EXPOSE (\d+)", dockerfile, re.MULTILINE)[-1])
    pod = named(docs, "Deployment", "llm-gateway")["spec"]["template"]["spec"]
    container = gateway_container(docs)
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] == uid
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert container["securityContext"]["allowPrivilegeEscalation"] is False
    assert [p["containerPort"] for p in container["ports"]] == [port]
    assert env_value(docs, container, "GATEWAY_PORT") == str(port)
    assert env_value(docs, container, "GATEWAY_HOST") == "0.0.0.0"
    mounts = {m["mountPath"] for m in container["volumeMounts"]}
    # Read-only root: multi-process metrics and temp files go to an emptyDir (a mount path, not a temp file).
    assert "/tmp" in mounts  # noqa: S108


def test_gateway_gets_only_variables_it_reads(target: str) -> None:
    _, docs = render(target)
    container = gateway_container(docs)
    names = {item["name"] for item in container["env"]}
    config_maps = {d["metadata"]["name"]: d.get("data", {}) for d in of_kind(docs, "ConfigMap")}
    for source in container["envFrom"]:
        names |= set(config_maps[source["configMapRef"]["name"]])
    unknown = names - documented_settings() - worker_key_variables()
    assert not unknown, "not in docs/configuration.md's table (nor a catalog's api_key_env)"


def test_gateway_reads_the_generated_catalog(target: str) -> None:
    _, docs = render(target)
    container = gateway_container(docs)
    config = env_value(docs, container, "GATEWAY_CONFIG")
    directory, _, file_name = config.rpartition("/")
    mount = next(m for m in container["volumeMounts"] if m["mountPath"] == directory)
    assert "subPath" not in mount, "a subPath mount never sees ConfigMap updates (no hot reload)"
    volumes = named(docs, "Deployment", "llm-gateway")["spec"]["template"]["spec"]["volumes"]
    volume = next(v for v in volumes if v["name"] == mount["name"])
    assert volume["configMap"]["name"] == generated(docs, "llm-gateway-catalog")["metadata"]["name"]
    assert file_name in generated(docs, "llm-gateway-catalog")["data"]


def test_keys_come_from_a_secret_that_is_never_rendered(target: str) -> None:
    text, docs = render(target)
    assert not of_kind(docs, "Secret"), "real keys are created out of band (k8s/base/secret.example.yaml)"
    for workload, template in pod_templates(docs):
        for container in template["spec"]["containers"]:
            for item in container.get("env", []):
                if re.search(r"KEY|TOKEN|SECRET|PASSWORD", item["name"]):
                    assert "value" not in item, f"{workload['metadata']['name']}: {item['name']} as a literal"
                    assert item["valueFrom"]["secretKeyRef"]["name"] == "llm-gateway-keys"
    api_key = next(i for i in gateway_container(docs)["env"] if i["name"] == "LLM_API_KEY")
    assert not api_key["valueFrom"]["secretKeyRef"].get("optional", False), "the gateway cannot start without it"
    assert "REPLACE-ME" not in text


def test_the_secret_example_is_in_no_kustomization() -> None:
    assert (K8S / "base" / "secret.example.yaml").is_file()
    for kustomization in K8S.rglob("kustomization.yaml"):
        data = yaml.safe_load(kustomization.read_text())
        listed = [str(entry) for field in ("resources", "components", "patchesStrategicMerge")
                  for entry in data.get(field, [])]
        assert not [entry for entry in listed if "secret" in entry], kustomization
        assert "secretGenerator" not in data, f"{kustomization}: a generator would need the secret in the repo"


def test_hpa_and_pdb_target_the_gateway(target: str) -> None:
    _, docs = render(target)
    hpa = named(docs, "HorizontalPodAutoscaler", "llm-gateway")
    assert hpa["apiVersion"] == "autoscaling/v2"
    assert hpa["spec"]["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment", "name": "llm-gateway"}
    assert 1 <= hpa["spec"]["minReplicas"] <= hpa["spec"]["maxReplicas"]
    assert [m["resource"]["name"] for m in hpa["spec"]["metrics"]] == ["cpu"]
    labels = named(docs, "Deployment", "llm-gateway")["spec"]["template"]["metadata"]["labels"]
    pdb = named(docs, "PodDisruptionBudget", "llm-gateway")
    assert pdb["apiVersion"] == "policy/v1"
    assert selects(pdb["spec"]["selector"]["matchLabels"], labels)
    # With a single replica, minAvailable would block every node drain.
    assert "maxUnavailable" in pdb["spec"] or pdb["spec"]["minAvailable"] < hpa["spec"]["minReplicas"]


# ---- wiring: selectors, ports, references ----------------------------------------------------------------------

def test_every_service_selects_pods_with_its_target_ports(target: str) -> None:
    _, docs = render(target)
    templates = [t for _, t in pod_templates(docs)]
    for service in of_kind(docs, "Service"):
        pods = [t for t in templates if selects(service["spec"]["selector"], t["metadata"]["labels"])]
        assert pods, f"Service {service['metadata']['name']} selects no pod"
        named_ports = {p["name"] for t in pods for c in t["spec"]["containers"] for p in c.get("ports", [])}
        for port in service["spec"]["ports"]:
            assert port["targetPort"] in named_ports, f"{service['metadata']['name']}: {port['targetPort']}"


def test_every_referenced_config_map_exists(target: str) -> None:
    _, docs = render(target)
    config_maps = {d["metadata"]["name"] for d in of_kind(docs, "ConfigMap")}
    for workload, template in pod_templates(docs):
        references = [v["configMap"]["name"] for v in template["spec"].get("volumes", []) if "configMap" in v]
        for container in template["spec"]["containers"]:
            references += [s["configMapRef"]["name"] for s in container.get("envFrom", []) if "configMapRef" in s]
        for reference in references:
            assert reference in config_maps, f"{workload['metadata']['name']} refers to a missing ConfigMap {reference}"


def test_catalog_workers_and_redis_are_services_of_the_render(target: str) -> None:
    _, docs = render(target)
    services = {s["metadata"]["name"]: s for s in of_kind(docs, "Service")}
    catalog = catalog_of(docs)
    for worker in catalog.workers:
        parts = urlsplit(worker.url)
        assert parts.hostname in services, f"worker {worker.name}: no Service {parts.hostname}"
        assert parts.port in {p["port"] for p in services[parts.hostname]["spec"]["ports"]}
        if worker.discovery == "dns":
            assert services[parts.hostname]["spec"].get("clusterIP") == "None", "DNS discovery needs a headless Service"
    redis = urlsplit(env_value(docs, gateway_container(docs), "REDIS_URL"))
    assert redis.hostname in services
    assert redis.port in {p["port"] for p in services[str(redis.hostname)]["spec"]["ports"]}


def test_ollama_pulls_exactly_the_models_it_serves(target: str) -> None:
    _, docs = render(target)
    job = named(docs, "Job", "ollama-pull-models")
    container = job["spec"]["template"]["spec"]["containers"][0]
    pulled = set(env_value(docs, container, "PULL_MODELS").split())
    served = {m.worker_model_id for w in catalog_of(docs).workers if w.kind == "ollama" for m in w.served()}
    assert pulled == served
    assert env_value(docs, container, "OLLAMA_HOST") == "http://ollama:11434"


def test_redis_persists_and_caps_memory(target: str) -> None:
    _, docs = render(target)
    redis = named(docs, "StatefulSet", "redis")
    args = " ".join(redis["spec"]["template"]["spec"]["containers"][0]["args"])
    assert "--appendonly yes" in args
    assert re.search(r"--maxmemory-policy \w+-lru", args)
    assert redis["spec"]["volumeClaimTemplates"]


# ---- overlays -----------------------------------------------------------------------------------------------

def test_overlays_have_their_own_namespace(overlay: str) -> None:
    _, docs = render(overlay)
    namespaces = {d["metadata"]["name"] for d in of_kind(docs, "Namespace")}
    assert len(namespaces) == 1
    assert {d["metadata"].get("namespace") for d in docs if d["kind"] != "Namespace"} == namespaces


def test_dev_serves_everything_on_ollama() -> None:
    _, docs = render("overlays/dev")
    assert {w.kind for w in catalog_of(docs).workers} == {"ollama"}
    assert not [d for d in docs if d["metadata"]["name"] == "vllm"]


def test_prod_serves_mistral_on_vllm_gpus_found_through_a_headless_service() -> None:
    _, docs = render("overlays/prod")
    catalog = catalog_of(docs)
    vllm_workers = [w for w in catalog.workers if w.kind == "vllm"]
    assert len(vllm_workers) == 1 and vllm_workers[0].discovery == "dns"
    assert named(docs, "Service", "vllm")["spec"]["clusterIP"] == "None"
    container = named(docs, "Deployment", "vllm")["spec"]["template"]["spec"]["containers"][0]
    for kind in ("requests", "limits"):
        assert int(container["resources"][kind]["nvidia.com/gpu"]) >= 1
    args = " ".join(container["args"])
    for variable in ("VLLM_MODEL", "GPU_MEMORY_UTILIZATION", "TENSOR_PARALLEL_SIZE"):
        assert f"$({variable})" in args
        env_value(docs, container, variable)  # defined, so Kubernetes can expand it
    served = {m.worker_model_id for m in vllm_workers[0].served()}
    assert served == {env_value(docs, container, "VLLM_MODEL")}
    assert container["readinessProbe"]["httpGet"]["path"] == "/health"
    # The gateway's own required models all have a worker.
    for model in catalog.models:
        if model.required:
            assert any(model.name in {m.name for m in w.served()} for w in catalog.workers)
