"""Metrics equal what clients observed; probes; one canonical log line per request; no secret in any
log, error body or metric at DEBUG (figure 13); readiness fails while draining."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import structlog
from prometheus_client.parser import text_string_to_metric_families

from gateway import create_app, load_settings
from gateway.observability.metrics import GatewayMetrics
from routing.catalog import parse_catalog
from simulator import SimulatorThread
from testkit.figures import record_figure
from testkit.loopback import free_port
from tests.conftest import catalog_yaml
from tests.servers import ServerThread

CHAT = {"model": "chat", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 6}


def samples(text: str, name: str) -> list[tuple[dict[str, str], float]]:
    return [(s.labels, s.value) for family in text_string_to_metric_families(text) for s in family.samples
            if s.name == name]


def total(text: str, name: str, **labels: str) -> float:
    return sum(v for lab, v in samples(text, name) if all(lab.get(k) == val for k, val in labels.items()))


@pytest.fixture
def observed(vllm_sim: SimulatorThread) -> Iterator[tuple[ServerThread, GatewayMetrics]]:
    metrics = GatewayMetrics()
    text = catalog_yaml([("w", vllm_sim.url)], extra_models=("error-500",))
    app = create_app(load_settings({"LOG_LEVEL": "debug"}), parse_catalog(text), background=False, metrics=metrics)
    with ServerThread(app) as gw:
        yield gw, metrics


def test_metrics_equal_what_clients_observed(observed: tuple[ServerThread, GatewayMetrics]) -> None:
    gw, _ = observed
    prompt = completion = 0
    statuses: list[int] = []
    for _ in range(5):
        response = httpx.post(gw.url + "/v1/chat/completions", json=CHAT)
        statuses.append(response.status_code)
        prompt += response.json()["usage"]["prompt_tokens"]
        completion += response.json()["usage"]["completion_tokens"]
    for _ in range(3):
        body = {**CHAT, "stream": True, "stream_options": {"include_usage": True}}
        with httpx.stream("POST", gw.url + "/v1/chat/completions", json=body) as stream:
            statuses.append(stream.status_code)
            last = [line for line in stream.iter_lines() if line.startswith("data: {")][-1]
        usage = json.loads(last[6:])["usage"]
        prompt, completion = prompt + usage["prompt_tokens"], completion + usage["completion_tokens"]
    statuses += [httpx.post(gw.url + "/v1/chat/completions", json={**CHAT, "model": "error-500"}).status_code,
                 httpx.post(gw.url + "/v1/chat/completions", json={**CHAT, "model": "nope"}).status_code]
    name = "llm_gateway_requests_total"
    deadline = time.monotonic() + 5  # each request is counted once its answer is out: wait for the last
    while total(text := httpx.get(gw.url + "/metrics").text, name, endpoint="chat/completions") < 10:
        assert time.monotonic() < deadline
        threading.Event().wait(0.01)
    assert total(text, name, endpoint="chat/completions", status_class="2xx") == statuses.count(200) == 8
    assert total(text, name, endpoint="chat/completions", status_class="5xx") == 1
    assert total(text, name, endpoint="chat/completions", status_class="4xx") == 1
    assert total(text, "llm_gateway_tokens_total", direction="prompt") == prompt
    assert total(text, "llm_gateway_tokens_total", direction="completion") == completion
    assert total(text, "llm_gateway_time_to_first_token_seconds_count", model="chat") == 3
    assert total(text, "llm_gateway_request_duration_seconds_count", endpoint="chat/completions") == 10
    assert total(text, "llm_gateway_overhead_seconds_count") >= 8
    assert total(text, "llm_gateway_upstream_errors_total", worker="w") == 1
    assert total(text, "llm_gateway_worker_up", worker="w") == 1
    assert total(text, "llm_gateway_in_flight_requests") == 1  # the scrape itself
    seed = httpx.get(gw.url + "/api/metrics").json()
    assert seed["requests_total"] == 10 and seed["errors_total"] == 1  # probes and scrapes not counted
    assert set(seed) == {"requests_total", "cache_hits", "cache_misses", "errors_total", "active_connections"}
    for family in text_string_to_metric_families(text):  # no raw paths or text as label values
        for sample in family.samples:
            assert not any("/" in v and v != "chat/completions" for v in sample.labels.values()), sample


def test_probes(observed: tuple[ServerThread, GatewayMetrics], vllm_sim: SimulatorThread) -> None:
    gw, _ = observed
    assert httpx.get(gw.url + "/livez").json() == {"status": "alive"}
    assert httpx.head(gw.url + "/").status_code == 200  # Claude Code probes the root before its first call
    assert httpx.get(gw.url + "/").json()["name"] == "llm-gateway"
    ready = httpx.get(gw.url + "/readyz")
    assert ready.status_code == 200 and ready.json()["status"] == "ready"
    health = httpx.get(gw.url + "/health").json()
    assert health["status"] == "ok" and health["services"] == {"w": "healthy"}
    assert health["timestamp"].endswith("Z")


def test_readiness_needs_a_worker_per_required_model() -> None:
    text = "models: [{name: chat, required: true}]\nrouting: {default_model: chat}\n"
    with ServerThread(create_app(load_settings({}), parse_catalog(text), background=False)) as gw:
        ready = httpx.get(gw.url + "/readyz")
        assert ready.status_code == 503
        assert ready.json()["problems"] == ["no healthy worker for required model 'chat'"]


def test_one_canonical_log_line_per_request(observed: tuple[ServerThread, GatewayMetrics]) -> None:
    gw, _ = observed
    with structlog.testing.capture_logs() as logs:
        httpx.post(gw.url + "/v1/chat/completions", json=CHAT, headers={"x-request-id": "log-1"})
        httpx.post(gw.url + "/v1/chat/completions", json={**CHAT, "model": "nope"}, headers={"x-request-id": "log-2"})
        httpx.get(gw.url + "/livez", headers={"x-request-id": "log-3"})
        deadline = time.monotonic() + 5  # the line is written once the response is out: wait for it
        while not any(e.get("request_id") == "log-3" for e in logs):
            assert time.monotonic() < deadline
            threading.Event().wait(0.01)
    lines = [e for e in logs if e["event"] == "request"]
    by_id = {e["request_id"]: e for e in lines}
    assert [e["request_id"] for e in lines].count("log-1") == 1
    ok = by_id["log-1"]
    assert ok["status"] == 200 and ok["model"] == "chat" and ok["worker"] == "w" and ok["route"] == "explicit"
    assert ok["tokens_in"] > 0 and ok["tokens_out"] > 0 and ok["duration_ms"] > 0 and ok["log_level"] == "info"
    assert by_id["log-2"]["status"] == 404 and by_id["log-2"]["error"] == "model_not_found"
    assert by_id["log-3"]["log_level"] == "debug"  # probes stay out of info logs


@pytest.mark.figure(13)
def test_no_secret_in_logs_errors_or_metrics_at_debug(vllm_sim: SimulatorThread, tmp_path: Path) -> None:
    admin, user, worker_key = "sk-gw-admin-0123456789", "sk-gw-user-0123456789", "worker-secret-0123456789"
    catalog = tmp_path / "models.yaml"
    catalog.write_text(catalog_yaml([("w", vllm_sim.url)]).replace("    kind: vllm\n",
                                                                    "    kind: vllm\n    api_key_env: W_API_KEY\n"))
    port = free_port()
    env = {**os.environ, "GATEWAY_PORT": str(port), "LOG_LEVEL": "debug", "GATEWAY_ADMIN_KEY": admin,
           "LLM_API_KEY": user, "W_API_KEY": worker_key}
    log = tmp_path / "gateway.log"
    with log.open("wb") as out:
        process = subprocess.Popen([sys.executable, "-m", "gateway", "serve", "--no-local-workers", "--config",
                                    str(catalog)], env=env, stdout=out, stderr=subprocess.STDOUT)
        url, bodies = f"http://127.0.0.1:{port}", []
        try:
            deadline = time.monotonic() + 20
            while True:
                try:
                    httpx.get(url + "/livez", timeout=1)
                    break
                except httpx.HTTPError:
                    assert time.monotonic() < deadline
                    threading.Event().wait(0.1)
            for headers in ({"authorization": f"Bearer {user}"}, {"x-api-key": user}, {"api-key": "sk-gw-wrong-999999"},
                            {"authorization": f"Bearer {admin}"}, {"authorization": "Bearer sk-gw-also-wrong-1234"}):
                for path, body in (("/v1/chat/completions", CHAT), ("/v1/chat/completions", {"model": "x"}),
                                   ("/admin/keys", {})):
                    bodies.append(httpx.post(url + path, json=body, headers=headers).text)
            bodies.append(httpx.post(url + "/v1/chat/completions", json={**CHAT, "stream": True},
                                     headers={"authorization": f"Bearer {user}"}).text)
            bodies.append(httpx.get(url + "/metrics").text)
        finally:
            process.send_signal(signal.SIGINT)
            process.wait(timeout=15)
    text = log.read_text() + "\n".join(bodies)
    logged = [json.loads(line) for line in log.read_text().splitlines() if line.startswith("{")]
    assert any(line.get("event") == "request" for line in logged)  # the logs were really written, at debug
    secrets = (admin, user, worker_key, "sk-gw-wrong-999999", "sk-gw-also-wrong-1234")
    leaked = [secret for secret in secrets if secret in text]
    record_figure(13, "secrets found in DEBUG logs, error bodies and /metrics", len(leaked),
                  threshold="0", met=not leaked)
    assert not leaked, leaked
    # The worker got its own key, never a client's.
    assert any(r.headers.get("authorization") == f"Bearer {worker_key}" for r in vllm_sim.records)
    assert not any(user in str(r.headers) or admin in str(r.headers) for r in vllm_sim.records)


def test_readiness_fails_at_once_on_sigterm_while_serving(vllm_sim: SimulatorThread, tmp_path: Path) -> None:
    catalog = tmp_path / "models.yaml"
    catalog.write_text(catalog_yaml([("w", vllm_sim.url)]))
    port = free_port()
    env = {**os.environ, "GATEWAY_PORT": str(port), "LOG_LEVEL": "warning", "GATEWAY_DRAIN_SECONDS": "3"}
    process = subprocess.Popen([sys.executable, "-m", "gateway", "serve", "--no-local-workers", "--config",
                                str(catalog)], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                if httpx.get(url + "/readyz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline
            threading.Event().wait(0.1)
        process.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + 1
        while httpx.get(url + "/readyz").status_code != 503:
            assert time.monotonic() < deadline, "readiness did not fail within 1 s of SIGTERM"
        assert httpx.get(url + "/livez").status_code == 200
        refused = httpx.post(url + "/v1/chat/completions", json=CHAT)  # new requests go elsewhere
        assert refused.status_code == 503 and refused.json()["error"]["code"] == "shutting_down"
        assert refused.headers["retry-after"] == "1" and refused.headers["connection"] == "close"
        assert process.wait(timeout=10) in (0, -signal.SIGTERM)  # uvicorn re-raises the signal it handled
    finally:
        if process.poll() is None:
            process.kill()
