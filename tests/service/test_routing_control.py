"""Routing you can see and change: explain, rules under test, hot reload, DNS discovery."""

from __future__ import annotations

import asyncio
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from gateway.cli.entry import main
from gateway.workers.dns_discovery import resolve_members
from routing.catalog import parse_catalog
from simulator import SimulatorThread
from tests.conftest import catalog_yaml, start_gateway
from tests.servers import ServerThread

CONFIG = Path(__file__).parents[2] / "config"


def test_explain_without_calling_a_worker(gateway: ServerThread, sim: SimulatorThread) -> None:
    body = {"messages": [{"role": "user", "content": "a quick reminder"}]}
    decision = httpx.post(gateway.url + "/v1/routing/explain", json=body).json()
    assert decision["model"] == "quick" and decision["route"] == "quick-rule"
    assert decision["candidates"][0]["workers"][0]["name"] == "sim-a"
    assert not [r for r in sim.records if r.path.startswith("/v1/chat")]
    unknown = httpx.post(gateway.url + "/v1/routing/explain", json={**body, "model": "nope"})
    assert unknown.status_code == 404 and unknown.json()["error"]["param"] == "model"


def test_explain_shows_each_workers_load_and_the_choice_without_taking_a_turn(sim: SimulatorThread) -> None:
    text = catalog_yaml([("a", sim.url), ("b", sim.url)], tail="health: {interval: 0.1, timeout: 1}\n")
    body = {"model": "chat", "messages": [{"role": "user", "content": "which worker?"}]}
    with start_gateway(text, background=True) as gw:
        def explain() -> dict[str, Any]:
            decision: dict[str, Any] = httpx.post(gw.url + "/v1/routing/explain", json=body).json()["candidates"][0]
            return decision

        deadline = time.monotonic() + 10
        decision = explain()
        while any(w["scrape_age_s"] is None for w in decision["workers"]):  # not scraped yet
            assert time.monotonic() < deadline, decision
            threading.Event().wait(0.05)
            decision = explain()
        assert decision["policy"] == "least_outstanding" and "least estimated load" in decision["reason"]
        for worker in decision["workers"]:
            assert worker["running"] == 0 and worker["own_at_scrape"] == 0 and worker["in_flight"] == 0
            assert worker["load"] == worker["score"] == 0 and worker["others"] == 0 and worker["eligible"]
            assert worker["prefilling"] == 0 and worker["queued"] == 0
        chosen = [w["name"] for w in decision["workers"] if w["chosen"]]
        assert chosen == [decision["chosen"]] and explain()["chosen"] == decision["chosen"]
        answer = httpx.post(gw.url + "/v1/chat/completions", json=body)  # explaining took no turn
        assert answer.headers["x-gateway-worker"] == decision["chosen"]


def test_shipped_route_cases_pass(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["routes", "test", str(CONFIG / "route_cases.yaml")]) == 0
    assert "6 passed, 0 failed" in capsys.readouterr().out


def test_a_failing_route_case_fails_the_command(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cases = tmp_path / "cases.yaml"
    cases.write_text("cases:\n  - request: {messages: [{role: user, content: 'a quick tip'}]}\n"
                     "    expect: mistral\n")
    assert main(["routes", "test", str(cases), "--config", str(CONFIG / "models.yaml")]) == 1
    out = capsys.readouterr().out
    assert "FAIL cases[0]: llama3.2:3b via routes[0] (expected mistral)" in out


def test_hot_reload_under_load_fails_no_request(vllm_sim: SimulatorThread, tmp_path: Path) -> None:
    path = tmp_path / "models.yaml"
    first = catalog_yaml([("w", vllm_sim.url)])
    path.write_text(first)
    second = catalog_yaml([("w", vllm_sim.url), ("w2", vllm_sim.url)], extra_models=("added",))
    with start_gateway(first, source=str(path)) as gw:
        failures: list[int] = []
        stop = threading.Event()

        def load() -> None:
            with httpx.Client(timeout=10) as client:
                while not stop.is_set():
                    r = client.post(gw.url + "/v1/chat/completions",
                                    json={"model": "chat", "messages": [{"role": "user", "content": "x"}]})
                    if r.status_code != 200:
                        failures.append(r.status_code)

        threads = [threading.Thread(target=load) for _ in range(4)]
        for t in threads:
            t.start()
        try:
            for text in (second, first, second):
                path.write_text(text)
                assert httpx.post(gw.url + "/admin/reload").status_code == 200
        finally:
            stop.set()
            for t in threads:
                t.join()
        assert failures == []
        assert "added" in [m["id"] for m in httpx.get(gw.url + "/v1/models").json()["data"]]

        path.write_text(second.replace("default_model: chat", "default_model: nowhere"))
        rejected = httpx.post(gw.url + "/admin/reload")
        assert rejected.status_code == 400
        assert "$.routing.default_model: unknown model 'nowhere'" in rejected.json()["error"]["message"]
        ok = httpx.post(gw.url + "/v1/chat/completions", json={"messages": [{"role": "user", "content": "x"}]})
        assert ok.status_code == 200 and ok.headers["x-gateway-model"] == "chat"  # the old catalog stays


def test_dns_discovery_gives_one_worker_per_address() -> None:
    catalog = parse_catalog("models: [{name: m}]\nworkers:\n  - {name: vllm, kind: vllm, discovery: dns, "
                            "base_url: 'http://localhost:8000/v1', models: [m]}\n")
    members = asyncio.run(resolve_members(catalog.workers[0]))
    assert "vllm@127.0.0.1" in [m.name for m in members]
    member = next(m for m in members if m.name == "vllm@127.0.0.1")
    assert member.url == "http://127.0.0.1:8000/v1" and member.discovery == "static"
