"""The forwarder's retry piece on its own (`gateway.inference.retries`): a retry starts only within the
retry budget and the request's deadline, and a full worker's refusal is counted but never held against
the worker's health. (The chain itself is exercised end to end in tests/service/test_resilience.py.)"""

from __future__ import annotations

import asyncio

import pytest

from gateway.errors import UpstreamTimeout, WorkerRejected, WorkerUnreachable, worker_error
from gateway.inference.attempt import Call
from gateway.inference.retries import Retries, is_full
from gateway.observability.metrics import GatewayMetrics
from gateway.observability.request_record import RequestRecord
from gateway.surfaces import CHAT_COMPLETIONS
from gateway.surfaces.request import InferenceRequest
from gateway.workers.active_catalog import ActiveCatalog
from routing.catalog import parse_catalog
from routing.model_choice import ModelChoice


def runtime(retries: str = "", outlier: str = "") -> ActiveCatalog:
    text = "\n".join(["models: [{name: chat}]", "routing: {default_model: chat}",
                      "workers: [{name: w, kind: vllm, base_url: 'http://127.0.0.1:9/v1', models: [chat]}]",
                      retries, outlier])
    return ActiveCatalog.build(parse_catalog(text + "\n"), {})


def call_after_one_failure(on: ActiveCatalog, deadline: float) -> Call:
    request = InferenceRequest(CHAT_COMPLETIONS, {"messages": [{"role": "user", "content": "x"}]}, stream=False)
    record = RequestRecord(request_id="req_1", method="POST", path="/v1/chat/completions", started=0.0)
    call = Call(on, request, record, ModelChoice(model="chat", route="default"), False, lambda *_: None, None)
    call.attempts, call.deadline = 1, deadline
    call.last_error = worker_error(500, b'{"error": "model runner has unexpectedly stopped"}')
    return call


def test_only_429_and_503_mean_full() -> None:
    assert is_full(worker_error(429, b"")) and is_full(worker_error(503, b""))
    assert not is_full(worker_error(500, b"")) and not is_full(worker_error(400, b""))
    assert not is_full(WorkerUnreachable("worker 'w' is unreachable"))


async def test_a_retry_waits_its_backoff_then_counts() -> None:
    metrics = GatewayMetrics()
    retries = Retries(metrics, jitter_seed=1)
    call = call_after_one_failure(runtime(), asyncio.get_running_loop().time() + 60)
    await retries.before_retry(call, "chat")
    assert metrics.registry.get_sample_value("llm_gateway_retries_total", {"model": "chat"}) == 1


async def test_no_retry_past_the_budget_the_last_error_stands() -> None:
    metrics = GatewayMetrics()
    retries = Retries(metrics)
    call = call_after_one_failure(runtime("retries: {budget_ratio: 0.2, budget_minimum: 1}"),
                                  asyncio.get_running_loop().time() + 60)
    retries.active, retries.retrying = 4, 1  # one retry in flight already: the limit for 4 requests
    with pytest.raises(WorkerRejected) as caught:
        await retries.before_retry(call, "chat")
    assert caught.value is call.last_error
    assert metrics.registry.get_sample_value("llm_gateway_retries_total", {"model": "chat"}) is None


async def test_no_retry_once_the_deadline_passed_during_the_backoff() -> None:
    retries = Retries(GatewayMetrics())
    call = call_after_one_failure(runtime("retries: {backoff_base: 0.01, backoff_cap: 0.01}"),
                                  asyncio.get_running_loop().time())
    with pytest.raises(UpstreamTimeout):
        await retries.before_retry(call, "chat")


async def test_a_full_worker_is_counted_but_never_ejected() -> None:
    metrics = GatewayMetrics()
    retries = Retries(metrics)
    on = runtime(outlier="outlier: {consecutive_failures: 2}")
    now = asyncio.get_running_loop().time()
    for _ in range(5):
        retries.count_failure(on.pool, "w", worker_error(503, b'{"error": "server busy"}'))
    assert not on.pool.outlier.is_ejected("w", now)
    assert metrics.registry.get_sample_value("llm_gateway_upstream_errors_total",
                                             {"worker": "w", "kind": "upstream_server_error"}) == 5
    for _ in range(2):
        retries.count_failure(on.pool, "w", worker_error(500, b'{"error": "model runner has unexpectedly stopped"}'))
    assert on.pool.outlier.is_ejected("w", asyncio.get_running_loop().time())
    assert metrics.registry.get_sample_value("llm_gateway_worker_ejections_total", {"worker": "w"}) == 1
