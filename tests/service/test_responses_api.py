"""The OpenAI Responses API through the gateway to a simulated vLLM (translated to chat completions), with
the official openai SDK: created plain and streamed (both SDK ways), stored, continued, retrieved and
deleted; function tools and their history reach the worker translated; malformed requests are 400s
naming the field; a worker cut mid-stream gives `response.failed`; routing rules, the cache, the log
line and the metrics treat it as one pipeline."""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import openai
import pytest
import structlog

from simulator import SimulatorThread
from tests.conftest import FAULT_MODELS, SIM_MODEL, catalog_yaml, start_gateway
from tests.servers import ServerThread

TOOL: dict[str, Any] = {"type": "function", "name": "get_weather", "description": "The weather in a city",
                        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}
PARIS = "{\"city\":\"Paris\"}"


@pytest.fixture(scope="module")
def gw(vllm_sim: SimulatorThread) -> Iterator[ServerThread]:
    """An open gateway in front of the simulator as a worker of kind `openai` (Responses reach it translated);
    fault models are models of their name."""
    text = catalog_yaml([("sim-a", vllm_sim.url)], idle=1.0, first_byte=3.0, extra_models=FAULT_MODELS,
                        kind="openai")
    with start_gateway(text) as server:
        yield server


@pytest.fixture
def sdk(gw: ServerThread) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(base_url=gw.url + "/v1", api_key="client-secret", max_retries=0) as client:
        yield client


def chat_records(sim: SimulatorThread) -> list[dict[str, Any]]:
    return [r.body for r in sim.records if r.path == "/v1/chat/completions" and r.body is not None]


def test_create_retrieve_continue_and_delete(sdk: openai.OpenAI, sim: SimulatorThread) -> None:
    first = sdk.responses.create(model="chat", input="Say hello", instructions="Be terse", max_output_tokens=200)
    assert first.status == "completed" and first.object == "response" and first.output_text
    assert first.model == "chat" and first.instructions == "Be terse" and first.to_dict()["store"] is True
    assert first.usage is not None and first.usage.input_tokens > 0 and first.usage.output_tokens > 0
    [sent] = chat_records(sim)
    assert sent["messages"] == [{"role": "system", "content": "Be terse"}, {"role": "user", "content": "Say hello"}]
    assert sent["max_tokens"] == 200 and sent["model"] == SIM_MODEL
    assert sdk.responses.retrieve(first.id).model_dump() == first.model_dump()

    second = sdk.responses.create(model="chat", input="And again", instructions="Be kind",
                                  previous_response_id=first.id)
    assert second.previous_response_id == first.id and second.output_text
    assert chat_records(sim)[-1]["messages"] == [  # the new instructions only, then the whole conversation
        {"role": "system", "content": "Be kind"}, {"role": "user", "content": "Say hello"},
        {"role": "assistant", "content": first.output_text}, {"role": "user", "content": "And again"}]
    third = sdk.responses.create(model="chat", input="Once more", previous_response_id=second.id)
    assert [m["content"] for m in chat_records(sim)[-1]["messages"]] == [
        "Say hello", first.output_text, "And again", second.output_text, "Once more"]
    assert third.status in ("completed", "incomplete")

    sdk.responses.delete(first.id)
    with pytest.raises(openai.NotFoundError) as gone:
        sdk.responses.retrieve(first.id)
    assert gone.value.body["param"] == "response_id"  # type: ignore[index]
    with pytest.raises(openai.NotFoundError) as missing:
        sdk.responses.create(model="chat", input="x", previous_response_id=first.id)
    assert missing.value.body["code"] == "previous_response_not_found"  # type: ignore[index]
    assert missing.value.body["param"] == "previous_response_id"  # type: ignore[index]
    with pytest.raises(openai.NotFoundError):
        sdk.responses.delete(first.id)


def test_store_false_is_not_kept(sdk: openai.OpenAI) -> None:
    response = sdk.responses.create(model="chat", input="Forget me", store=False)
    assert response.to_dict()["store"] is False
    with pytest.raises(openai.NotFoundError):
        sdk.responses.retrieve(response.id)
    streamed = list(sdk.responses.create(model="chat", input="Forget me too", store=False, stream=True))
    with pytest.raises(openai.NotFoundError):
        sdk.responses.retrieve(streamed[0].response.id)  # type: ignore[union-attr]


def test_streamed_events_and_the_stream_helper(sdk: openai.OpenAI, sim: SimulatorThread) -> None:
    events = list(sdk.responses.create(model="chat", input="Stream it", max_output_tokens=200, stream=True))
    kinds = [e.type for e in events]
    assert kinds[:4] == ["response.created", "response.in_progress", "response.output_item.added",
                         "response.content_part.added"]
    assert kinds[-4:] == ["response.output_text.done", "response.content_part.done", "response.output_item.done",
                          "response.completed"]
    deltas = [e.delta for e in events if e.type == "response.output_text.delta"]
    assert len(deltas) > 1 and [e.sequence_number for e in events] == list(range(len(events)))
    final = events[-1].response  # type: ignore[union-attr]
    assert final.output_text == "".join(deltas) and final.usage is not None and final.usage.output_tokens > 0
    assert chat_records(sim)[-1]["stream_options"] == {"include_usage": True}
    assert sdk.responses.retrieve(final.id).output_text == final.output_text  # kept once complete

    with sdk.responses.stream(model="chat", input="Stream it again", max_output_tokens=200) as stream:
        texts = [e.delta for e in stream if e.type == "response.output_text.delta"]
        response = stream.get_final_response()
    assert response.status == "completed" and response.output_text == "".join(texts)


def test_a_stream_cut_at_max_output_tokens_is_incomplete(sdk: openai.OpenAI) -> None:
    events = list(sdk.responses.create(model="chat", input="Stream it", max_output_tokens=3, stream=True))
    assert events[-1].type == "response.completed" and events[-1].response.status == "incomplete"
    assert events[-1].response.incomplete_details.reason == "max_output_tokens"  # type: ignore[union-attr]
    plain = sdk.responses.create(model="chat", input="Say it", max_output_tokens=3)
    assert plain.status == "incomplete"


def test_function_tools_and_their_history_reach_the_worker_translated(sdk: openai.OpenAI,
                                                                       sim: SimulatorThread) -> None:
    schema = {"type": "object", "properties": {"answer": {"type": "string"}}, "required": ["answer"]}
    request: dict[str, Any] = {
        "model": "chat", "tools": [TOOL], "tool_choice": "auto",
        "text": {"format": {"type": "json_schema", "name": "answer", "schema": schema, "strict": True}},
        "input": [{"role": "user", "content": "Weather in Paris?"},
                  {"type": "function_call", "call_id": "call_1", "name": "get_weather", "arguments": PARIS},
                  {"type": "function_call_output", "call_id": "call_1", "output": "18C and sunny"}]}
    sdk.responses.create(**request)
    [sent] = chat_records(sim)
    assert sent["tools"] == [{"type": "function", "function": {
        "name": "get_weather", "description": "The weather in a city", "parameters": TOOL["parameters"]}}]
    assert sent["tool_choice"] == "auto"
    assert sent["response_format"] == {"type": "json_schema", "json_schema": {"name": "answer", "schema": schema,
                                                                             "strict": True}}
    assert sent["messages"] == [
        {"role": "user", "content": "Weather in Paris?"},
        {"role": "assistant", "content": None, "tool_calls": [
            {"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": PARIS}}]},
        {"role": "tool", "tool_call_id": "call_1", "content": "18C and sunny"}]


@pytest.mark.parametrize(("body", "param"), [
    ({"model": "chat"}, "input"),
    ({"model": "chat", "input": [{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"},
                                 {"role": "user", "content": [{"type": "input_audio"}]}]}, "input[2].content[0].type"),
    ({"model": "chat", "input": "x", "tools": [{"type": "file_search"}]}, "tools[0].type"),
    ({"model": "chat", "input": "x", "reasoning": {"effort": "high"}}, "reasoning.effort"),
    ({"model": "chat", "input": "x", "max_output_tokens": "many"}, "max_output_tokens"),
])
def test_malformed_requests_are_400s_naming_the_field(gw: ServerThread, sim: SimulatorThread, body: dict[str, Any],
                                                     param: str) -> None:
    response = httpx.post(gw.url + "/v1/responses", json=body)
    assert response.status_code == 400, response.text
    assert response.json()["error"]["param"] == param
    assert chat_records(sim) == []  # no worker was asked


@pytest.mark.parametrize("fault", ["mid-stream-error", "drop-mid-stream", "done-without-finish"])
def test_a_worker_cut_mid_stream_gives_response_failed(sdk: openai.OpenAI, fault: str) -> None:
    events = list(sdk.responses.create(model=fault, input="Stream it", max_output_tokens=200, stream=True))
    assert events[0].type == "response.created"
    assert events[-1].type == "response.failed", [e.type for e in events]
    failed = events[-1].response
    assert failed.status == "failed" and failed.error is not None and failed.error.message
    assert "response.completed" not in [e.type for e in events]
    with pytest.raises(openai.NotFoundError):
        sdk.responses.retrieve(failed.id)  # a failed response is not kept


def test_the_same_routing_rule_fires_for_chat_and_responses(gw: ServerThread, sdk: openai.OpenAI) -> None:
    reminder = {"role": "user", "content": "set a reminder"}
    chat = httpx.post(gw.url + "/v1/chat/completions", json={"messages": [reminder]})
    responses = sdk.responses.with_raw_response.create(input=[{"role": "user", "content": [
        {"type": "input_text", "text": "set a reminder"}]}])
    for headers in (chat.headers, responses.headers):
        assert headers["x-gateway-route"] == "quick-rule" and headers["x-gateway-model"] == "quick"
    assert responses.parse().model == "quick"


def test_a_cached_answer_replays_as_a_responses_stream(gw: ServerThread) -> None:
    body = {"model": "chat", "input": f"cache me {uuid.uuid4()}", "temperature": 0, "max_output_tokens": 200}
    first = httpx.post(gw.url + "/v1/responses", json=body)
    assert first.headers["x-gateway-cache"] == "miss"
    with httpx.stream("POST", gw.url + "/v1/responses", json={**body, "stream": True}) as replay:
        assert replay.headers["x-gateway-cache"] == "hit"
        assert replay.headers["content-type"].startswith("text/event-stream")
        events = [json.loads(line[6:]) for line in replay.iter_lines() if line.startswith("data: ")]
    assert events[-1]["type"] == "response.completed"
    assert events[-1]["response"]["output"][0]["content"][0]["text"] == first.json()["output"][0]["content"][0]["text"]
    assert events[-1]["response"]["id"] != first.json()["id"]  # a response of its own


def test_the_log_line_and_the_metrics_name_responses(vllm_sim: SimulatorThread) -> None:
    with start_gateway(catalog_yaml([("sim-a", vllm_sim.url)], kind="openai"), LOG_LEVEL="info") as gw:
        with structlog.testing.capture_logs() as logs:
            httpx.post(gw.url + "/v1/responses", json={"model": "chat", "input": "hi"},
                       headers={"x-request-id": "resp-1"})
            deadline = time.monotonic() + 5  # the line is written once the response is out: wait for it
            while not any(e.get("request_id") == "resp-1" for e in logs):
                assert time.monotonic() < deadline
                threading.Event().wait(0.01)
        metrics = httpx.get(gw.url + "/metrics").text
    [line] = [e for e in logs if e.get("request_id") == "resp-1" and e["event"] == "request"]
    assert line["path"] == "/v1/responses" and line["status"] == 200 and line["model"] == "chat"
    assert line["tokens_in"] > 0 and line["tokens_out"] > 0
    assert 'llm_gateway_requests_total{endpoint="responses"' in metrics.replace(", ", ",")


def test_input_tokens_counts_the_translated_prompt(sdk: openai.OpenAI, sim: SimulatorThread) -> None:
    short = sdk.responses.input_tokens.count(model="chat", input="hello")
    long = sdk.responses.input_tokens.count(model="chat", input="hello " * 100, instructions="Be terse")
    assert short.object == "response.input_tokens" and 0 < short.input_tokens < long.input_tokens
    assert chat_records(sim) == []  # nothing generated: the worker's tokenizer counted (test_token_counting.py)


def test_the_shape_codex_sends(gw: ServerThread, sim: SimulatorThread) -> None:
    """A turn as Codex (0.171) sends it to a provider with `wire_api = "responses"` (store off, the whole
    input each turn, developer messages, function tools, a namespace of tools, web search, streamed),
    answered as Codex reads it: developer messages join the system message (chat templates know no
    `developer` role), the namespace's functions are offered, web search is left out."""
    close = {"type": "function", "name": "close_agent", "description": "Close an agent", "strict": False,
             "parameters": {"type": "object", "properties": {}}}
    shell = {"type": "function", "name": "shell", "description": "Runs a shell command", "strict": False,
             "parameters": {"type": "object", "properties": {"command": {"type": "array", "items": {"type": "string"}}},
                            "required": ["command"], "additionalProperties": False}}
    body = {
        "model": "chat", "instructions": "You are a coding agent.",
        "input": [
            {"type": "message", "role": "developer", "content": [{"type": "input_text", "text": "<permissions/>"}]},
            {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "List the files"}]},
            {"type": "function_call", "name": "shell", "arguments": "{\"command\":[\"ls\"]}", "call_id": "call_ls"},
            {"type": "function_call_output", "call_id": "call_ls", "output": "README.md\nsrc"}],
        "tools": [shell, {"type": "namespace", "name": "agents", "description": "Sub-agents", "tools": [close]},
                  {"type": "web_search", "external_web_access": False}],
        "tool_choice": "auto", "parallel_tool_calls": False, "reasoning": {"summary": "auto"}, "store": False,
        "stream": True, "include": ["reasoning.encrypted_content"], "prompt_cache_key": str(uuid.uuid4()),
        "client_metadata": {"session_id": "s"}}
    with httpx.stream("POST", gw.url + "/v1/responses", json=body) as reply:
        assert reply.status_code == 200
        lines = list(reply.iter_lines())
    names = [line.removeprefix("event: ") for line in lines if line.startswith("event: ")]
    assert names[0] == "response.created"
    assert names[-1] == "response.completed"
    assert "response.output_item.done" in names and "[DONE]" not in "".join(lines)
    [sent] = chat_records(sim)
    assert [m["role"] for m in sent["messages"]] == ["system", "user", "assistant", "tool"]
    assert sent["messages"][0]["content"] == "You are a coding agent.\n\n<permissions/>"
    assert [t["function"]["name"] for t in sent["tools"]] == ["shell", "close_agent"]
    assert sent["parallel_tool_calls"] is False
    assert sent["prompt_cache_key"] == body["prompt_cache_key"]


def test_the_fast_path_and_litestar_answer_alike(vllm_sim: SimulatorThread) -> None:
    """Responses are answered before litestar; a CORS request goes through its route, with the same turn."""
    origin = "https://app.upcoach.com"
    with start_gateway(catalog_yaml([("sim-a", vllm_sim.url)], kind="openai"), CORS_ORIGINS=origin) as gw:
        fast = httpx.post(gw.url + "/v1/responses", json={"model": "chat", "input": "Hi", "max_output_tokens": 200})
        routed = httpx.post(gw.url + "/v1/responses", headers={"Origin": origin},
                            json={"model": "chat", "input": "Again", "previous_response_id": fast.json()["id"]})
        assert fast.status_code == routed.status_code == 200
        assert routed.headers["access-control-allow-origin"] == origin
        assert "access-control-allow-origin" not in fast.headers
        assert routed.json()["previous_response_id"] == fast.json()["id"]
        stored = httpx.get(gw.url + f"/v1/responses/{routed.json()['id']}", headers={"Origin": origin})
        assert stored.json() == routed.json()
        bad = {"model": "chat", "input": "x", "tools": [{"type": "file_search"}]}
        assert httpx.post(gw.url + "/v1/responses", json=bad).json() == \
            httpx.post(gw.url + "/v1/responses", json=bad, headers={"Origin": origin}).json()
