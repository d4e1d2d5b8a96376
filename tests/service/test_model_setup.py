"""Model setup on Ollama workers: list what each worker has, pull what the catalog requires."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from gateway.cli.entry import main
from simulator import SimulatorConfig, SimulatorThread
from tests.conftest import start_gateway


@pytest.fixture
def ollama() -> Iterator[SimulatorThread]:
    with SimulatorThread(SimulatorConfig(kind="ollama", models=("llama3.2:3b",))) as sim:
        yield sim


def catalog(url: str) -> str:
    return f"""
models:
  - {{name: small, required: true}}
  - {{name: main, required: true}}
  - {{name: extra}}
routing: {{default_model: main}}
workers:
  - name: cpu
    kind: ollama
    base_url: {url}
    models: [{{name: small, upstream_id: "llama3.2:3b"}}, {{name: main, upstream_id: mistral}},
             {{name: extra, upstream_id: phi3}}]
"""


def tags(url: str) -> set[str]:
    return {m["name"] for m in httpx.get(url + "/api/tags").json()["models"]}


def test_list_then_pull_the_required_models(ollama: SimulatorThread, tmp_path: Path,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "models.yaml"
    path.write_text(catalog(ollama.url))
    assert main(["models", "list", "--config", str(path)]) == 1  # a required model is missing
    listing = capsys.readouterr().out
    assert "main [required] as mistral: missing" in listing and "small [required] as llama3.2:3b: present" in listing
    assert main(["models", "pull", "--config", str(path)]) == 0
    pulled = capsys.readouterr().out
    assert "cpu: mistral: success" in pulled and "phi3" not in pulled  # only what is required
    assert main(["models", "list", "--config", str(path)]) == 0
    assert main(["models", "pull", "extra", "--config", str(path)]) == 0
    assert {"mistral", "phi3"} <= {t.removesuffix(":latest") for t in tags(ollama.url)}


def test_required_models_are_pulled_at_startup_when_asked(ollama: SimulatorThread) -> None:
    with start_gateway(catalog(ollama.url), GATEWAY_PULL_REQUIRED="true"):
        deadline = time.monotonic() + 10
        while "mistral" not in {t.removesuffix(":latest") for t in tags(ollama.url)}:
            assert time.monotonic() < deadline, "the required model was not pulled at startup"
    assert "phi3" not in {t.removesuffix(":latest") for t in tags(ollama.url)}
