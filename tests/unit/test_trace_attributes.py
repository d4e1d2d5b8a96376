"""When tracing is on, and what the spans say (tests/service/test_tracing.py has the whole traces)."""

from __future__ import annotations

import json

import pytest

from gateway.errors import UpstreamTimeout
from gateway.observability.trace_attributes import (
    answer_attributes,
    chunk_attributes,
    error_type,
    request_attributes,
    worker_attributes,
)
from gateway.observability.tracing_setup import trace_content, tracer_from_env, traces_endpoint


@pytest.mark.parametrize(("env", "endpoint"), [
    ({}, None),
    ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318/"}, "http://collector:4318/v1/traces"),
    ({"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://c:4318/custom"}, "http://c:4318/custom"),
    ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://t:1/x"},
     "http://t:1/x"),
    ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318", "OTEL_SDK_DISABLED": "TRUE"}, None),
    ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318", "OTEL_TRACES_EXPORTER": "none"}, None),
])
def test_tracing_is_on_only_with_an_endpoint(env: dict[str, str], endpoint: str | None) -> None:
    assert traces_endpoint(env) == endpoint


def test_off_builds_nothing_and_content_is_opt_in() -> None:
    assert tracer_from_env({}) is None
    assert not trace_content({})
    assert trace_content({"GATEWAY_TRACE_CONTENT": "true"})


def test_request_attributes_hold_no_prompt_unless_asked() -> None:
    body = {"model": "chat", "messages": [{"role": "user", "content": "secret"}], "max_completion_tokens": 9,
            "temperature": 0, "stream": True}
    attributes = request_attributes("chat/completions", body, content=False)
    assert attributes == {"gen_ai.operation.name": "chat", "gen_ai.request.model": "chat",
                          "gen_ai.request.max_tokens": 9, "gen_ai.request.temperature": 0, "gateway.stream": True}
    assert "secret" in str(request_attributes("chat/completions", body, content=True)["gen_ai.input.messages"])
    assert request_attributes("embeddings", {"input": "x"}, content=False)["gen_ai.operation.name"] == "embeddings"
    assert request_attributes("completions", {}, content=False)["gen_ai.operation.name"] == "text_completion"


def test_answers_and_chunks_give_the_response_attributes() -> None:
    choice = {"message": {"content": "hi"}, "finish_reason": "stop"}
    body = json.dumps({"id": "cmpl-1", "model": "m", "choices": [choice],
                       "usage": {"prompt_tokens": 3, "completion_tokens": 1}}).encode()
    assert answer_attributes(body, content=False) == {
        "gen_ai.response.id": "cmpl-1", "gen_ai.response.model": "m", "gen_ai.response.finish_reasons": ["stop"],
        "gen_ai.usage.input_tokens": 3, "gen_ai.usage.output_tokens": 1}
    assert answer_attributes(b"not json", content=False) == {}
    native = json.dumps({"id": "msg", "stop_reason": "end_turn", "usage": {"input_tokens": 2, "output_tokens": 5}})
    assert answer_attributes(native.encode(), content=False)["gen_ai.usage.output_tokens"] == 5
    chunk = {"id": "c", "model": "m", "choices": [{"index": 0, "delta": {}, "finish_reason": "length"}]}
    assert chunk_attributes(chunk)["gen_ai.response.finish_reasons"] == ["length"]


def test_workers_and_errors() -> None:
    attributes = worker_attributes(worker="w", url="https://api.example.com/v1", kind="local", upstream_model="u")
    assert attributes["server.address"] == "api.example.com"
    assert attributes["server.port"] == 443
    assert attributes["gen_ai.provider.name"] == "llama.cpp"
    assert error_type(UpstreamTimeout("slow")) == "upstream_timeout"
    assert error_type(ValueError()) == "ValueError"
