"""Pass-through surfaces (`gateway.surfaces.passthrough`): rerank, score, tokenize and detokenize reach a
worker of the model whose protocol serves them (the simulated vLLM here), in the worker's own shapes and
at its own paths (`/tokenize` at the worker's root, not under `/v1`); a model none of whose workers
serves the surface is the client's 400 naming `model`, before any worker is called."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from simulator import SimulatorThread
from tests.conftest import SIM_MODEL, start_gateway
from tests.servers import ServerThread


@pytest.fixture(scope="module")
def gateway(vllm_sim: SimulatorThread) -> Iterator[ServerThread]:
    catalog = f"""
models: [{{name: chat}}, {{name: pulled}}]
routing: {{default_model: chat}}
workers:
  - {{name: vllm-a, kind: vllm, base_url: "{vllm_sim.url}/v1", models: [{{name: chat, upstream_id: {SIM_MODEL}}}]}}
  - {{name: ollama-a, kind: ollama, base_url: "http://127.0.0.1:9", models: [pulled]}}
"""
    with start_gateway(catalog) as server:
        yield server


def post(gateway: ServerThread, path: str, body: dict[str, Any]) -> httpx.Response:
    return httpx.post(gateway.url + path, json=body, timeout=10)


@pytest.mark.parametrize("path", ["/v1/rerank", "/rerank"])
def test_rerank_reaches_the_worker_and_comes_back_as_it_answered(gateway: ServerThread, sim: SimulatorThread,
                                                                 path: str) -> None:
    answer = post(gateway, path, {"model": "chat", "query": "a morning habit", "top_n": 2,
                                  "documents": ["run every morning", "eat a good breakfast", "sleep well"]})
    assert answer.status_code == 200, answer.text
    results = answer.json()["results"]
    assert len(results) == 2 and results[0]["relevance_score"] >= results[1]["relevance_score"]
    assert answer.headers["x-gateway-worker"] == "vllm-a"
    [record] = [r for r in sim.records if r.path == "/v1/rerank"]
    assert record.body is not None and record.body["model"] == SIM_MODEL  # the worker's own id of the model


def test_score_tokenize_and_detokenize(gateway: ServerThread, sim: SimulatorThread) -> None:
    scored = post(gateway, "/v1/score", {"model": "chat", "text_1": "habit", "text_2": ["run", "sleep"]})
    assert scored.status_code == 200 and len(scored.json()["data"]) == 2
    tokens = post(gateway, "/tokenize", {"model": "chat", "prompt": "Hello there, friend"})
    assert tokens.status_code == 200 and tokens.json()["count"] == len(tokens.json()["tokens"]) > 0
    text = post(gateway, "/detokenize", {"model": "chat", "tokens": [1, 2]})
    assert text.status_code == 200 and text.json()["prompt"] == "tok1tok2"
    assert {"/v1/score", "/tokenize", "/detokenize"} <= {r.path for r in sim.records}  # at the worker's root


def test_a_model_whose_workers_do_not_serve_the_surface_is_a_400(gateway: ServerThread) -> None:
    refused = post(gateway, "/v1/rerank", {"model": "pulled", "query": "q", "documents": ["d"]})
    assert refused.status_code == 400
    error = refused.json()["error"]
    assert error["param"] == "model" and error["code"] == "unsupported_by_model"
    assert "Rerank" in error["message"] and "ollama" in error["message"]


@pytest.mark.parametrize(("path", "body", "param"), [
    ("/v1/rerank", {"model": "chat", "query": "q"}, "documents"),
    ("/v1/rerank", {"model": "chat", "query": "q", "documents": []}, "documents"),
    ("/v1/rerank", {"model": "chat", "query": "q", "documents": ["d"], "top_n": 0}, "top_n"),
    ("/v1/rerank", {"model": "chat", "query": "q", "documents": ["d"], "stream": True}, "stream"),
    ("/v1/score", {"model": "chat", "text_1": "a"}, "text_2"),
    ("/tokenize", {"model": "chat"}, "prompt"),
    ("/detokenize", {"model": "chat", "tokens": ["a"]}, "tokens"),
])
def test_malformed_requests_name_the_field(gateway: ServerThread, path: str, body: dict[str, Any],
                                           param: str) -> None:
    refused = post(gateway, path, body)
    assert refused.status_code == 400 and refused.json()["error"]["param"] == param
