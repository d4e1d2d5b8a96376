"""The simulated vLLM worker speaks vLLM's OpenAI-compatible protocol, as the official SDK sees it.

Also its faults, queue limits, KV-cache prefix reuse, Prometheus metrics, records and CLI.
"""

from __future__ import annotations

import argparse
import base64
import json
import signal
import struct
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import httpx
import openai
import pytest
from openai.types.chat import ChatCompletionMessageParam
from prometheus_client.parser import text_string_to_metric_families

from simulator import FAULT_NAMES, RequestRecord, SimulatorConfig, SimulatorThread, start_simulator
from simulator.cli import add_arguments, config_from_args
from simulator.latency import LatencyModel
from simulator.scheduler import StepRequest, StepScheduler

MODEL = "sim-model"
HELLO: list[ChatCompletionMessageParam] = [{"role": "user", "content": "hello there"}]


@pytest.fixture
def sim() -> Iterator[SimulatorThread]:
    with SimulatorThread(SimulatorConfig(kind="vllm", models=(MODEL,), seed=3)) as simulator:
        yield simulator


@pytest.fixture
def client(sim: SimulatorThread) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(base_url=sim.url + "/v1", api_key="unused", max_retries=0, timeout=5) as sdk:
        yield sdk


def post(sim: SimulatorThread, path: str, body: dict[str, Any], **kwargs: Any) -> httpx.Response:
    return httpx.post(sim.url + path, json=body, timeout=5, **kwargs)


def sse_data(text: str) -> list[str]:
    """The `data:` payloads of an SSE body, in order (comments and blank lines dropped)."""
    return [line.removeprefix("data: ") for line in text.splitlines() if line.startswith("data: ")]


def chat_records(sim: SimulatorThread) -> list[RequestRecord]:
    return [record for record in sim.records if record.path == "/v1/chat/completions"]


# --- inference through the official SDK -------------------------------------------------------


def test_chat_completion_parses_like_vllm(sim: SimulatorThread, client: openai.OpenAI) -> None:
    completion = client.chat.completions.create(model=MODEL, messages=HELLO, max_tokens=100)
    assert completion.id.startswith("chatcmpl-")
    assert completion.object == "chat.completion"
    assert completion.model == MODEL
    [choice] = completion.choices
    assert choice.message.role == "assistant" and choice.message.content
    assert choice.finish_reason == "stop"
    assert completion.usage is not None
    [record] = chat_records(sim)
    assert completion.usage.prompt_tokens == record.prompt_tokens > 0
    assert completion.usage.completion_tokens == record.completion_tokens > 0
    assert completion.usage.total_tokens == record.prompt_tokens + record.completion_tokens


def test_max_tokens_cuts_the_reply_with_finish_reason_length(client: openai.OpenAI) -> None:
    completion = client.chat.completions.create(model=MODEL, messages=HELLO, max_tokens=3)
    assert completion.choices[0].finish_reason == "length"
    assert completion.usage is not None and completion.usage.completion_tokens == 3
    newer = client.chat.completions.create(model=MODEL, messages=HELLO, max_completion_tokens=2)
    assert newer.usage is not None and newer.usage.completion_tokens == 2


def test_stream_with_usage_parses_like_vllm(sim: SimulatorThread, client: openai.OpenAI) -> None:
    chunks = list(
        client.chat.completions.create(
            model=MODEL,
            messages=HELLO,
            stream=True,
            stream_options={"include_usage": True},
            max_tokens=5,
        )
    )
    assert chunks[0].choices[0].delta.role == "assistant" and chunks[0].choices[0].delta.content == ""
    contents = [chunk.choices[0].delta.content for chunk in chunks[1:-2]]
    assert len(contents) == 5 and all(contents)
    assert chunks[-2].choices[0].finish_reason == "length"
    assert chunks[-1].choices == [] and chunks[-1].usage is not None
    assert chunks[-1].usage.completion_tokens == 5
    assert len({chunk.id for chunk in chunks}) == 1
    [record] = chat_records(sim)
    assert record.stream and record.status == 200
    assert len(record.chunk_times) == 1 + 5 + 2 + 1  # role, tokens, finish, usage, [DONE]


def test_stream_wire_format_omits_usage_until_the_usage_chunk(sim: SimulatorThread) -> None:
    body = {"model": MODEL, "messages": HELLO, "stream": True, "stream_options": {"include_usage": True}}
    response = post(sim, "/v1/chat/completions", body)
    assert response.headers["content-type"].startswith("text/event-stream")
    events = sse_data(response.text)
    assert events[-1] == "[DONE]"
    chunks = [json.loads(event) for event in events[:-1]]
    assert all("usage" not in chunk for chunk in chunks[:-1])
    assert chunks[-1]["choices"] == [] and set(chunks[-1]["usage"]) >= {"prompt_tokens", "completion_tokens"}
    assert chunks[-2]["choices"][0]["delta"] == {} and chunks[-2]["choices"][0]["finish_reason"] in ("stop", "length")


def test_stream_without_include_usage_has_no_usage_chunk(sim: SimulatorThread) -> None:
    events = sse_data(post(sim, "/v1/chat/completions", {"model": MODEL, "messages": HELLO, "stream": True}).text)
    chunks = [json.loads(event) for event in events[:-1]]
    assert events[-1] == "[DONE]" and chunks[-1]["choices"][0]["finish_reason"] is not None
    assert all("usage" not in chunk for chunk in chunks)


async def test_async_sdk_in_the_same_loop() -> None:
    async with (
        start_simulator(SimulatorConfig(kind="vllm", models=(MODEL,))) as sim,
        openai.AsyncOpenAI(base_url=sim.url + "/v1", api_key="unused", max_retries=0) as sdk,
    ):
        whole = await sdk.chat.completions.create(model=MODEL, messages=HELLO)
        stream = await sdk.chat.completions.create(
            model=MODEL,
            messages=HELLO,
            stream=True,
            stream_options={"include_usage": True},
        )
        pieces = [chunk.choices[0].delta.content or "" async for chunk in stream if chunk.choices]
        assert "".join(pieces) == whole.choices[0].message.content
        assert await sim.wait_for(lambda records: len(records) == 2 and all(r.finished for r in records))
        with pytest.raises(openai.NotFoundError):
            await sdk.chat.completions.create(model="nope", messages=HELLO)


def test_completions_stream_and_whole(client: openai.OpenAI) -> None:
    whole = client.completions.create(model=MODEL, prompt="Once upon a time", max_tokens=4)
    assert whole.id.startswith("cmpl-") and whole.object == "text_completion"
    assert whole.choices[0].finish_reason == "length" and whole.usage is not None
    chunks = list(
        client.completions.create(
            model=MODEL, prompt="Once upon a time", max_tokens=4, stream=True, stream_options={"include_usage": True}
        )
    )
    assert "".join(chunk.choices[0].text for chunk in chunks if chunk.choices) == whole.choices[0].text
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens == 4


def test_embeddings_float_and_base64(sim: SimulatorThread, client: openai.OpenAI) -> None:
    decoded = client.embeddings.create(model=MODEL, input=["a", "bb"])  # the SDK asks for base64
    as_floats = client.embeddings.create(model=MODEL, input=["a", "bb"], encoding_format="float")
    for from_base64, from_floats in zip(decoded.data, as_floats.data, strict=True):
        assert from_base64.embedding == pytest.approx(from_floats.embedding, abs=1e-6)
    assert len(decoded.data[0].embedding) == sim.simulator.config.embedding_dim
    assert decoded.usage.prompt_tokens == 2
    raw = post(sim, "/v1/embeddings", {"model": MODEL, "input": "a", "encoding_format": "base64"}).json()
    packed = base64.b64decode(raw["data"][0]["embedding"])
    vector = struct.unpack(f"<{len(packed) // 4}f", packed)
    assert vector == pytest.approx(decoded.data[0].embedding, abs=1e-6)


def test_reply_is_deterministic_per_seed_and_prompt(client: openai.OpenAI) -> None:
    def reply(sdk: openai.OpenAI, content: str) -> str | None:
        messages: Any = [{"role": "user", "content": content}]
        return sdk.chat.completions.create(model=MODEL, messages=messages, max_tokens=64).choices[0].message.content

    assert reply(client, "one") == reply(client, "one") != reply(client, "two")
    with (
        SimulatorThread(SimulatorConfig(models=(MODEL,), seed=3)) as same_seed,
        openai.OpenAI(base_url=same_seed.url + "/v1", api_key="x", max_retries=0) as other,
    ):
        assert reply(other, "one") == reply(client, "one")


def test_fixed_response_text_is_cut_by_max_tokens() -> None:
    config = SimulatorConfig(models=(MODEL,), response_text="The quick brown fox jumps.")
    with SimulatorThread(config) as sim, openai.OpenAI(base_url=sim.url + "/v1", api_key="x") as sdk:
        whole = sdk.chat.completions.create(model=MODEL, messages=HELLO)
        assert whole.choices[0].message.content == "The quick brown fox jumps."
        cut = sdk.chat.completions.create(model=MODEL, messages=HELLO, max_tokens=2)
        assert cut.choices[0].message.content == "The quick"


def test_unknown_fields_are_ignored_and_n_gives_one_choice(client: openai.OpenAI) -> None:
    completion = client.chat.completions.create(
        model=MODEL,
        messages=HELLO,
        n=2,
        seed=1,
        temperature=0.2,
        extra_body={"top_k": 5, "some_future_field": {"x": 1}},
    )
    assert len(completion.choices) == 1


def test_request_id_is_echoed_and_used(sim: SimulatorThread, client: openai.OpenAI) -> None:
    raw = client.chat.completions.with_raw_response.create(
        model=MODEL,
        messages=HELLO,
        extra_headers={"X-Request-Id": "abc123"},
    )
    assert raw.headers["x-request-id"] == "abc123"
    assert raw.parse().id == "chatcmpl-abc123"
    [record] = chat_records(sim)
    assert record.headers["x-request-id"] == "abc123" and record.headers["authorization"] == "Bearer unused"
    assert record.body is not None and record.body["messages"] == HELLO and record.model == MODEL


def test_keepalive_comments_between_chunks_are_ignored_by_the_sdk() -> None:
    config = SimulatorConfig(models=(MODEL,), keepalive_comments=True)
    with SimulatorThread(config) as sim, openai.OpenAI(base_url=sim.url + "/v1", api_key="x") as sdk:
        raw = post(sim, "/v1/chat/completions", stream_body(MODEL, max_tokens=3)).text
        assert raw.count(": keep-alive\n\n") == 2  # between the 3 token chunks
        chunks = list(sdk.chat.completions.create(model=MODEL, messages=HELLO, stream=True, max_tokens=3))
        assert [chunk.choices[0].delta.content for chunk in chunks[1:4]] == sse_contents(raw)


def sse_contents(raw: str) -> list[str]:
    deltas = [json.loads(event)["choices"][0]["delta"] for event in sse_data(raw)[:-1]]
    return [delta["content"] for delta in deltas if delta.get("content")]


def test_whole_replies_under_stream_faults(sim: SimulatorThread, client: openai.OpenAI) -> None:
    with pytest.raises(openai.APIConnectionError):
        client.chat.completions.create(model="drop-mid-stream", messages=HELLO)
    with pytest.raises(openai.InternalServerError):
        client.chat.completions.create(model="mid-stream-error", messages=HELLO)
    assert client.chat.completions.create(model="no-done", messages=HELLO).choices[0].message.content
    whole = client.chat.completions.create(model="done-without-finish", messages=HELLO).choices[0]
    assert whole.message.content and whole.finish_reason
    garbage = post(sim, "/v1/chat/completions", {"model": "garbage-sse", "messages": HELLO})
    with pytest.raises(json.JSONDecodeError):
        garbage.json()


def test_concurrency_slows_every_delay_down() -> None:
    latency = LatencyModel(SimulatorConfig(ttft_overhead_s=0.1, prefill_s_per_token=0.01, itl_s=0.02,
                                           concurrency_slowdown=0.5))  # fmt: skip
    assert latency.time_to_first_token(uncached_prompt_tokens=10, running=1) == pytest.approx(0.2)
    assert latency.time_to_first_token(uncached_prompt_tokens=10, running=3) == pytest.approx(0.4)
    assert latency.inter_token(running=3) == pytest.approx(0.04)
    assert latency.inter_token(running=1, slow=True) == pytest.approx(0.2)


def test_records_are_bounded() -> None:
    with SimulatorThread(SimulatorConfig(models=(MODEL,), max_records=2)) as sim:
        for _ in range(3):
            httpx.get(sim.url + "/health")
        assert len(sim.records) == 2


# --- operations -------------------------------------------------------------------------------


def test_models_health_and_version(sim: SimulatorThread, client: openai.OpenAI) -> None:
    assert [model.id for model in client.models.list()] == [MODEL]
    card = httpx.get(sim.url + "/v1/models").json()["data"][0]
    assert card["owned_by"] == "vllm" and card["root"] == MODEL and card["parent"] is None
    assert card["max_model_len"] == 8192 and card["object"] == "model"
    health = httpx.get(sim.url + "/health")
    assert health.status_code == 200 and health.content == b""
    assert httpx.get(sim.url + "/version").json() == {"version": "0.33.0"}


def test_metrics_parse_and_follow_the_engine(sim: SimulatorThread, client: openai.OpenAI) -> None:
    client.chat.completions.create(model=MODEL, messages=HELLO)
    families = {family.name: family for family in text_string_to_metric_families(httpx.get(sim.url + "/metrics").text)}
    for name in ("vllm:num_requests_running", "vllm:num_requests_waiting", "vllm:kv_cache_usage_perc"):
        [sample] = families[name].samples
        assert sample.labels == {"model_name": MODEL, "engine": "0"} and sample.value == 0
    queries = [s for s in families["vllm:prefix_cache_queries"].samples if s.name.endswith("_total")]
    assert queries[0].value == chat_records(sim)[0].prompt_tokens
    [info] = families["vllm:cache_config_info"].samples
    assert info.labels["block_size"] == "16" and info.labels["num_gpu_blocks"] == "1024" and info.value == 1
    histograms = ("time_to_first_token", "inter_token_latency", "e2e_request_latency", "request_queue_time")
    for name in (f"{histogram}_seconds" for histogram in histograms):
        family = families[f"vllm:{name}"]
        assert family.type == "histogram"
    [ttft_count] = [s for s in families["vllm:time_to_first_token_seconds"].samples if s.name.endswith("_count")]
    assert ttft_count.value == 1


# --- errors -----------------------------------------------------------------------------------


def test_unknown_model_is_a_vllm_404(sim: SimulatorThread, client: openai.OpenAI) -> None:
    with pytest.raises(openai.NotFoundError) as caught:
        client.chat.completions.create(model="nope", messages=HELLO)
    assert caught.value.status_code == 404
    body = post(sim, "/v1/chat/completions", {"model": "nope", "messages": HELLO}).json()
    assert body == {
        "error": {"message": "The model `nope` does not exist.", "type": "NotFoundError", "param": "model", "code": 404}
    }


def test_bad_bodies_are_vllm_400s(sim: SimulatorThread) -> None:
    url = sim.url + "/v1/chat/completions"
    not_json = httpx.post(url, content=b"{nope", headers={"content-type": "application/json"})
    no_type = httpx.post(url, content=json.dumps({"model": MODEL, "messages": HELLO}))
    no_messages = post(sim, "/v1/chat/completions", {"model": MODEL})
    too_long = post(sim, "/v1/chat/completions", {"model": MODEL, "messages": HELLO, "max_tokens": 10_000})
    for response in (not_json, no_type, no_messages, too_long):
        assert response.status_code == 400
        error = response.json()["error"]
        assert (
            error["type"] == "BadRequestError"
            and error["code"] == 400
            and set(error) == {"message", "type", "param", "code"}
        )
    assert "application/json" in no_type.json()["error"]["message"]
    assert "maximum context length" in too_long.json()["error"]["message"]


def test_api_key_is_required_on_v1_only() -> None:
    with SimulatorThread(SimulatorConfig(models=(MODEL,), api_key="secret")) as sim:
        with (
            openai.OpenAI(base_url=sim.url + "/v1", api_key="wrong", max_retries=0) as bad,
            pytest.raises(openai.AuthenticationError),
        ):
            bad.models.list()
        assert httpx.get(sim.url + "/v1/models").json() == {"error": "Unauthorized"}
        assert httpx.get(sim.url + "/health").status_code == 200
        with openai.OpenAI(base_url=sim.url + "/v1", api_key="secret", max_retries=0) as good:
            assert [model.id for model in good.models.list()] == [MODEL]


def test_full_queue_is_a_503_to_try_elsewhere() -> None:
    config = SimulatorConfig(models=(MODEL,), fault="stall-after-1", max_running=1, max_queued=1)
    body = {"model": MODEL, "messages": HELLO, "stream": True}
    with SimulatorThread(config) as sim, httpx.Client(base_url=sim.url, timeout=5) as http:
        with http.stream("POST", "/v1/chat/completions", json=body) as running:
            running_lines = running.iter_lines()  # (dropping this iterator would close the response)
            next(running_lines)  # its first chunk came: it holds the only running slot
            with http.stream("POST", "/v1/chat/completions", json=body) as waiting:
                assert waiting.status_code == 200  # queued: vLLM answers headers before it runs
                families = text_string_to_metric_families(http.get("/metrics").text)
                gauges = {f.name: f.samples[0].value for f in families if f.name.startswith("vllm:num_requests")}
                assert gauges == {"vllm:num_requests_running": 1, "vllm:num_requests_waiting": 1}
                refused = http.post("/v1/chat/completions", json=body)
                assert refused.status_code == 503
                assert "try again later or on a different instance" in refused.json()["error"]["message"]
        assert sim.wait_for(lambda records: sum(r.disconnected is not None for r in records) == 2)


# --- KV cache ---------------------------------------------------------------------------------

SYSTEM = {"role": "system", "content": "You are a careful assistant. " * 20}


def ask(client: openai.OpenAI, question: str) -> None:
    messages: Any = [SYSTEM, {"role": "user", "content": question}]
    client.chat.completions.create(model=MODEL, messages=messages, max_tokens=1)


def test_a_repeated_prefix_is_served_from_the_kv_cache(sim: SimulatorThread, client: openai.OpenAI) -> None:
    ask(client, "What is a cache?")
    ask(client, "What is a prefix?")
    first, second = chat_records(sim)
    assert first.cached_prompt_tokens == 0
    assert second.cached_prompt_tokens > 0.8 * second.prompt_tokens
    assert second.cached_prompt_tokens % 16 == 0 and second.cached_prompt_tokens < second.prompt_tokens
    families = {f.name: f for f in text_string_to_metric_families(httpx.get(sim.url + "/metrics").text)}
    hits = [s for s in families["vllm:prefix_cache_hits"].samples if s.name.endswith("_total")]
    assert hits[0].value == second.cached_prompt_tokens
    sim.reset()
    ask(client, "What is a prefix?")
    [after_reset] = chat_records(sim)
    assert after_reset.cached_prompt_tokens == 0


def test_kv_cache_evicts_least_recently_used_blocks() -> None:
    with (
        SimulatorThread(SimulatorConfig(models=(MODEL,), kv_blocks=4)) as sim,
        openai.OpenAI(base_url=sim.url + "/v1", api_key="x") as sdk,
    ):
        ask(sdk, "first")
        ask(sdk, "first")  # its 10+ blocks did not fit in 4: the tail went first (as vLLM frees blocks),
        assert [r.cached_prompt_tokens for r in chat_records(sim)] == [0, 64]  # so the 4 leading ones hit


def test_kv_cache_is_per_model() -> None:
    with (
        SimulatorThread(SimulatorConfig(models=(MODEL, "other"))) as sim,
        openai.OpenAI(base_url=sim.url + "/v1", api_key="x") as sdk,
    ):
        ask(sdk, "q")
        messages: Any = [SYSTEM, {"role": "user", "content": "q"}]
        sdk.chat.completions.create(model="other", messages=messages, max_tokens=1)
        assert [r.cached_prompt_tokens for r in chat_records(sim)] == [0, 0]


# --- step model (max_num_batched_tokens): vLLM's chunked-prefill scheduler -------------------

STEP = SimulatorConfig(models=(MODEL,), max_num_batched_tokens=512, step_overhead_s=0.01, step_s_per_token=0.0001,
                       kv_blocks=1024, max_model_len=4096)  # fmt: skip


def prompt(name: str, tokens: int) -> tuple[str, int]:
    """A prompt of exactly `tokens` simulator tokens (4 characters each), distinct per name from its start."""
    text = (name + "|" + "w" * 4 * tokens)[: 4 * tokens]
    return text, tokens


def submit(scheduler: StepScheduler, name: str, tokens: int, completion: int) -> StepRequest:
    text, count = prompt(name, tokens)
    return scheduler.submit(MODEL, text, count, completion)


def test_step_model_chunks_a_long_prefill_and_slows_the_decodes_in_its_steps() -> None:
    scheduler = StepScheduler(STEP, drive=False)
    decoding = submit(scheduler, "a", 100, 6)
    step = scheduler.next_step()
    assert step.tokens == 100 and step.seconds == pytest.approx(0.01 + 100 * 0.0001)
    scheduler.finish_step(step)
    assert decoding.emitted == 1  # its first token came out of its prefill step
    alone = scheduler.next_step()
    assert alone.tokens == 1 and alone.seconds == pytest.approx(0.0101)  # a decode-only step is short
    scheduler.finish_step(alone)
    long = submit(scheduler, "b", 1200, 2)
    chunks = []
    while long.emitted == 0:
        step = scheduler.next_step()
        chunks.append([tokens for request, tokens in step.batch if request is long])
        # The decode rides in the same step as the prefill chunk, and waits as long as it lasts.
        assert [tokens for request, tokens in step.batch if request is decoding] == [1]
        scheduler.finish_step(step)
    assert chunks == [[511], [511], [178]]  # the token budget (512) is shared: 1 decode + 511 prompt tokens
    assert decoding.emitted == 5  # one token per step, each step ~60 ms instead of ~10
    assert step.seconds == pytest.approx(0.01 + 179 * 0.0001)


def test_step_model_reuses_blocks_computed_in_the_same_step() -> None:
    scheduler = StepScheduler(STEP, drive=False)
    first, second = submit(scheduler, "shared", 160, 1), submit(scheduler, "shared", 160, 1)
    step = scheduler.next_step()
    # The second found the first's 9 leading blocks (vLLM always computes the last prompt token).
    assert [tokens for _, tokens in step.batch] == [160, 16]
    assert (first.cached_tokens, second.cached_tokens) == (0, 144)
    scheduler.finish_step(step)
    assert first.done and second.done and scheduler.pool.used == 0
    assert scheduler.pool.cached_blocks == 10  # the published prompt blocks stay cached, evictable


def test_step_model_queues_requests_until_their_kv_blocks_fit() -> None:
    config = replace(STEP, kv_blocks=24, max_model_len=384)
    scheduler = StepScheduler(config, drive=False)
    a, b = submit(scheduler, "a", 160, 1), submit(scheduler, "b", 160, 1)  # 10 prompt + 1 completion block each
    c, small = submit(scheduler, "c", 160, 1), submit(scheduler, "d", 16, 1)
    step = scheduler.next_step()
    assert [request for request, _ in step.batch] == [a, b]  # c does not fit: 33 blocks > 24
    assert list(scheduler.waiting) == [c, small]  # first come, first served: the small one waits behind c
    scheduler.finish_step(step)  # a and b finish (1 token each)
    step = scheduler.next_step()
    assert [request for request, _ in step.batch] == [c, small]
    scheduler.finish_step(step)
    # c and d evicted 9 of the 20 freed blocks, least recently freed first, and a prompt's tail before its
    # head: a's first block survived.
    again = submit(scheduler, "a", 160, 1)
    scheduler.finish_step(scheduler.next_step())
    assert again.cached_tokens == 16


def test_step_model_runs_at_most_max_running_requests() -> None:
    scheduler = StepScheduler(replace(STEP, max_running=1), drive=False)
    first, second = submit(scheduler, "a", 16, 2), submit(scheduler, "b", 16, 2)
    scheduler.finish_step(scheduler.next_step())
    assert scheduler.running == [first] and list(scheduler.waiting) == [second]


def test_step_model_serves_the_api_with_cached_tokens_and_metrics() -> None:
    config = replace(STEP, time_scale=0.01, prompt_tokens_details=True, reply_tokens=(5, 5))
    with (
        SimulatorThread(config) as sim,
        openai.OpenAI(base_url=sim.url + "/v1", api_key="x", max_retries=0, timeout=10) as sdk,
    ):
        messages: Any = [SYSTEM, {"role": "user", "content": "first"}]
        stream = sdk.chat.completions.create(model=MODEL, messages=messages, stream=True,
                                             stream_options={"include_usage": True})  # fmt: skip
        chunks = list(stream)
        assert sum(1 for c in chunks if c.choices and c.choices[0].delta.content) == 5
        messages[1] = {"role": "user", "content": "second"}
        completion = sdk.chat.completions.create(model=MODEL, messages=messages)
        usage = completion.usage
        assert usage is not None and usage.prompt_tokens_details is not None
        assert usage.prompt_tokens_details.cached_tokens == chat_records(sim)[1].cached_prompt_tokens > 0
        families = {f.name: f for f in text_string_to_metric_families(httpx.get(sim.url + "/metrics").text)}
        hits = [s for s in families["vllm:prefix_cache_hits"].samples if s.name.endswith("_total")]
        assert hits[0].value == usage.prompt_tokens_details.cached_tokens
        assert families["vllm:num_requests_running"].samples[0].value == 0


def test_step_model_lets_an_abandoned_request_go() -> None:
    config = replace(STEP, reply_tokens=(400, 400))  # 400 steps of ~10 ms: the client leaves long before
    body = {"model": MODEL, "messages": HELLO, "stream": True, "max_tokens": 400}
    with SimulatorThread(config) as sim, httpx.Client(base_url=sim.url, timeout=5) as http:
        with http.stream("POST", "/v1/chat/completions", json=body) as response:
            lines = response.iter_lines()
            assert next(line for line in lines if '"content":"' in line and '"content":""' not in line)
            running = http.get("/metrics").text
            assert 'vllm:num_requests_running{engine="0",model_name="sim-model"} 1.0' in running

        # The handler let the request go (its blocks too) before the disconnect was recorded.
        assert sim.wait_for(lambda records: any(r.disconnected is not None for r in records), timeout=10)
        families = text_string_to_metric_families(http.get("/metrics").text)
        gauges = {f.name: f.samples[0].value for f in families
                  if f.name in ("vllm:num_requests_running", "vllm:kv_cache_usage_perc")}  # fmt: skip
        assert gauges == {"vllm:num_requests_running": 0.0, "vllm:kv_cache_usage_perc": 0.0}


def test_step_model_settings_are_checked() -> None:
    with pytest.raises(ValueError, match="kind 'vllm'"):
        SimulatorConfig(kind="ollama", max_num_batched_tokens=2048)
    with pytest.raises(ValueError, match="larger than the KV cache"):
        SimulatorConfig(max_num_batched_tokens=2048, kv_blocks=16, max_model_len=8192)
    with pytest.raises(ValueError, match="time_scale"):
        SimulatorConfig(time_scale=0)


def test_time_scale_stretches_the_per_request_model_too() -> None:
    latency = LatencyModel(SimulatorConfig(ttft_overhead_s=0.1, itl_s=0.02, time_scale=3))
    assert latency.time_to_first_token(uncached_prompt_tokens=0, running=1) == pytest.approx(0.3)
    assert latency.inter_token(running=1) == pytest.approx(0.06)


# --- faults -----------------------------------------------------------------------------------


def stream_body(model: str, **extra: Any) -> dict[str, Any]:
    return {"model": model, "messages": HELLO, "stream": True, "max_tokens": 8, **extra}


@pytest.mark.parametrize(
    ("fault", "error", "status"),
    [
        ("error-500", openai.InternalServerError, 500),
        ("error-429", openai.RateLimitError, 429),
        ("error-400", openai.BadRequestError, 400),
        ("error-503", openai.InternalServerError, 503),
    ],
)
def test_error_faults_raise_the_sdk_errors(
    client: openai.OpenAI, fault: str, error: type[openai.APIStatusError], status: int
) -> None:
    with pytest.raises(error) as caught:
        client.chat.completions.create(model=fault, messages=HELLO)
    assert caught.value.status_code == status
    assert isinstance(caught.value.body, dict) and caught.value.body["code"] == status


def test_configured_fault_applies_to_every_request() -> None:
    with (
        SimulatorThread(SimulatorConfig(models=(MODEL,), fault="error-503")) as sim,
        openai.OpenAI(base_url=sim.url + "/v1", api_key="x", max_retries=0) as sdk,
        pytest.raises(openai.InternalServerError, match="different instance"),
    ):
        sdk.chat.completions.create(model=MODEL, messages=HELLO)


def test_slow_spaces_tokens_by_the_slow_latency(sim: SimulatorThread) -> None:
    post(sim, "/v1/chat/completions", stream_body("slow", max_tokens=2))
    [record] = chat_records(sim)
    assert record.fault == "slow" and record.finished is not None
    _role, first, second = record.chunk_times[:3]
    assert second - first >= 0.2 * 0.95


def test_stall_after_3_sends_three_tokens_then_hangs(sim: SimulatorThread) -> None:
    timeout = httpx.Timeout(5.0, read=0.3)
    url = sim.url + "/v1/chat/completions"
    with httpx.stream("POST", url, json=stream_body("stall-after-3"), timeout=timeout) as response:
        lines = response.iter_lines()
        events = [next(lines) for _ in range(8)]  # role + 3 tokens, each followed by a blank line
        with pytest.raises(httpx.ReadTimeout):
            next(lines)
    assert [json.loads(e.removeprefix("data: ")) for e in events if e][3]["choices"][0]["delta"]["content"]
    assert sim.wait_for(lambda records: records[-1].disconnected is not None)
    [record] = chat_records(sim)
    assert len(record.chunk_times) == 4 and record.finished is None


def test_drop_mid_stream_breaks_the_connection(sim: SimulatorThread, client: openai.OpenAI) -> None:
    seen: list[str] = []
    with pytest.raises(openai.APIConnectionError):
        for chunk in client.chat.completions.create(model="drop-mid-stream", messages=HELLO, stream=True):
            seen.append(chunk.choices[0].delta.content or "")
    assert len([piece for piece in seen if piece]) == 3
    with pytest.raises(httpx.RemoteProtocolError):
        post(sim, "/v1/chat/completions", stream_body("drop-mid-stream"))


def test_mid_stream_error_is_an_error_event_then_done(sim: SimulatorThread, client: openai.OpenAI) -> None:
    response = post(sim, "/v1/chat/completions", stream_body("mid-stream-error"))
    assert response.status_code == 200
    events = sse_data(response.text)
    assert events[-1] == "[DONE]" and len(events) == 1 + 2 + 2
    error = json.loads(events[-2])["error"]
    assert set(error) == {"message", "type", "param", "code"} and error["code"] == 500
    with pytest.raises(openai.APIError, match="fault mid-stream-error"):
        list(client.chat.completions.create(model="mid-stream-error", messages=HELLO, stream=True))


def test_no_done_ends_the_stream_without_done(sim: SimulatorThread) -> None:
    events = sse_data(post(sim, "/v1/chat/completions", stream_body("no-done")).text)
    assert "[DONE]" not in events
    assert json.loads(events[-1])["choices"][0]["finish_reason"] == "length"


def test_done_without_finish_ends_with_done_and_no_finish_reason(sim: SimulatorThread) -> None:
    events = sse_data(post(sim, "/v1/chat/completions", stream_body("done-without-finish",
                                                                     stream_options={"include_usage": True})).text)
    assert events[-1] == "[DONE]" and len(events) == 1 + 3 + 1  # the role chunk, 3 content chunks
    chunks = [json.loads(event) for event in events[:-1]]
    assert chunks[0]["choices"][0]["delta"]["role"] == "assistant"
    assert all(c["choices"][0]["delta"]["content"] for c in chunks[1:])
    assert all(c["choices"][0]["finish_reason"] is None and not c.get("usage") for c in chunks)
    texts = sse_data(post(sim, "/v1/completions", {"model": "done-without-finish", "prompt": "Once", "stream": True,
                                                   "max_tokens": 8}).text)
    assert texts[-1] == "[DONE]" and len(texts) == 3 + 1
    assert all(json.loads(event)["choices"][0]["finish_reason"] is None for event in texts[:-1])


def test_never_answer_sends_nothing_until_the_client_leaves(sim: SimulatorThread) -> None:
    timeout = httpx.Timeout(5.0, read=0.3)
    with pytest.raises(httpx.ReadTimeout):
        httpx.post(sim.url + "/v1/chat/completions", json=stream_body("never-answer"), timeout=timeout)
    assert sim.wait_for(lambda records: records[-1].disconnected is not None)
    [record] = chat_records(sim)
    assert record.status == 0 and record.chunk_times == [] and record.finished is None


def test_garbage_sse_sends_lines_that_are_not_json(sim: SimulatorThread, client: openai.OpenAI) -> None:
    events = sse_data(post(sim, "/v1/chat/completions", stream_body("garbage-sse")).text)
    [record] = chat_records(sim)
    token_events = events[1 : 1 + record.completion_tokens]  # after the role chunk
    assert len(token_events) == 8
    for event in token_events:
        with pytest.raises(json.JSONDecodeError):
            json.loads(event)
    with pytest.raises(json.JSONDecodeError):
        list(client.chat.completions.create(model="garbage-sse", messages=HELLO, stream=True))


def test_client_disconnect_mid_stream_is_recorded() -> None:
    with SimulatorThread(SimulatorConfig(models=(MODEL,), itl_s=0.05)) as sim:
        body = {"model": MODEL, "messages": HELLO, "stream": True, "max_tokens": 16}
        with httpx.stream("POST", sim.url + "/v1/chat/completions", json=body) as response:
            for line in response.iter_lines():
                if '"content":"' in line.replace(" ", "") and '"role"' not in line:
                    break
        assert sim.wait_for(lambda records: records[-1].disconnected is not None)
        [record] = chat_records(sim)
        assert record.finished is None and len(record.chunk_times) < 1 + 16


def test_every_fault_name_is_known() -> None:
    assert set(FAULT_NAMES) >= {
        "error-500", "error-429", "error-400", "error-503", "slow", "stall-after-3", "drop-mid-stream",
        "mid-stream-error", "no-done", "done-without-finish", "never-answer", "garbage-sse",
    }  # fmt: skip
    with pytest.raises(ValueError, match="unknown fault"):
        SimulatorConfig(fault="explode")


# --- CLI --------------------------------------------------------------------------------------


def test_cli_options_make_a_config() -> None:
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    options = ["--kind", "ollama", "--model", "a", "--model", "b", "--itl", "0.01", "--fault", "slow"]
    config = config_from_args(parser.parse_args([*options, "--reply-tokens", "64", "64"]))
    assert config.kind == "ollama" and config.models == ("a", "b") and config.port == 11434
    assert config.itl_s == 0.01 and config.fault == "slow" and config.reply_tokens == (64, 64)
    assert config_from_args(parser.parse_args([])) == SimulatorConfig(port=8000, shutdown_timeout_s=2.0)
    step = config_from_args(parser.parse_args(["--max-num-batched-tokens", "2048", "--step-overhead", "0.02",
                                               "--step-per-token", "0.0002", "--time-scale", "4",
                                               "--enable-prompt-tokens-details"]))  # fmt: skip
    assert (step.max_num_batched_tokens, step.step_overhead_s, step.step_s_per_token) == (2048, 0.02, 0.0002)
    assert step.time_scale == 4 and step.prompt_tokens_details


def test_python_m_simulator_serves_until_sigterm() -> None:
    command = [sys.executable, "-m", "simulator", "--kind", "vllm", "--port", "0", "--model", "cli-model"]
    with subprocess.Popen(command, stderr=subprocess.PIPE, text=True) as process:
        try:
            assert process.stderr is not None
            url = process.stderr.readline().split(" at ")[-1].strip()
            assert httpx.get(url + "/v1/models").json()["data"][0]["id"] == "cli-model"
        finally:
            process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=10) == 0
