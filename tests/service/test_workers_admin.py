"""Workers at runtime: LoRA adapters become routable, Ollama pulls stream progress, drained workers get
no new requests while their streams finish, added workers reach every replica through Redis."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator

import httpx
import pytest

from simulator import SimulatorConfig, SimulatorThread
from tests.conftest import SIM_MODEL, catalog_yaml, start_gateway

ADMIN_KEY = "sk-gw-admin-workers-tests"
ADMIN = {"authorization": f"Bearer {ADMIN_KEY}"}
CHAT = {"model": "chat", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 8}


def chat(url: str, **extra: object) -> httpx.Response:
    return httpx.post(url + "/v1/chat/completions", json={**CHAT, **extra}, headers=ADMIN, timeout=20)


@pytest.fixture
def pair() -> Iterator[tuple[SimulatorThread, SimulatorThread]]:
    config = SimulatorConfig(kind="vllm", models=(SIM_MODEL,))
    with SimulatorThread(config) as a, SimulatorThread(config) as b:
        yield a, b


def test_a_loaded_lora_adapter_is_routable(vllm_sim: SimulatorThread) -> None:
    with start_gateway(catalog_yaml([("w", vllm_sim.url)]), GATEWAY_ADMIN_KEY=ADMIN_KEY) as gw:
        assert chat(gw.url, model="coach-lora").status_code == 404
        loaded = httpx.post(gw.url + "/admin/workers/w/adapters", headers=ADMIN,
                            json={"lora_name": "coach-lora", "lora_path": "/adapters/coach"})
        assert loaded.status_code == 201, loaded.text
        answer = chat(gw.url, model="coach-lora")
        assert answer.status_code == 200 and answer.headers["x-gateway-worker"] == "w"
        assert any(r.model == "coach-lora" for r in vllm_sim.records)
        assert "coach-lora" in [m["id"] for m in httpx.get(gw.url + "/v1/models", headers=ADMIN).json()["data"]]
        assert httpx.delete(gw.url + "/admin/workers/w/adapters/coach-lora", headers=ADMIN).status_code == 200
        assert chat(gw.url, model="coach-lora").status_code == 404


def test_ollama_pull_streams_progress_and_delete_removes() -> None:
    with SimulatorThread(SimulatorConfig(kind="ollama", models=("llama3.2:3b",))) as ollama:
        text = f"models: [{{name: small}}]\nworkers:\n  - {{name: cpu, kind: ollama, base_url: '{ollama.url}', " \
               "models: [{name: small, upstream_id: 'llama3.2:3b'}]}\n"
        with start_gateway(text, GATEWAY_ADMIN_KEY=ADMIN_KEY) as gw:
            with httpx.stream("POST", gw.url + "/admin/workers/cpu/models/pull", json={"model": "phi3"},
                              headers=ADMIN) as response:
                assert response.headers["content-type"].startswith("application/x-ndjson")
                lines = [json.loads(line) for line in response.iter_lines() if line]
            assert len(lines) > 2 and lines[-1]["status"] == "success"
            assert any(line.get("total") for line in lines)
            names = {m["name"] for m in httpx.get(ollama.url + "/api/tags").json()["models"]}
            assert any(n.startswith("phi3") for n in names)
            assert httpx.delete(gw.url + "/admin/workers/cpu/models/phi3", headers=ADMIN).status_code == 200
            names = {m["name"] for m in httpx.get(ollama.url + "/api/tags").json()["models"]}
            assert not any(n.startswith("phi3") for n in names)


def test_a_drained_worker_gets_nothing_new_while_its_stream_finishes(
        pair: tuple[SimulatorThread, SimulatorThread]) -> None:
    a, b = pair
    text = catalog_yaml([("a", a.url), ("b", b.url)], extra_models=("slow",))
    with start_gateway(text, GATEWAY_ADMIN_KEY=ADMIN_KEY) as gw:
        finished: list[int] = []

        def long_stream() -> None:
            body = {**CHAT, "model": "slow", "stream": True, "max_tokens": 6}
            with httpx.stream("POST", gw.url + "/v1/chat/completions", json=body, headers=ADMIN, timeout=30) as r:
                finished.append(sum(1 for line in r.iter_lines() if line == "data: [DONE]"))

        streams = [threading.Thread(target=long_stream) for _ in range(2)]
        for thread in streams:
            thread.start()
        assert a.wait_for(lambda records: any(r.model == "slow" for r in records), timeout=5)
        assert httpx.post(gw.url + "/admin/workers/a/drain", headers=ADMIN).status_code == 200
        before = len([r for r in a.records if r.path == "/v1/chat/completions"])
        answers = [chat(gw.url) for _ in range(6)]
        assert all(r.status_code == 200 and r.headers["x-gateway-worker"] == "b" for r in answers)
        assert len([r for r in a.records if r.path == "/v1/chat/completions"]) == before
        for thread in streams:
            thread.join()
        assert finished == [1, 1]  # the streams already on the drained worker completed
        workers = {w["name"]: w for w in httpx.get(gw.url + "/admin/workers", headers=ADMIN).json()["workers"]}
        assert workers["a"]["drained"] is True
        assert httpx.post(gw.url + "/admin/workers/a/resume", headers=ADMIN).status_code == 200
        assert {chat(gw.url).headers["x-gateway-worker"] for _ in range(6)} == {"a", "b"}


def test_workers_added_at_runtime_reach_every_replica(pair: tuple[SimulatorThread, SimulatorThread],
                                                      redis_url: str) -> None:
    import redis

    client = redis.Redis.from_url(redis_url)
    client.delete("llmgw:workers:overlay")
    client.close()
    a, b = pair
    text = catalog_yaml([("a", a.url)], tail="health: {interval: 0.2}\n") \
        .replace("  - name: quick\n", "  - name: quick\n  - name: extra\n")
    with start_gateway(text, background=True, GATEWAY_ADMIN_KEY=ADMIN_KEY, REDIS_URL=redis_url) as one, \
            start_gateway(text, background=True, GATEWAY_ADMIN_KEY=ADMIN_KEY, REDIS_URL=redis_url) as two:
        spec = {"name": "b", "kind": "vllm", "base_url": b.url + "/v1", "models": [
            {"name": "extra", "upstream_id": SIM_MODEL}]}
        added = httpx.post(one.url + "/admin/workers", json=spec, headers=ADMIN)
        assert added.status_code == 201, added.text
        assert chat(one.url, model="extra").headers["x-gateway-worker"] == "b"
        deadline = time.monotonic() + 5
        while "extra" not in [m["id"] for m in httpx.get(two.url + "/v1/models", headers=ADMIN).json()["data"]]:
            assert time.monotonic() < deadline, "the other replica never saw the added worker"
            threading.Event().wait(0.05)
        assert chat(two.url, model="extra").headers["x-gateway-worker"] == "b"
        bad = httpx.post(one.url + "/admin/workers", json={**spec, "name": "c", "models": ["nope"]}, headers=ADMIN)
        assert bad.status_code == 400 and "unknown model 'nope'" in bad.json()["error"]["message"]
        assert httpx.delete(one.url + "/admin/workers/b", headers=ADMIN).status_code == 200
        assert chat(one.url, model="extra").status_code == 503  # still a catalog model, now without a worker


