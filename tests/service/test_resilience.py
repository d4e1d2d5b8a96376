"""Retries, fallbacks, ejection and health against simulated fleets (figure 1 of reliability.md)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from contextlib import ExitStack

import httpx
import pytest

from simulator import SimulatorConfig, SimulatorThread
from testkit.figures import record_figure
from testkit.loopback import free_port
from tests.conftest import SIM_MODEL, catalog_yaml, start_gateway

CHAT = {"model": "chat", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 4}


@pytest.fixture
def fleet() -> Iterator[list[SimulatorThread]]:
    with ExitStack() as stack:
        config = SimulatorConfig(kind="vllm", models=(SIM_MODEL,), ttft_overhead_s=0.02)
        yield [stack.enter_context(SimulatorThread(config)) for _ in range(3)]


@pytest.mark.figure(1)
def test_a_killed_worker_costs_no_failed_request(fleet: list[SimulatorThread]) -> None:
    tail = "health: {interval: 0.2, timeout: 0.5}\noutlier: {consecutive_failures: 2}\n"
    text = catalog_yaml([(f"w{i}", sim.url) for i, sim in enumerate(fleet)], tail=tail)

    async def load(url: str) -> list[httpx.Response]:
        async with httpx.AsyncClient(timeout=20, limits=httpx.Limits(max_connections=200)) as client:
            async def one(i: int) -> httpx.Response:
                if i == 60:
                    await asyncio.to_thread(fleet[1].stop)  # kill a worker a third of the way in
                return await client.post(url + "/v1/chat/completions", json=CHAT)

            return list(await asyncio.gather(*(one(i) for i in range(200))))

    with start_gateway(text, background=True) as gw:
        responses = asyncio.run(load(gw.url))
        statuses = [r.status_code for r in responses]
        succeeded = statuses.count(200) / len(statuses)
        record_figure(1, "requests that succeeded (200 concurrent, one of three workers killed)",
                      round(100 * succeeded, 2), unit="%", threshold="≥ 99.9 %", met=succeeded >= 0.999)
        assert statuses.count(200) >= 0.999 * len(statuses), statuses
        retried = [r for r in responses if r.headers.get("x-gateway-attempts")]
        elsewhere = sum(r.headers["x-gateway-worker"] != "w1" for r in retried)
        record_figure(1, "retried requests that landed on another worker", f"{elsewhere}/{len(retried)}",
                      threshold="all", met=elsewhere == len(retried))
        assert all(r.headers["x-gateway-worker"] != "w1" for r in retried)
        # After the kill, the dead worker stops getting traffic: ejected or marked down.
        workers = {w["name"]: w for w in httpx.get(gw.url + "/admin/workers").json()["workers"]}
        assert workers["w1"]["outlier"].get("ejected") or not workers["w1"]["healthy"]
        after = [httpx.post(gw.url + "/v1/chat/completions", json=CHAT) for _ in range(10)]
        spared = sum(r.status_code == 200 and r.headers["x-gateway-worker"] != "w1" for r in after)
        record_figure(1, "later requests kept off the dead worker", f"{spared}/{len(after)}", threshold="all",
                      met=spared == len(after))
        assert all(r.status_code == 200 and r.headers["x-gateway-worker"] != "w1" for r in after)


def test_a_full_worker_is_retried_elsewhere_and_not_ejected() -> None:
    full = SimulatorConfig(kind="vllm", models=(SIM_MODEL,), fault="error-503")
    with SimulatorThread(full) as busy, SimulatorThread(SimulatorConfig(kind="vllm", models=(SIM_MODEL,))) as ok:
        text = catalog_yaml([("busy", busy.url), ("ok", ok.url)], tail="outlier: {consecutive_failures: 1}\n")
        with start_gateway(text) as gw:
            responses = [httpx.post(gw.url + "/v1/chat/completions", json=CHAT) for _ in range(6)]
            assert all(r.status_code == 200 and r.headers["x-gateway-worker"] == "ok" for r in responses)
            assert any(r.headers.get("x-gateway-attempts") == "2" for r in responses)
            workers = {w["name"]: w for w in httpx.get(gw.url + "/admin/workers").json()["workers"]}
            assert not workers["busy"]["outlier"].get("ejected")


def test_fallback_to_another_model_when_no_worker_can_take_it(vllm_sim: SimulatorThread) -> None:
    text = f"""
models:
  - {{name: big, fallbacks: [small]}}
  - {{name: small}}
routing: {{default_model: big}}
workers:
  - {{name: gpu, kind: vllm, base_url: "http://127.0.0.1:{free_port()}/v1", models: [big]}}
  - {{name: cpu, kind: vllm, base_url: "{vllm_sim.url}/v1", models: [{{name: small, upstream_id: {SIM_MODEL}}}]}}
"""
    with start_gateway(text) as gw:
        response = httpx.post(gw.url + "/v1/chat/completions", json={**CHAT, "model": "big"})
        assert response.status_code == 200, response.text
        assert response.headers["x-gateway-model"] == "small"
        assert response.headers["x-gateway-fallback-from"] == "big"
        assert response.headers["x-gateway-worker"] == "cpu"


def test_workers_that_never_answer_give_504_after_trying_each(fleet: list[SimulatorThread]) -> None:
    never = catalog_yaml([(f"w{i}", sim.url) for i, sim in enumerate(fleet[:2])], first_byte=0.5,
                         extra_models=("never-answer",))
    with start_gateway(never) as gw:
        response = httpx.post(gw.url + "/v1/chat/completions", json={**CHAT, "model": "never-answer"}, timeout=10)
        assert response.status_code == 504
        tried = {sim.url for sim in fleet[:2] if any(r.model == "never-answer" for r in sim.records)}
        assert len(tried) == 2  # retried on the other worker before giving up


def test_active_health_checks_mark_a_stopped_worker_down(fleet: list[SimulatorThread]) -> None:
    text = catalog_yaml([(f"w{i}", sim.url) for i, sim in enumerate(fleet)],
                        tail="health: {interval: 0.1, timeout: 0.5, unhealthy_threshold: 1}\n")
    with start_gateway(text, background=True) as gw:
        fleet[2].stop()

        def down() -> bool:
            workers = {w["name"]: w for w in httpx.get(gw.url + "/admin/workers").json()["workers"]}
            return not workers["w2"]["healthy"]

        assert fleet[0].wait_for(lambda _records: down(), timeout=5)
        responses = [httpx.post(gw.url + "/v1/chat/completions", json=CHAT) for _ in range(6)]
        assert all(r.status_code == 200 and r.headers["x-gateway-worker"] != "w2" for r in responses)
        assert all("x-gateway-attempts" not in r.headers for r in responses)  # not even tried
