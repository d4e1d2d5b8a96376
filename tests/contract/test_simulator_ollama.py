"""The simulated Ollama worker speaks Ollama's native API, as the official `ollama` client sees it.

Also its model residency (cold loads, LRU unloading), queue limit, faults and KV-cache reuse.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import ollama
import pytest

from simulator import RequestRecord, SimulatorConfig, SimulatorThread, start_simulator

MODEL = "sim-model"
HELLO = [{"role": "user", "content": "hello there"}]


@pytest.fixture
def sim() -> Iterator[SimulatorThread]:
    with SimulatorThread(SimulatorConfig(kind="ollama", models=(MODEL, "other:7b"), seed=5)) as simulator:
        yield simulator


@pytest.fixture
def client(sim: SimulatorThread) -> Iterator[ollama.Client]:
    with ollama.Client(host=sim.url, timeout=5) as ollama_client:
        yield ollama_client


def records_at(sim: SimulatorThread, path: str) -> list[RequestRecord]:
    return [record for record in sim.records if record.path == path]


def ndjson(response: httpx.Response) -> list[dict[str, Any]]:
    return [json.loads(line) for line in response.text.splitlines() if line]


# --- inference through the official client ----------------------------------------------------


def test_chat_whole_reply(sim: SimulatorThread, client: ollama.Client) -> None:
    reply = client.chat(model=MODEL, messages=HELLO, options={"num_predict": 100})
    assert reply.done and reply.done_reason == "stop" and reply.model == MODEL
    assert reply.message.role == "assistant" and reply.message.content
    [record] = records_at(sim, "/api/chat")
    assert reply.eval_count == record.completion_tokens > 0
    assert reply.prompt_eval_count == record.prompt_tokens > 0
    for duration in (reply.total_duration, reply.load_duration, reply.prompt_eval_duration, reply.eval_duration):
        assert isinstance(duration, int) and duration >= 0
    assert record.stream is False


def test_chat_stream_is_ndjson_ending_with_done(sim: SimulatorThread, client: ollama.Client) -> None:
    whole = client.chat(model=MODEL, messages=HELLO)
    parts = list(client.chat(model=MODEL, messages=HELLO, stream=True))
    assert all(not part.done for part in parts[:-1]) and parts[-1].done
    assert "".join(part.message.content or "" for part in parts) == whole.message.content
    assert parts[-1].eval_count == len(parts) - 1 and parts[-1].done_reason == whole.done_reason
    [_, record] = records_at(sim, "/api/chat")
    assert len(record.chunk_times) == len(parts)


def test_stream_is_the_default(sim: SimulatorThread) -> None:
    response = httpx.post(sim.url + "/api/chat", json={"model": MODEL, "messages": HELLO})
    assert response.headers["content-type"].startswith("application/x-ndjson")
    lines = ndjson(response)
    assert len(lines) > 2 and lines[-1]["done"] is True
    assert set(lines[0]) == {"model", "created_at", "message", "done"}
    assert {"done_reason", "total_duration", "load_duration", "prompt_eval_count", "prompt_eval_duration",
            "eval_count", "eval_duration"} <= set(lines[-1])  # fmt: skip


def test_num_predict_limits_tokens(client: ollama.Client) -> None:
    reply = client.generate(model=MODEL, prompt="why is the sky blue", options={"num_predict": 3, "num_ctx": 2048})
    assert reply.done_reason == "length" and reply.eval_count == 3 and reply.response
    parts = list(client.generate(model=MODEL, prompt="why is the sky blue", stream=True, options={"num_predict": 3}))
    assert "".join(part.response or "" for part in parts) == reply.response


def test_long_prompts_are_cut_to_num_ctx(client: ollama.Client) -> None:
    reply = client.generate(model=MODEL, prompt="word " * 100, options={"num_ctx": 50})
    assert reply.prompt_eval_count == 50


def test_embed(sim: SimulatorThread, client: ollama.Client) -> None:
    many = client.embed(model=MODEL, input=["a", "b"])
    one = client.embed(model=MODEL, input="a")
    assert len(many.embeddings) == 2 and len(many.embeddings[0]) == sim.simulator.config.embedding_dim
    assert one.embeddings[0] == many.embeddings[0]
    assert many.prompt_eval_count == 2


async def test_async_client_in_the_same_loop() -> None:
    async with (
        start_simulator(SimulatorConfig(kind="ollama", models=(MODEL,))) as sim,
        ollama.AsyncClient(host=sim.url) as client,
    ):
        parts = [part async for part in await client.chat(model=MODEL, messages=HELLO, stream=True)]
        assert parts[-1].done
        assert await sim.wait_for(lambda records: records[-1].finished is not None)


# --- models -----------------------------------------------------------------------------------


def test_list_show_and_version(sim: SimulatorThread, client: ollama.Client) -> None:
    assert [model.model for model in client.list().models] == ["sim-model:latest", "other:7b"]
    shown = client.show(MODEL)
    assert shown.details is not None and shown.details.family and shown.capabilities
    with pytest.raises(ollama.ResponseError) as caught:
        client.show("missing")
    assert caught.value.status_code == 404
    assert httpx.get(sim.url + "/api/version").json() == {"version": "0.33.0"}
    assert httpx.get(sim.url + "/").text == "Ollama is running"


def test_pull_reports_progress_then_lists_the_model(client: ollama.Client) -> None:
    progress = list(client.pull("fresh-model", stream=True))
    statuses = [part.status for part in progress]
    assert statuses[0] == "pulling manifest" and statuses[-1] == "success"
    downloads = [part for part in progress if part.digest]
    assert downloads and downloads[-1].completed == downloads[-1].total
    assert "fresh-model:latest" in [model.model for model in client.list().models]
    assert client.chat(model="fresh-model", messages=HELLO).done
    assert client.pull("another-model").status == "success"
    assert client.delete("fresh-model").status == "success"
    assert "fresh-model:latest" not in [model.model for model in client.list().models]
    with pytest.raises(ollama.ResponseError) as caught:
        client.delete("fresh-model")
    assert caught.value.status_code == 404


def test_cold_load_then_resident_with_lru_unloading() -> None:
    config = SimulatorConfig(kind="ollama", models=("a", "b"), cold_load_seconds=0.05, max_loaded_models=1)
    with SimulatorThread(config) as sim, ollama.Client(host=sim.url) as client:
        assert client.ps().models == []
        first = client.chat(model="a", messages=HELLO)
        assert first.load_duration is not None and first.load_duration >= 0.05 * 1e9 * 0.95
        [loaded] = client.ps().models
        assert loaded.model == "a:latest" and loaded.expires_at is not None and loaded.context_length == 4096
        client.chat(model="b", messages=HELLO)
        assert [model.model for model in client.ps().models] == ["b:latest"]  # a was unloaded
        again = client.chat(model="a", messages=HELLO)
        assert again.load_duration is not None and again.load_duration >= 0.05 * 1e9 * 0.95


def test_empty_prompt_loads_and_keep_alive_zero_unloads(client: ollama.Client) -> None:
    loaded = client.generate(model=MODEL, prompt="")
    assert loaded.done_reason == "load"
    assert [model.model for model in client.ps().models] == ["sim-model:latest"]
    unloaded = client.generate(model=MODEL, prompt="", keep_alive=0)
    assert unloaded.done_reason == "unload"
    assert client.ps().models == []


# --- errors and limits ------------------------------------------------------------------------


def test_unknown_model_is_404_with_ollamas_text(sim: SimulatorThread, client: ollama.Client) -> None:
    with pytest.raises(ollama.ResponseError) as caught:
        client.chat(model="nope", messages=HELLO)
    assert caught.value.status_code == 404
    assert caught.value.error == 'model "nope" not found, try pulling it first'
    missing = httpx.post(sim.url + "/api/chat", json={"messages": HELLO})
    assert missing.status_code == 400 and missing.json() == {"error": "model is required"}


def test_full_queue_is_a_503() -> None:
    config = SimulatorConfig(kind="ollama", models=(MODEL,), fault="stall-after-1", num_parallel=1, max_queue=0)
    body = {"model": MODEL, "messages": HELLO}
    with SimulatorThread(config) as sim, httpx.Client(base_url=sim.url, timeout=5) as http:
        with http.stream("POST", "/api/chat", json=body) as running:
            lines = running.iter_lines()
            assert json.loads(next(lines))["done"] is False  # it holds the only slot
            with ollama.Client(host=sim.url) as client, pytest.raises(ollama.ResponseError) as caught:
                client.chat(model=MODEL, messages=HELLO)
            assert caught.value.status_code == 503 and "server busy" in caught.value.error
        assert sim.wait_for(lambda records: records[0].disconnected is not None)


# --- faults -----------------------------------------------------------------------------------


@pytest.mark.parametrize("fault", ["error-500", "error-429", "error-400", "error-503"])
def test_error_faults(client: ollama.Client, fault: str) -> None:
    with pytest.raises(ollama.ResponseError) as caught:
        client.chat(model=fault, messages=HELLO)
    assert caught.value.status_code == int(fault.removeprefix("error-"))


def test_mid_stream_error_raises_after_two_parts(client: ollama.Client) -> None:
    parts: list[ollama.ChatResponse] = []
    with pytest.raises(ollama.ResponseError) as caught:
        parts.extend(client.chat(model="mid-stream-error", messages=HELLO, stream=True))
    assert len(parts) == 2 and caught.value.status_code == -1


def test_no_done_ends_without_a_done_line(client: ollama.Client) -> None:
    parts = list(client.chat(model="no-done", messages=HELLO, stream=True))
    assert parts and not any(part.done for part in parts)


def test_done_without_finish_ends_after_three_parts_without_a_done_line(client: ollama.Client) -> None:
    parts = list(client.chat(model="done-without-finish", messages=HELLO, stream=True))
    assert len(parts) == 3 and not any(part.done or part.done_reason for part in parts)


def test_drop_mid_stream_breaks_the_connection(client: ollama.Client) -> None:
    parts: list[ollama.ChatResponse] = []
    with pytest.raises(httpx.RemoteProtocolError):
        parts.extend(client.chat(model="drop-mid-stream", messages=HELLO, stream=True))
    assert len(parts) == 3


def test_whole_replies_under_stream_faults(client: ollama.Client) -> None:
    with pytest.raises(httpx.RemoteProtocolError):
        client.chat(model="drop-mid-stream", messages=HELLO)
    with pytest.raises(ollama.ResponseError) as caught:
        client.chat(model="mid-stream-error", messages=HELLO)
    assert caught.value.status_code == 500
    assert client.chat(model="no-done", messages=HELLO).done
    assert client.chat(model="done-without-finish", messages=HELLO).done


def test_garbage_lines_are_not_json(client: ollama.Client) -> None:
    with pytest.raises(json.JSONDecodeError):
        list(client.chat(model="garbage-sse", messages=HELLO, stream=True))


def test_stall_and_never_answer_wait_for_the_client_to_leave(sim: SimulatorThread) -> None:
    timeout = httpx.Timeout(5.0, read=0.3)
    with httpx.stream("POST", sim.url + "/api/chat", json={"model": "stall-after-3", "messages": HELLO},
                      timeout=timeout) as response:  # fmt: skip
        lines = response.iter_lines()
        assert [json.loads(next(lines))["done"] for _ in range(3)] == [False] * 3
        with pytest.raises(httpx.ReadTimeout):
            next(lines)
    with pytest.raises(httpx.ReadTimeout):
        httpx.post(sim.url + "/api/chat", json={"model": "never-answer", "messages": HELLO}, timeout=timeout)
    assert sim.wait_for(lambda records: all(r.disconnected is not None for r in records))
    stalled, never = sim.records
    assert len(stalled.chunk_times) == 3 and never.status == 0


def test_configured_fault_applies_to_every_request() -> None:
    with (
        SimulatorThread(SimulatorConfig(kind="ollama", models=(MODEL,), fault="error-500")) as faulty,
        ollama.Client(host=faulty.url) as faulty_client,
        pytest.raises(ollama.ResponseError),
    ):
        faulty_client.chat(model=MODEL, messages=HELLO)


def test_slow_spaces_tokens(sim: SimulatorThread, client: ollama.Client) -> None:
    list(client.chat(model="slow", messages=HELLO, stream=True, options={"num_predict": 2}))
    [record] = records_at(sim, "/api/chat")
    first, second = record.chunk_times[:2]
    assert record.fault == "slow" and second - first >= 0.2 * 0.95


# --- KV cache ---------------------------------------------------------------------------------


def test_a_repeated_prefix_is_served_from_the_kv_cache(sim: SimulatorThread, client: ollama.Client) -> None:
    system = {"role": "system", "content": "You answer briefly and precisely. " * 20}
    client.chat(model=MODEL, messages=[system, {"role": "user", "content": "first question"}])
    client.chat(model=MODEL, messages=[system, {"role": "user", "content": "second question"}])
    first, second = records_at(sim, "/api/chat")
    assert first.cached_prompt_tokens == 0 and second.cached_prompt_tokens > 0.8 * second.prompt_tokens
