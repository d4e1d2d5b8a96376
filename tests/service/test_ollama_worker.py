"""Ollama workers end to end: the openai SDK → the gateway → simulated Ollama workers speaking Ollama's
native API (`/api/chat`, `/api/generate`, `/api/embed`), whole and streamed; broken streams become an
error the SDK raises; residency-aware routing prefers the worker that already holds the model; a full
Ollama queue (503) is retried on another worker without ejecting the full one.
"""

from __future__ import annotations

import base64
import struct
from collections.abc import Iterator

import httpx
import openai
import pytest
from openai.types.chat import ChatCompletionMessageParam, ChatCompletionToolParam

from simulator import RequestRecord, SimulatorConfig, SimulatorThread
from tests.conftest import start_gateway
from tests.servers import ServerThread

# Remove once `pipeline._attempt` sends `kind: ollama` workers through `to_ollama`/`from_ollama`/`relay_ndjson`,
# `ServedModel.num_ctx` reaches `Placement.num_ctx`, and `/api/ps` names also match without their `:latest` tag.

OLLAMA_MODEL = "sim-model"
FAULTS = ("error-500", "error-503", "mid-stream-error", "drop-mid-stream", "no-done", "done-without-finish",
          "stall-after-3", "garbage-sse", "slow")
MESSAGES: list[ChatCompletionMessageParam] = [
    {"role": "system", "content": "You are terse."}, {"role": "user", "content": "Say hello"}]


def ollama_catalog(workers: list[tuple[str, str]], *, policy: str = "least_outstanding", served: str = "",
                   tail: str = "") -> str:
    """Models `chat` and `embed` served as `sim-model` by each (name, root URL) Ollama worker, and each
    fault name as a model of its own; `served` adds fields to the `chat` entry (e.g. `num_ctx: 8192`)."""
    lines = ["models:", f"  - {{name: chat, policy: {policy}}}", "  - name: embed"]
    lines += [f"  - name: {fault}" for fault in FAULTS]
    lines += ["routing: {default_model: chat}", "workers:"]
    extra = f", {served}" if served else ""
    for name, url in workers:
        lines += [f"  - name: {name}", "    kind: ollama", f"    base_url: {url}",
                  "    timeouts: {connect: 2, first_byte: 10, idle: 1, total: 60}", "    models:",
                  f"      - {{name: chat, upstream_id: {OLLAMA_MODEL}{extra}}}",
                  f"      - {{name: embed, upstream_id: {OLLAMA_MODEL}}}"]
        lines += [f"      - {fault}" for fault in FAULTS]
    return "\n".join(lines) + "\n" + tail


@pytest.fixture(scope="module")
def ollama_sim() -> Iterator[SimulatorThread]:
    with SimulatorThread(SimulatorConfig(kind="ollama", models=(OLLAMA_MODEL,), seed=11)) as sim:
        yield sim


@pytest.fixture(scope="module")
def ollama_gateway(ollama_sim: SimulatorThread) -> Iterator[ServerThread]:
    with start_gateway(ollama_catalog([("cpu-a", ollama_sim.url)])) as server:
        yield server


@pytest.fixture
def sim(ollama_sim: SimulatorThread) -> SimulatorThread:
    ollama_sim.reset()
    return ollama_sim


_OPEN_CLIENTS: list[openai.OpenAI] = []


@pytest.fixture(autouse=True)
def _close_clients() -> Iterator[None]:
    """Every SDK client a test opens is closed after it (an unclosed socket's warning would fail a later test)."""
    yield
    while _OPEN_CLIENTS:
        _OPEN_CLIENTS.pop().close()


def client(gateway: ServerThread) -> openai.OpenAI:
    opened = openai.OpenAI(base_url=gateway.url + "/v1", api_key="client-secret", max_retries=0, timeout=20)
    _OPEN_CLIENTS.append(opened)
    return opened


def records_at(sim: SimulatorThread, path: str) -> list[RequestRecord]:
    return [r for r in sim.records if r.path == path]


# --- inference ------------------------------------------------------------------------------------


def test_chat_non_streaming(ollama_gateway: ServerThread, sim: SimulatorThread) -> None:
    raw = client(ollama_gateway).chat.completions.with_raw_response.create(
        model="chat", messages=MESSAGES, max_tokens=50, temperature=0.3, seed=4, stop=["\n\n"])
    completion = raw.parse()
    assert completion.object == "chat.completion" and completion.id.startswith("chatcmpl-")
    assert completion.choices[0].message.role == "assistant" and completion.choices[0].message.content
    assert completion.choices[0].finish_reason in ("stop", "length")
    assert raw.headers["x-gateway-worker"] == "cpu-a"
    [record] = records_at(sim, "/api/chat")
    assert record.body is not None
    assert record.body["model"] == OLLAMA_MODEL and record.body["stream"] is False  # Ollama streams by default
    assert record.body["messages"] == [{"role": "system", "content": "You are terse."},
                                       {"role": "user", "content": "Say hello"}]
    assert record.body["options"] == {"temperature": 0.3, "seed": 4, "num_predict": 50, "stop": ["\n\n"]}
    assert completion.usage is not None
    assert completion.usage.prompt_tokens == record.prompt_tokens > 0
    assert completion.usage.completion_tokens == record.completion_tokens > 0
    assert "client-secret" not in repr(record.headers)


def test_chat_streaming_with_usage(ollama_gateway: ServerThread, sim: SimulatorThread) -> None:
    chunks = list(client(ollama_gateway).chat.completions.create(
        model="chat", messages=MESSAGES, stream=True, stream_options={"include_usage": True}))
    assert chunks[0].choices[0].delta.role == "assistant"
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text
    finishes = [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason]
    assert finishes in (["stop"], ["length"])
    usage = chunks[-1].usage
    assert chunks[-1].choices == [] and usage is not None
    [record] = records_at(sim, "/api/chat")
    assert record.body is not None and record.body["stream"] is True
    assert (usage.prompt_tokens, usage.completion_tokens) == (record.prompt_tokens, record.completion_tokens)
    assert len({c.id for c in chunks}) == 1


def test_chat_streaming_without_usage(ollama_gateway: ServerThread) -> None:
    chunks = list(client(ollama_gateway).chat.completions.create(model="chat", messages=MESSAGES, stream=True))
    assert chunks[-1].choices[0].finish_reason in ("stop", "length")
    assert all(c.usage is None for c in chunks)


def test_completions_whole_and_streamed(ollama_gateway: ServerThread, sim: SimulatorThread) -> None:
    c = client(ollama_gateway)
    completion = c.completions.create(model="chat", prompt="Once upon a time", max_tokens=5)
    assert completion.object == "text_completion" and completion.choices[0].text
    assert completion.usage is not None and completion.usage.completion_tokens <= 5
    streamed = list(c.completions.create(model="chat", prompt="Once", max_tokens=5, stream=True))
    assert "".join(s.choices[0].text for s in streamed if s.choices)
    generate = records_at(sim, "/api/generate")
    assert [r.body["prompt"] for r in generate if r.body] == ["Once upon a time", "Once"]
    assert all(r.body is not None and r.body["options"]["num_predict"] == 5 for r in generate)


def test_embeddings_as_floats_and_as_the_sdk_default_base64(ollama_gateway: ServerThread,
                                                           sim: SimulatorThread) -> None:
    direct = httpx.post(sim.url + "/api/embed", json={"model": OLLAMA_MODEL, "input": ["a", "b"]}).json()
    c = client(ollama_gateway)
    floats = c.embeddings.create(model="embed", input=["a", "b"], encoding_format="float")
    assert [d.embedding for d in floats.data] == direct["embeddings"]
    assert [d.index for d in floats.data] == [0, 1] and floats.object == "list"
    assert floats.usage.prompt_tokens == direct["prompt_eval_count"]
    default = c.embeddings.create(model="embed", input=["a", "b"])  # the SDK asks for base64 and decodes it
    for got, want in zip(default.data, direct["embeddings"], strict=True):
        assert got.embedding == pytest.approx(want, rel=1e-6)
    raw = httpx.post(ollama_gateway.url + "/v1/embeddings", json={"model": "embed", "input": "a",
                                                                  "encoding_format": "base64"}).json()
    vector = struct.unpack(f"<{len(direct['embeddings'][0])}f", base64.b64decode(raw["data"][0]["embedding"]))
    assert list(vector) == pytest.approx(direct["embeddings"][0], rel=1e-6)
    _direct, *through_gateway = records_at(sim, "/api/embed")
    assert len(through_gateway) == 3
    assert all(r.body is not None and r.body["truncate"] is False for r in through_gateway)


def test_num_ctx_from_the_catalog_reaches_every_request(sim: SimulatorThread) -> None:
    with start_gateway(ollama_catalog([("cpu-a", sim.url)], served="num_ctx: 8192")) as gw:
        client(gw).chat.completions.create(model="chat", messages=MESSAGES)
        list(client(gw).chat.completions.create(model="chat", messages=MESSAGES, stream=True))
    records = records_at(sim, "/api/chat")
    assert len(records) == 2
    assert all(r.body is not None and r.body["options"]["num_ctx"] == 8192 for r in records)


def test_tools_reach_ollama_in_its_own_shape(ollama_gateway: ServerThread, sim: SimulatorThread) -> None:
    tools: list[ChatCompletionToolParam] = [{"type": "function", "function": {
        "name": "get_weather", "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}}]
    history: list[ChatCompletionMessageParam] = [
        {"role": "user", "content": "what is the weather in Toronto?"},
        {"role": "assistant", "content": None, "tool_calls": [{"id": "call_1", "type": "function", "function": {
            "name": "get_weather", "arguments": "{\"city\": \"Toronto\"}"}}]},
        {"role": "tool", "tool_call_id": "call_1", "content": "11 degrees celsius"},
    ]
    client(ollama_gateway).chat.completions.create(model="chat", messages=history, tools=tools,
                                                   response_format={"type": "json_object"})
    [record] = records_at(sim, "/api/chat")
    assert record.body is not None
    assert record.body["tools"] == tools and record.body["format"] == "json"
    assert record.body["messages"][1:] == [
        {"role": "assistant", "content": "", "tool_calls": [
            {"function": {"name": "get_weather", "arguments": {"city": "Toronto"}}}]},
        {"role": "tool", "content": "11 degrees celsius", "tool_name": "get_weather"}]


def test_what_ollama_cannot_do_is_a_400(ollama_gateway: ServerThread, sim: SimulatorThread) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        client(ollama_gateway).chat.completions.create(model="chat", messages=MESSAGES, n=2)
    assert caught.value.code == "unsupported_value"
    assert records_at(sim, "/api/chat") == []


# --- failures -------------------------------------------------------------------------------------


@pytest.mark.parametrize("fault", ["mid-stream-error", "drop-mid-stream", "no-done", "done-without-finish",
                                   "stall-after-3", "garbage-sse"])
def test_a_broken_ollama_stream_raises_in_the_sdk(ollama_gateway: ServerThread, fault: str) -> None:
    seen: list[str] = []
    with pytest.raises(openai.APIError):
        for chunk in client(ollama_gateway).chat.completions.create(model=fault, messages=MESSAGES, stream=True):
            seen.extend(c.finish_reason for c in chunk.choices if c.finish_reason)
    assert seen == []  # never a made-up finish


def test_the_error_event_is_openai_shaped(ollama_gateway: ServerThread) -> None:
    body = {"model": "mid-stream-error", "messages": [{"role": "user", "content": "hi"}], "stream": True}
    with httpx.stream("POST", ollama_gateway.url + "/v1/chat/completions", json=body, timeout=20) as response:
        events = [line[6:] for line in response.iter_lines() if line.startswith("data: ")]
    assert response.status_code == 200 and events[-1] == "[DONE]"
    error = httpx.Response(200, content=events[-2]).json()["error"]
    assert error == {"message": "simulated error (fault mid-stream-error)", "type": "server_error", "param": None,
                     "code": "upstream_server_error"}


def test_an_ollama_error_status_is_normalized(ollama_gateway: ServerThread) -> None:
    with pytest.raises(openai.InternalServerError) as caught:
        client(ollama_gateway).chat.completions.create(model="error-500", messages=MESSAGES)
    assert caught.value.body == {"message": "simulated error (fault error-500)", "type": "server_error",
                                 "param": None, "code": "upstream_server_error"}


def test_a_client_leaving_mid_stream_stops_the_ollama_generation(ollama_gateway: ServerThread,
                                                                  sim: SimulatorThread) -> None:
    stream = client(ollama_gateway).chat.completions.create(model="slow", messages=MESSAGES, stream=True,
                                                            max_tokens=200)
    for index, _ in enumerate(stream):
        if index == 2:
            break
    stream.close()
    assert sim.wait_for(lambda rs: any(r.path == "/api/chat" and r.disconnected is not None for r in rs), 5)


# --- routing over several Ollama workers ----------------------------------------------------------


def _scraped(sim: SimulatorThread, times: int = 2) -> bool:
    return sim.wait_for(lambda rs: sum(r.path == "/api/ps" for r in rs) >= times, 10)


def test_residency_prefers_the_worker_that_has_the_model_loaded() -> None:
    warm = SimulatorConfig(kind="ollama", models=(OLLAMA_MODEL,), preloaded=True)
    cold = SimulatorConfig(kind="ollama", models=(OLLAMA_MODEL,), cold_load_seconds=2.0)
    with SimulatorThread(warm) as warm_sim, SimulatorThread(cold) as cold_sim:
        # `sim-model` as operators write it; /api/ps names it `sim-model:latest`.
        text = ollama_catalog([("cold", cold_sim.url), ("warm", warm_sim.url)], policy="residency",
                              tail="health: {interval: 0.1, timeout: 1}\n")
        with start_gateway(text, background=True) as gw:
            assert _scraped(warm_sim) and _scraped(cold_sim)
            c = client(gw)
            for _ in range(4):
                raw = c.chat.completions.with_raw_response.create(model="chat", messages=MESSAGES, max_tokens=4)
                assert raw.headers["x-gateway-worker"] == "warm"
            streamed = c.chat.completions.with_raw_response.create(model="chat", messages=MESSAGES, stream=True)
            assert streamed.headers["x-gateway-worker"] == "warm"
            list(streamed.parse())
        assert records_at(cold_sim, "/api/chat") == []
        assert len(records_at(warm_sim, "/api/chat")) == 5


def test_a_full_ollama_queue_is_retried_elsewhere_and_not_ejected() -> None:
    full = SimulatorConfig(kind="ollama", models=(OLLAMA_MODEL,), fault="error-503")
    with SimulatorThread(full) as busy, SimulatorThread(SimulatorConfig(kind="ollama", models=(OLLAMA_MODEL,))) as ok:
        text = ollama_catalog([("busy", busy.url), ("ok", ok.url)], tail="outlier: {consecutive_failures: 1}\n")
        with start_gateway(text) as gw:
            c = client(gw)
            whole = [c.chat.completions.with_raw_response.create(model="chat", messages=MESSAGES, max_tokens=4)
                     for _ in range(4)]
            streamed = [c.chat.completions.with_raw_response.create(model="chat", messages=MESSAGES, max_tokens=4,
                                                                    stream=True) for _ in range(2)]
            headers = [r.headers for r in whole] + [r.headers for r in streamed]
            assert all(h["x-gateway-worker"] == "ok" for h in headers)
            assert any(h.get("x-gateway-attempts") == "2" for h in headers)
            for reply in streamed:
                assert list(reply.parse())[-1].choices[0].finish_reason in ("stop", "length")
            workers = {w["name"]: w for w in httpx.get(gw.url + "/admin/workers").json()["workers"]}
            assert not workers["busy"]["outlier"].get("ejected")
        assert records_at(busy, "/api/chat") and all(r.status == 503 for r in records_at(busy, "/api/chat"))
