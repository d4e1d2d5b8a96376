"""deploy/catalogs/: the environment catalogs compose and Kubernetes serve. Each is valid for
`llm-gateway check`, and the Kubernetes copies (kustomize reads only files below a kustomization)
stay identical to them."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from routing.catalog import load_catalog
from tests.deploy.tools import DEPLOY, K8S, REPO

CATALOGS = sorted((DEPLOY / "catalogs").glob("*.yaml"))
K8S_COPIES = {"dev.yaml": K8S / "base" / "catalog" / "models.yaml",
              "prod.yaml": K8S / "overlays" / "prod" / "catalog" / "models.yaml"}


def test_there_are_dev_and_prod_catalogs() -> None:
    assert {p.name for p in CATALOGS} == {"dev.yaml", "prod.yaml"}


@pytest.mark.parametrize("path", CATALOGS, ids=lambda p: p.name)
def test_llm_gateway_check_accepts_it(path: Path) -> None:
    result = subprocess.run([sys.executable, "-m", "gateway", "check", str(path)], capture_output=True, text=True,
                            timeout=60, cwd=REPO)
    assert result.returncode == 0, result.stderr
    assert f"{path}: valid" in result.stdout


@pytest.mark.parametrize("name", sorted(K8S_COPIES))
def test_the_kubernetes_copy_is_identical(name: str) -> None:
    assert K8S_COPIES[name].read_bytes() == (DEPLOY / "catalogs" / name).read_bytes(), (
        f"cp deploy/catalogs/{name} {K8S_COPIES[name].relative_to(REPO)}")


def test_dev_puts_every_model_on_the_ollama_service() -> None:
    catalog = load_catalog(DEPLOY / "catalogs" / "dev.yaml")
    assert [(w.kind, w.url) for w in catalog.workers] == [("ollama", "http://ollama:11434")]
    served = {m.name for m in catalog.workers[0].served()}
    assert served == {m.name for m in catalog.models}


def test_prod_discovers_vllm_by_dns_and_keeps_every_required_model_served() -> None:
    catalog = load_catalog(DEPLOY / "catalogs" / "prod.yaml")
    vllm = [w for w in catalog.workers if w.kind == "vllm"]
    assert len(vllm) == 1
    assert vllm[0].discovery == "dns" and vllm[0].url == "http://vllm:8000/v1"
    assert vllm[0].api_key_env == "VLLM_API_KEY"
    served = {m.name for w in catalog.workers for m in w.served()}
    assert {m.name for m in catalog.models if m.required} <= served


def test_the_models_and_rules_are_the_shipped_catalogs() -> None:
    # Environments change where models run, never which models clients see or how prompts are routed.
    shipped = load_catalog(REPO / "config" / "models.yaml")
    for path in CATALOGS:
        catalog = load_catalog(path)
        shipped_models = {m.name for m in shipped.models if m.name != "smollm2"}  # smollm2: the embedded worker
        assert {m.name for m in catalog.models} == shipped_models, path.name
        assert catalog.routing.routes == shipped.routing.routes, path.name
        assert catalog.routing.default_model == shipped.routing.default_model, path.name
