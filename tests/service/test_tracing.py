"""OpenTelemetry traces of real `llm-gateway serve` processes in front of simulated vLLM workers, exported
over OTLP/HTTP to a real receiver on loopback and decoded there; the official openai SDK as the client.

What a trace reader relies on: the span tree (the SERVER span, and under it auth, the cache lookup,
admission, each worker attempt and the stream), the GenAI attributes and token counts, the client's
trace joined, the worker reached with the attempt's `traceparent`, no prompt text unless asked for,
and nothing at all while tracing is off.
"""

from __future__ import annotations

import secrets
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from pathlib import Path

import openai
import pytest

from benchmarks.harness import configs
from simulator import SimulatorConfig, SimulatorThread
from testkit.otlp_receiver import OtlpReceiver, ReceivedSpan
from tests.conftest import SIM_MODEL, catalog_yaml
from tests.servers import gateway_processes

PROMPT = "a secret prompt about the moon"
SERVER, CLIENT = 2, 3  # OTLP span kinds
ERROR = 2  # OTLP status code


@pytest.fixture
def receiver() -> Iterator[OtlpReceiver]:
    with OtlpReceiver(keep=True) as receiver:
        yield receiver


def traced_env(receiver: OtlpReceiver, **more: str) -> dict[str, str]:
    """A gateway that traces to `receiver`, with anonymous limits (an admission step) and the cache on."""
    return {"OTEL_EXPORTER_OTLP_ENDPOINT": receiver.endpoint, "OTEL_BSP_SCHEDULE_DELAY": "100",
            "RATE_LIMIT_RPM": "100000", "GATEWAY_CACHE": "true", "GATEWAY_DRAIN_SECONDS": "0", **more}


def catalog_file(tmp_path: Path, workers: list[tuple[str, str]]) -> Path:
    path = tmp_path / "catalog.yaml"
    path.write_text(catalog_yaml(workers), encoding="utf-8")
    return path


def wait_for_spans(receiver: OtlpReceiver, trace_id: str, done: Callable[[list[ReceivedSpan]], bool],
                   timeout: float = 10.0) -> list[ReceivedSpan]:
    deadline = time.monotonic() + timeout
    while True:
        spans = [s for s in receiver.spans if s.trace_id == trace_id]
        if done(spans) or time.monotonic() > deadline:
            return spans
        threading.Event().wait(0.05)


def server_span(spans: list[ReceivedSpan]) -> ReceivedSpan:
    [server] = [s for s in spans if s.kind == SERVER]
    return server


def client_traceparent() -> tuple[str, str, str]:
    trace_id, span_id = secrets.token_hex(16), secrets.token_hex(8)
    return trace_id, span_id, f"00-{trace_id}-{span_id}-01"


def test_a_streamed_chat_is_one_trace_joined_to_the_clients_and_the_workers(tmp_path: Path,
                                                                            receiver: OtlpReceiver) -> None:
    trace_id, client_span_id, traceparent = client_traceparent()
    with SimulatorThread(SimulatorConfig(kind="vllm", models=(SIM_MODEL,), seed=3)) as sim:
        # Exported only in the batch that the gateway's exit flushes: shutting down loses no span.
        env = traced_env(receiver, OTEL_BSP_SCHEDULE_DELAY="600000", OTEL_SERVICE_NAME="")
        with gateway_processes(catalog_file(tmp_path, [("sim-a", sim.url)]), env) as [(url, _)]:
            client = openai.OpenAI(base_url=url + "/v1", api_key="unused", max_retries=0)
            stream = client.chat.completions.create(
                model="chat", messages=[{"role": "user", "content": PROMPT}], max_tokens=8, stream=True,
                extra_headers={"traceparent": traceparent})
            text = "".join(chunk.choices[0].delta.content or "" for chunk in stream if chunk.choices)
            assert text
            assert not wait_for_spans(receiver, trace_id, bool, timeout=0.5)  # nothing before the exit
        [worker_request] = [r for r in sim.records if r.path == "/v1/chat/completions"]
    spans = wait_for_spans(receiver, trace_id, lambda s: any(x.kind == SERVER for x in s))

    server = server_span(spans)
    assert server.name == "POST /v1/chat/completions"
    assert server.parent_span_id == client_span_id  # the client's trace, joined
    assert server.resource["service.name"] == "llm-gateway"
    children = {s.name: s for s in spans if s.parent_span_id == server.span_id}
    assert set(children) == {"auth", "cache lookup", "admission", f"chat {SIM_MODEL}", "stream"}
    assert len(spans) == 1 + len(children)
    assert server.attributes["http.request.method"] == "POST"
    assert server.attributes["url.path"] == "/v1/chat/completions"
    assert server.attributes["http.response.status_code"] == 200
    assert server.attributes["gen_ai.operation.name"] == "chat"
    assert server.attributes["gen_ai.request.model"] == "chat"
    assert server.attributes["gen_ai.request.max_tokens"] == 8
    assert children["cache lookup"].attributes["gateway.cache.result"] == "bypass"

    attempt = children[f"chat {SIM_MODEL}"]
    assert attempt.kind == CLIENT
    assert attempt.attributes["gateway.attempt"] == 1
    assert attempt.attributes["gateway.worker"] == "sim-a"
    assert attempt.attributes["server.address"] == "127.0.0.1"
    assert attempt.attributes["server.port"] == sim.port
    assert attempt.attributes["gen_ai.provider.name"] == "vllm"
    assert attempt.attributes["gen_ai.request.model"] == SIM_MODEL
    assert attempt.attributes["gen_ai.response.finish_reasons"]
    for span in (attempt, server):
        assert span.attributes["gen_ai.usage.input_tokens"] == worker_request.prompt_tokens
        assert span.attributes["gen_ai.usage.output_tokens"] == worker_request.completion_tokens
    assert children["stream"].events == ("first_token",)
    assert children["stream"].attributes["gateway.stream.completed"] is True

    # The worker was sent the attempt's context: vLLM's spans become the attempt's children.
    assert worker_request.headers["traceparent"].split("-")[1:3] == [trace_id, attempt.span_id]
    assert not any(PROMPT in str(value) for span in spans for value in span.attributes.values())


def test_a_retry_is_two_attempt_spans_and_content_goes_in_only_when_asked(tmp_path: Path,
                                                                           receiver: OtlpReceiver) -> None:
    with ExitStack() as stack:
        full = stack.enter_context(SimulatorThread(SimulatorConfig(kind="vllm", models=(SIM_MODEL,),
                                                                   fault="error-503")))
        good = stack.enter_context(SimulatorThread(SimulatorConfig(kind="vllm", models=(SIM_MODEL,), seed=5)))
        catalog = catalog_file(tmp_path, [("full", full.url), ("good", good.url)])
        env = traced_env(receiver, GATEWAY_TRACE_CONTENT="true")
        with gateway_processes(catalog, env) as [(url, _)]:
            client = openai.OpenAI(base_url=url + "/v1", api_key="unused", max_retries=0)
            for _ in range(20):  # until a request meets the full worker first
                trace_id, _span, traceparent = client_traceparent()
                raw = client.chat.completions.with_raw_response.create(
                    model="chat", messages=[{"role": "user", "content": PROMPT}], max_tokens=4,
                    extra_headers={"traceparent": traceparent})
                if raw.headers.get("x-gateway-attempts") == "2":
                    break
            else:
                pytest.fail("no request was retried")
            answer = raw.parse()
            spans = wait_for_spans(receiver, trace_id, lambda s: any(x.kind == SERVER for x in s))

    server = server_span(spans)
    attempts = sorted((s for s in spans if s.kind == CLIENT), key=lambda s: s.attributes["gateway.attempt"])
    assert [a.attributes["gateway.attempt"] for a in attempts] == [1, 2]
    assert [a.attributes["gateway.worker"] for a in attempts] == ["full", "good"]
    assert all(a.parent_span_id == server.span_id for a in attempts)
    failed, answered = attempts
    assert failed.status_code == ERROR and failed.attributes["error.type"]
    assert answered.status_code != ERROR and "error.type" not in answered.attributes
    assert server.attributes["gateway.attempts"] == 2
    assert server.attributes["gen_ai.response.finish_reasons"] == [answer.choices[0].finish_reason]
    assert answer.usage is not None
    assert answered.attributes["gen_ai.usage.input_tokens"] == answer.usage.prompt_tokens
    assert answered.attributes["gen_ai.usage.output_tokens"] == answer.usage.completion_tokens
    assert answered.attributes["gen_ai.response.model"]
    assert "stream" not in {s.name for s in spans}
    # Each worker got its own attempt's context.
    sent = {r.headers["traceparent"].split("-")[2] for sim in (full, good) for r in sim.records
            if r.headers.get("traceparent", "").split("-")[1:2] == [trace_id]}
    assert sent == {failed.span_id, answered.span_id}
    # GATEWAY_TRACE_CONTENT=true: the prompt and the answer are in the attempt's span.
    assert PROMPT in answered.attributes["gen_ai.input.messages"]
    assert (answer.choices[0].message.content or "") in answered.attributes["gen_ai.output.messages"]


def test_an_audio_upload_is_traced_and_its_worker_joins(tmp_path: Path, receiver: OtlpReceiver) -> None:
    trace_id, _span, traceparent = client_traceparent()
    with SimulatorThread(SimulatorConfig(kind="vllm", models=(SIM_MODEL,))) as sim:
        with gateway_processes(catalog_file(tmp_path, [("sim-a", sim.url)]), traced_env(receiver)) as [(url, _)]:
            client = openai.OpenAI(base_url=url + "/v1", api_key="unused", max_retries=0)
            text = client.audio.transcriptions.create(model="chat", file=("a.wav", b"\x00" * 1000),
                                                      extra_headers={"traceparent": traceparent}).text
            assert text == "transcribed 1000 bytes"
            spans = wait_for_spans(receiver, trace_id, lambda s: any(x.kind == SERVER for x in s))
        [upload] = [r for r in sim.records if r.path == "/v1/audio/transcriptions"]
    server = server_span(spans)
    assert server.name == "POST /v1/audio/transcriptions"
    [attempt] = [s for s in spans if s.kind == CLIENT]
    assert attempt.parent_span_id == server.span_id
    assert attempt.attributes["gateway.worker"] == "sim-a"
    assert upload.headers["traceparent"].split("-")[1:3] == [trace_id, attempt.span_id]


@pytest.mark.parametrize("env", [{}, {"OTEL_SDK_DISABLED": "true"}], ids=["no endpoint", "sdk disabled"])
def test_tracing_is_off_by_default(tmp_path: Path, receiver: OtlpReceiver, env: dict[str, str]) -> None:
    with SimulatorThread(SimulatorConfig(kind="vllm", models=(SIM_MODEL,))) as sim:
        if env:  # the endpoint is set, but the SDK is disabled
            env = {"OTEL_EXPORTER_OTLP_ENDPOINT": receiver.endpoint, "OTEL_BSP_SCHEDULE_DELAY": "50", **env}
        with gateway_processes(catalog_file(tmp_path, [("sim-a", sim.url)]), env) as [(url, _)]:
            client = openai.OpenAI(base_url=url + "/v1", api_key="unused", max_retries=0)
            client.chat.completions.create(model="chat", messages=[{"role": "user", "content": "hi"}],
                                           max_tokens=2)
        [worker_request] = [r for r in sim.records if r.path == "/v1/chat/completions"]
    assert "traceparent" not in worker_request.headers
    assert receiver.batches == 0


async def test_the_overhead_benchmarks_tracing_configuration_exports_to_its_sink(tmp_path: Path) -> None:
    config = configs.CONFIGS["tracing"]
    async with configs.prepared(config, tmp_path) as setup:
        assert setup.trace_sink is not None
        env = {**config.environment(), **setup.environment, "OTEL_BSP_SCHEDULE_DELAY": "50"}
        with SimulatorThread(SimulatorConfig(kind="vllm", models=(SIM_MODEL,))) as sim, \
                gateway_processes(catalog_file(tmp_path, [("sim-a", sim.url)]), env) as [(url, _)]:
            client = openai.AsyncOpenAI(base_url=url + "/v1", api_key="unused", max_retries=0)
            await client.chat.completions.create(model="chat", messages=[{"role": "user", "content": "hi"}],
                                                 max_tokens=2)
            await client.close()
        assert setup.trace_sink.batches >= 1 and setup.trace_sink.bytes_received > 0
        assert not setup.trace_sink.spans  # read and dropped
