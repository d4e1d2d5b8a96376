"""The control-plane client against simulated workers: each call goes to the worker's root with the
worker's own key and no other, and what goes wrong comes back as the gateway's own errors."""

from __future__ import annotations

from collections.abc import Iterator

import msgspec
import pytest

from gateway.errors import GatewayError, WorkerRejected
from gateway.workers.control_client import ControlClient
from gateway.workers.load_scrape import parse_vllm_metrics
from routing.catalog import WorkerSpec
from simulator import SimulatorConfig, SimulatorThread
from testkit.loopback import free_port
from tests.conftest import SIM_MODEL

KEY = "sk-worker-own-key"


def worker(kind: str, url: str, *, key_env: str | None = None) -> WorkerSpec:
    return msgspec.convert({"name": "w", "kind": kind, "base_url": url, "api_key_env": key_env,
                            "models": [{"name": "m", "upstream_id": SIM_MODEL}]}, WorkerSpec)


@pytest.fixture
def ollama_sim() -> Iterator[SimulatorThread]:
    with SimulatorThread(SimulatorConfig(kind="ollama", models=(SIM_MODEL,), preloaded=True)) as sim:
        yield sim


async def test_ollama_calls_carry_the_workers_key(ollama_sim: SimulatorThread) -> None:
    spec = worker("ollama", ollama_sim.url, key_env="OLLAMA_WORKER_KEY")
    progress: list[str] = []
    async with ControlClient({"OLLAMA_WORKER_KEY": KEY}) as control:
        assert await control.answers_health_check(spec, 2.0)
        assert await control.ollama_loaded(spec) == [f"{SIM_MODEL}:latest"]
        assert set(await control.ollama_present(spec)) == {f"{SIM_MODEL}:latest"}
        await control.pull(spec, "phi3", lambda status, _done, _total: progress.append(status))
        assert "phi3:latest" in await control.ollama_present(spec)
        await control.delete_model(spec, "phi3")
    assert progress[0] == "pulling manifest" and progress[-1] == "success"
    paths = {r.path for r in ollama_sim.records}
    assert {"/", "/api/ps", "/api/tags", "/api/pull", "/api/delete"} <= paths
    assert {r.headers.get("authorization") for r in ollama_sim.records} == {f"Bearer {KEY}"}


async def test_a_worker_without_a_key_gets_none_not_even_ollamas_own(ollama_sim: SimulatorThread,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OLLAMA_API_KEY", "sk-meant-for-ollama-com")  # the ollama client would send it
    async with ControlClient({}) as control:
        await control.ollama_present(worker("ollama", ollama_sim.url))
    assert [r.headers.get("authorization") for r in ollama_sim.records] == [None]


async def test_ollama_errors_become_the_gateways(ollama_sim: SimulatorThread) -> None:
    async with ControlClient({}) as control:
        with pytest.raises(WorkerRejected) as caught:
            await control.delete_model(worker("ollama", ollama_sim.url), "never-pulled")
    assert caught.value.status_code() == 404 and "never-pulled" in caught.value.message


async def test_vllm_health_metrics_models_and_adapters(sim: SimulatorThread) -> None:
    spec = worker("vllm", sim.url + "/v1", key_env="VLLM_WORKER_KEY")
    async with ControlClient({"VLLM_WORKER_KEY": KEY}) as control:
        assert await control.answers_health_check(spec, 2.0)
        assert parse_vllm_metrics(await control.prometheus_metrics(spec, 2.0)).waiting == 0
        assert SIM_MODEL in await control.served_models(spec)
        await control.load_adapter(spec, "coach-lora", "/adapters/coach")
        await control.unload_adapter(spec, "coach-lora")
    sent = [r for r in sim.records if r.path in ("/health", "/metrics", "/v1/models", "/v1/load_lora_adapter",
                                                 "/v1/unload_lora_adapter")]
    assert len(sent) == 5 and {r.headers.get("authorization") for r in sent} == {f"Bearer {KEY}"}


async def test_a_worker_that_does_not_answer() -> None:
    spec = worker("ollama", f"http://127.0.0.1:{free_port()}")
    async with ControlClient({}, timeout=2.0) as control:
        assert not await control.answers_health_check(spec, 1.0)
        with pytest.raises(GatewayError, match="did not answer"):
            await control.ollama_present(spec)
        with pytest.raises(GatewayError, match="did not answer"):
            await control.pull(spec, "phi3")
