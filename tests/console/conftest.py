"""The console's fixtures: a real gateway with an admin key and a user key in front of the simulator
(two workers, so a drain shows traffic moving), capturing to a temporary directory, and Debian's
Chromium driven by Playwright (it cannot download its own browsers here)."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, sync_playwright

from simulator import SimulatorConfig, SimulatorThread
from tests.conftest import catalog_yaml, start_gateway
from tests.servers import ServerThread

ADMIN_KEY = "sk-gw-console-admin-tests"
USER_KEY = "sk-gw-console-user-tests"


def chromium_path() -> str:
    """The system Chromium (`make test` installs it; by hand: `apt-get install -y chromium`)."""
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found is None:
        pytest.fail("Chromium is missing: run `apt-get install -y chromium` (make test does it for you)")
    return found


@pytest.fixture(scope="module")
def ollama_sim() -> Iterator[SimulatorThread]:
    with SimulatorThread(SimulatorConfig(kind="ollama", models=("llama3.2:3b",))) as sim:
        yield sim


@pytest.fixture(scope="module")
def console_gateway(vllm_sim: SimulatorThread, ollama_sim: SimulatorThread,
                    tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerThread]:
    """`chat` and `quick` on vLLM workers sim-a and sim-b; `small` on the Ollama worker `cpu`."""
    captures: Path = tmp_path_factory.mktemp("captures")
    ollama = (f"  - {{name: cpu, kind: ollama, base_url: '{ollama_sim.url}', "
              "models: [{name: small, upstream_id: 'llama3.2:3b'}]}\n")
    text = catalog_yaml([("sim-a", vllm_sim.url), ("sim-b", vllm_sim.url)], tail=ollama).replace(
        "  - name: quick\n", "  - name: quick\n  - name: small\n", 1)
    with start_gateway(text, GATEWAY_ADMIN_KEY=ADMIN_KEY, LLM_API_KEY=USER_KEY,
                       GATEWAY_CAPTURE_DIR=str(captures)) as server:
        yield server


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=chromium_path(), headless=True,
                                              args=["--no-sandbox", "--disable-gpu"])
        yield launched
        launched.close()
