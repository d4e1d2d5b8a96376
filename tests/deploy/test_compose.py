"""deploy/docker-compose.yml, profile by profile: what compose would run, checked without an engine.

Three layers: the file's own consistency (always: PyYAML only), the compose-spec JSON schema (the copy
that check-jsonschema ships, `pip install check-jsonschema`), and `config -q` of whichever compose CLI
is installed (v2 `docker compose` or Debian's docker-compose 1.29). Missing tools skip their layer.
"""

from __future__ import annotations

import json
import re
import subprocess
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml

from routing.catalog import load_catalog
from tests.deploy.tools import DEPLOY, documented_settings, find_tool, require_tool, worker_key_variables

COMPOSE_FILE = DEPLOY / "docker-compose.yml"
ENV_EXAMPLE = DEPLOY / ".env.example"

# Each environment scripts/deploy knows, as compose sees it: profiles and the variables it sets.
_TRACED = {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://otel-collector:4318"}
PROFILE_SETS: dict[str, tuple[tuple[str, ...], dict[str, str]]] = {
    "development": ((), {}),
    "monitoring": (("monitoring",), _TRACED),
    "production": (("production",), {"GATEWAY_CATALOG": "prod", "OLLAMA_PULL_MODELS": "llama3.2:3b nomic-embed-text"}),
    "production+monitoring": (("production", "monitoring"), {
        "GATEWAY_CATALOG": "prod", "OLLAMA_PULL_MODELS": "llama3.2:3b nomic-embed-text", **_TRACED}),
}

_VARIABLE = re.compile(r"\$(?:(\$)|\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?[-?+])([^}]*))?\}|([A-Za-z_][A-Za-z0-9_]*))")


class InterpolationError(ValueError):
    pass


def interpolate(text: str, env: Mapping[str, str]) -> str:
    """Compose's variable substitution: $$, $VAR, ${VAR}, ${VAR:-default}, ${VAR-default}, ${VAR:?error},
    ${VAR?error}, ${VAR:+alternative}."""

    def substitute(match: re.Match[str]) -> str:
        escaped, name, operator, argument, bare = match.groups()
        if escaped:
            return "$"
        name = name or bare
        value = env.get(name)
        if operator in (":-", "-"):
            unset = value is None or (operator == ":-" and value == "")
            return argument if unset else str(value)
        if operator in (":?", "?"):
            if value is None or (operator == ":?" and value == ""):
                raise InterpolationError(f"{name}: {argument}")
            return value
        if operator == ":+":
            return argument if value else ""
        return value or ""

    return _VARIABLE.sub(substitute, text)


def interpolate_tree(node: Any, env: Mapping[str, str]) -> Any:
    if isinstance(node, str):
        return interpolate(node, env)
    if isinstance(node, list):
        return [interpolate_tree(item, env) for item in node]
    if isinstance(node, dict):
        return {key: interpolate_tree(value, env) for key, value in node.items()}
    return node


def env_file_values(path: Path) -> dict[str, str]:
    values = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.strip() and not line.lstrip().startswith("#") and "=" in line:
            key, _, value = line.partition("=")
            values[key.strip()] = value.strip()
    return values


def raw_compose() -> dict[str, Any]:
    data = yaml.safe_load(COMPOSE_FILE.read_text(encoding="utf-8"))
    assert isinstance(data, dict)
    return data


def resolved(profile_set: str) -> dict[str, Any]:
    """The compose file as it runs for a profile set: variables from .env.example and the deploy script,
    services outside the active profiles dropped."""
    profiles, overrides = PROFILE_SETS[profile_set]
    data = interpolate_tree(raw_compose(), {**env_file_values(ENV_EXAMPLE), **overrides})
    data["services"] = {name: service for name, service in data["services"].items()
                        if not service.get("profiles") or set(service["profiles"]) & set(profiles)}
    return dict(data)


def env_of(service: Mapping[str, Any]) -> dict[str, str]:
    environment = service.get("environment", {})
    if isinstance(environment, list):
        return dict(item.split("=", 1) for item in environment)
    return {key: str(value) for key, value in environment.items()}


def seconds(duration: str) -> float:
    match = re.fullmatch(r"(?:(\d+)m)?(?:(\d+)s)?", duration)
    assert match and duration, f"unexpected duration {duration!r}"
    return int(match.group(1) or 0) * 60 + int(match.group(2) or 0)


# ---- the file's own consistency -------------------------------------------------------------------------

def test_the_file_parses_with_compose_v1_too() -> None:
    # docker-compose 1.x (Debian's) rejects a top-level `name:`; everything else here is in both.
    assert "name" not in raw_compose()
    assert "version" not in raw_compose()  # obsolete in v2 (a warning), unused in 1.27+


def test_every_variable_is_documented_in_env_example() -> None:
    used = {match.group(2) or match.group(5) for match in _VARIABLE.finditer(COMPOSE_FILE.read_text())
            if not match.group(1)}
    documented = set(re.findall(r"^#?\s*([A-Z][A-Z0-9_]*)=", ENV_EXAMPLE.read_text(), re.MULTILINE))
    assert used - documented == set(), "add these to deploy/.env.example"


def test_the_gateway_gets_only_variables_it_reads() -> None:
    # A misspelt setting would be silently ignored: every one must be a documented setting or a worker key.
    gateway = raw_compose()["services"]["llm-gateway"]
    unknown = set(gateway["environment"]) - documented_settings() - worker_key_variables()
    assert not unknown, "not in docs/configuration.md's table (nor a catalog's api_key_env)"


def test_the_api_key_is_required_and_not_defaulted() -> None:
    gateway = raw_compose()["services"]["llm-gateway"]
    assert re.fullmatch(r"\$\{LLM_API_KEY:\?[^}]+\}", gateway["environment"]["LLM_API_KEY"])
    with pytest.raises(InterpolationError, match="LLM_API_KEY"):
        interpolate_tree(gateway, {})


@pytest.mark.parametrize("profile_set", sorted(PROFILE_SETS))
def test_services_depend_only_on_services_that_run(profile_set: str) -> None:
    services = resolved(profile_set)["services"]
    for name, service in services.items():
        depends = service.get("depends_on", {})
        missing = set(depends) - set(services)
        assert not missing, f"{profile_set}: {name} depends on {missing}, which does not run"


@pytest.mark.parametrize("profile_set", sorted(PROFILE_SETS))
def test_mounts_exist_and_named_volumes_are_declared(profile_set: str) -> None:
    data = resolved(profile_set)
    for name, service in data["services"].items():
        for volume in service.get("volumes", []):
            source = volume.split(":", 1)[0]
            if source.startswith((".", "/")):
                assert (DEPLOY / source).resolve().exists(), f"{name}: {source} does not exist"
            else:
                assert source in data.get("volumes", {}), f"{name}: volume {source} is not declared"
        build = service.get("build")
        if build:
            assert (DEPLOY / build["context"] / build.get("dockerfile", "Dockerfile")).is_file()


@pytest.mark.parametrize("profile_set", sorted(PROFILE_SETS))
def test_the_gateway_serves_a_valid_catalog_whose_workers_run(profile_set: str) -> None:
    services = resolved(profile_set)["services"]
    gateway = services["llm-gateway"]
    env = env_of(gateway)
    mounts = dict(v.split(":")[1::-1] for v in gateway["volumes"])  # container path -> source
    container_dir, _, file_name = env["GATEWAY_CONFIG"].rpartition("/")
    catalog = load_catalog((DEPLOY / mounts[container_dir] / file_name).resolve())
    for worker in catalog.workers:
        host = urlsplit(worker.url).hostname
        assert host in services, f"{profile_set}: worker {worker.name} is at {host}, which does not run"
    assert urlsplit(env["REDIS_URL"]).hostname in services
    kinds = {w.kind for w in catalog.workers}
    assert ("vllm" in kinds) == ("production" in profile_set)


@pytest.mark.parametrize("profile_set", sorted(PROFILE_SETS))
def test_model_setup_pulls_exactly_the_models_ollama_serves(profile_set: str) -> None:
    services = resolved(profile_set)["services"]
    gateway_env = env_of(services["llm-gateway"])
    catalog = load_catalog(DEPLOY / "catalogs" / gateway_env["GATEWAY_CONFIG"].rpartition("/")[2])
    served = {m.worker_model_id for w in catalog.workers if w.kind == "ollama" for m in w.served()}
    setup = services["model-setup"]
    assert set(env_of(setup)["PULL_MODELS"].split()) == served
    assert setup["restart"] == "no"
    assert env_of(setup)["OLLAMA_HOST"] == "http://ollama:11434"
    assert services["llm-gateway"]["depends_on"]["model-setup"]["condition"] == "service_completed_successfully"


def test_production_runs_vllm_on_an_nvidia_gpu_from_the_seed_variables() -> None:
    raw = raw_compose()["services"]["vllm"]
    assert raw["profiles"] == ["production"]
    assert raw["image"].startswith("vllm/vllm-openai:")
    command = " ".join(raw["command"])
    for variable in ("VLLM_MODEL", "GPU_MEMORY_UTILIZATION", "TENSOR_PARALLEL_SIZE"):
        assert "${" + variable in command
    devices = raw["deploy"]["resources"]["reservations"]["devices"]
    assert devices[0]["driver"] == "nvidia" and "gpu" in devices[0]["capabilities"]
    # What vLLM serves is what the production catalog asks it for.
    model = re.search(r"--model=\$\{VLLM_MODEL:-([^}]+)\}", command)
    assert model
    catalog = load_catalog(DEPLOY / "catalogs" / "prod.yaml")
    vllm_ids = {m.worker_model_id for w in catalog.workers if w.kind == "vllm" for m in w.served()}
    assert vllm_ids == {model.group(1)}


def test_the_gateway_gets_time_to_drain_on_stop() -> None:
    gateway = resolved("development")["services"]["llm-gateway"]
    drain = float(env_of(gateway)["GATEWAY_DRAIN_SECONDS"])
    assert seconds(gateway["stop_grace_period"]) > drain + 30  # uvicorn's graceful shutdown is 30 s
    assert "/livez" in " ".join(gateway["healthcheck"]["test"])


def test_redis_persists_and_caps_its_memory() -> None:
    command = raw_compose()["services"]["redis"]["command"]
    assert "--appendonly yes" in command
    assert "--maxmemory " in command
    assert re.search(r"--maxmemory-policy \w+-lru", command)


@pytest.mark.parametrize("profile_set", PROFILE_SETS)
def test_the_gateway_traces_to_the_collector_only_with_monitoring(profile_set: str) -> None:
    services = resolved(profile_set)["services"]
    endpoint = env_of(services["llm-gateway"])["OTEL_EXPORTER_OTLP_ENDPOINT"]
    if "monitoring" not in profile_set:
        assert endpoint == "" and "otel-collector" not in services  # empty: tracing off
        return
    assert urlsplit(endpoint).hostname == "otel-collector" and urlsplit(endpoint).port == 4318
    collector = services["otel-collector"]
    assert collector["image"].startswith("otel/opentelemetry-collector:")
    config_file = next(v.split(":")[0] for v in collector["volumes"] if v.endswith(":/etc/otelcol/config.yaml:ro"))
    config = yaml.safe_load((DEPLOY / config_file).read_text(encoding="utf-8"))
    assert config["receivers"]["otlp"]["protocols"]["http"]["endpoint"].endswith(":4318")
    assert "otlp" in config["service"]["pipelines"]["traces"]["receivers"]


def test_the_monitoring_profile_keeps_prometheus_and_grafana() -> None:
    services = resolved("monitoring")["services"]
    assert {"prometheus", "grafana"} <= set(services)
    assert not {"prometheus", "grafana", "vllm"} & set(resolved("development")["services"])


# ---- the compose-spec schema ------------------------------------------------------------------------------

def test_the_raw_file_matches_the_compose_spec_schema() -> None:
    tool = require_tool("check-jsonschema")
    result = subprocess.run([tool, "--builtin-schema", "vendor.compose-spec", str(COMPOSE_FILE)],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("profile_set", sorted(PROFILE_SETS))
def test_each_profile_matches_the_compose_spec_schema(profile_set: str, tmp_path: Path) -> None:
    tool = require_tool("check-jsonschema")
    document = tmp_path / f"{profile_set}.json"
    document.write_text(json.dumps(resolved(profile_set)))
    result = subprocess.run([tool, "--builtin-schema", "vendor.compose-spec", str(document)],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr


# ---- compose itself -----------------------------------------------------------------------------------------

def compose_command() -> list[str]:
    docker = find_tool("docker")
    if docker and subprocess.run([docker, "compose", "version"], capture_output=True, timeout=30).returncode == 0:
        return [docker, "compose"]
    return [require_tool("docker-compose")]


@pytest.mark.parametrize("profile_set", sorted(PROFILE_SETS))
def test_compose_accepts_each_profile(profile_set: str) -> None:
    command = compose_command()
    profiles, overrides = PROFILE_SETS[profile_set]
    args = [*command, "-p", "llm-gateway", "-f", str(COMPOSE_FILE), "--env-file", str(ENV_EXAMPLE)]
    for profile in profiles:
        args += ["--profile", profile]
    # Only what compose needs: no variable of this machine may leak into the check.
    env = {"PATH": "/usr/local/bin:/usr/bin:/bin", **overrides}
    result = subprocess.run([*args, "config", "-q"], capture_output=True, text=True, timeout=120, env=env)
    assert result.returncode == 0, result.stdout + result.stderr
