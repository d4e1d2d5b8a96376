"""The simulated workers speak Anthropic's Messages API (`POST /v1/messages`), as the official SDK sees it.

Plain and streamed answers, `count_tokens`, tool use and its round trip, and errors in each server's
shape: vLLM's (its error type names in Anthropic's envelope, an `error` event mid-stream) and Ollama's
(Anthropic's types; a failure mid-stream just ends the stream).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import anthropic
import httpx
import pytest
from anthropic.types import MessageParam, TextBlock, ToolParam, ToolUseBlock

from simulator import RequestRecord, SimulatorConfig, SimulatorThread

MODEL = "sim-model"
HELLO: list[MessageParam] = [{"role": "user", "content": "hello there"}]
WEATHER: ToolParam = {
    "name": "get_weather",
    "description": "The weather in a city.",
    "input_schema": {"type": "object", "properties": {"city": {"type": "string"}, "days": {"type": "integer"}}},
}
CLOCK: ToolParam = {"name": "get_time", "input_schema": {"type": "object", "properties": {}}}


@pytest.fixture(params=["vllm", "ollama"])
def sim(request: pytest.FixtureRequest) -> Iterator[SimulatorThread]:
    with SimulatorThread(SimulatorConfig(kind=request.param, models=(MODEL,), seed=11)) as simulator:
        yield simulator


@pytest.fixture
def client(sim: SimulatorThread) -> Iterator[anthropic.Anthropic]:
    with anthropic.Anthropic(base_url=sim.url, api_key="unused", max_retries=0, timeout=5) as sdk:
        yield sdk


def messages_records(sim: SimulatorThread) -> list[RequestRecord]:
    return [record for record in sim.records if record.path == "/v1/messages"]


def test_create_answers_text_with_usage(sim: SimulatorThread, client: anthropic.Anthropic) -> None:
    message = client.messages.create(model=MODEL, max_tokens=100, messages=HELLO, system="Be brief.")
    assert message.type == "message" and message.role == "assistant" and message.model == MODEL
    assert message.id.startswith("chatcmpl-" if sim.config.kind == "vllm" else "msg_")
    [block] = message.content
    assert isinstance(block, TextBlock) and block.text and message.stop_reason == "end_turn"
    [record] = messages_records(sim)
    assert message.usage.input_tokens == record.prompt_tokens > 0
    assert message.usage.output_tokens == record.completion_tokens == len(block.text.split())


def test_max_tokens_cut_stops_with_max_tokens(sim: SimulatorThread, client: anthropic.Anthropic) -> None:
    message = client.messages.create(model=MODEL, max_tokens=2, messages=HELLO)
    assert message.stop_reason == "max_tokens" and message.usage.output_tokens == 2


def test_stream_sends_the_messages_events(sim: SimulatorThread, client: anthropic.Anthropic) -> None:
    whole = client.messages.create(model=MODEL, max_tokens=100, messages=HELLO)
    with client.messages.stream(model=MODEL, max_tokens=100, messages=HELLO) as stream:
        kinds = [event.type for event in stream]
        final = stream.get_final_message()
    assert kinds[:2] == ["message_start", "content_block_start"]
    assert kinds[-3:] == ["content_block_stop", "message_delta", "message_stop"] and "ping" not in kinds
    assert kinds.count("text") == whole.usage.output_tokens  # the SDK's text event for each text_delta
    [block], [whole_block] = final.content, whole.content
    assert isinstance(block, TextBlock) and isinstance(whole_block, TextBlock)
    assert block.text == whole_block.text and final.stop_reason == "end_turn"
    assert final.usage.input_tokens == whole.usage.input_tokens
    assert final.usage.output_tokens == whole.usage.output_tokens


def test_count_tokens_matches_the_input_tokens_of_an_answer(sim: SimulatorThread, client: anthropic.Anthropic) -> None:
    conversation: list[MessageParam] = [*HELLO, {"role": "assistant", "content": "Hi."}, *HELLO]
    counted = client.messages.count_tokens(model=MODEL, messages=conversation, system="Be brief.")
    message = client.messages.create(model=MODEL, max_tokens=10, messages=conversation, system="Be brief.")
    assert counted.input_tokens == message.usage.input_tokens > 0


def test_any_tool_choice_streams_a_tool_use(sim: SimulatorThread, client: anthropic.Anthropic) -> None:
    request: dict[str, Any] = {"model": MODEL, "max_tokens": 100, "messages": HELLO, "tools": [WEATHER, CLOCK]}
    with client.messages.stream(**request, tool_choice={"type": "any"}) as stream:
        events = list(stream)
        final = stream.get_final_message()
    [block] = final.content
    assert isinstance(block, ToolUseBlock) and block.name == "get_weather" and block.input == {"city": "x", "days": 1}
    assert final.stop_reason == "tool_use"
    pieces = [event.delta.partial_json for event in events
              if event.type == "content_block_delta" and event.delta.type == "input_json_delta"]  # fmt: skip
    assert json.loads("".join(pieces)) == block.input
    if sim.config.kind == "vllm":  # token by token; Ollama sends the parsed call whole
        assert len(pieces) == messages_records(sim)[-1].completion_tokens > 1
    else:
        assert len(pieces) == 1


def test_named_tool_choice_calls_that_tool(sim: SimulatorThread, client: anthropic.Anthropic) -> None:
    choice: Any = {"type": "tool", "name": "get_time"}
    tools = [WEATHER, CLOCK]
    message = client.messages.create(model=MODEL, max_tokens=100, messages=HELLO, tools=tools, tool_choice=choice)
    [block] = message.content
    assert isinstance(block, ToolUseBlock) and block.name == "get_time" and block.input == {}
    # vLLM runs Messages through chat, where a named tool choice finishes with "stop"
    assert message.stop_reason == ("end_turn" if sim.config.kind == "vllm" else "tool_use")


def test_tool_use_round_trip_ends_with_text(sim: SimulatorThread, client: anthropic.Anthropic) -> None:
    first = client.messages.create(model="tool-call", max_tokens=100, messages=HELLO, tools=[WEATHER])
    [call] = first.content
    assert isinstance(call, ToolUseBlock) and first.stop_reason == "tool_use"
    conversation: list[MessageParam] = [
        *HELLO,
        {"role": "assistant", "content": [{"type": "tool_use", "id": call.id, "name": call.name, "input": call.input}]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": call.id, "content": "sunny"}]},
    ]
    second = client.messages.create(model="tool-call", max_tokens=100, messages=conversation, tools=[WEATHER])
    [answer] = second.content
    assert isinstance(answer, TextBlock) and answer.text and second.stop_reason == "end_turn"
    assert second.usage.input_tokens > first.usage.input_tokens


def test_error_faults_use_each_servers_error_shape(sim: SimulatorThread, client: anthropic.Anthropic) -> None:
    with pytest.raises(anthropic.RateLimitError) as limited:
        client.messages.create(model="error-429", max_tokens=10, messages=HELLO)
    with pytest.raises(anthropic.NotFoundError) as missing:
        client.messages.create(model="no-such-model", max_tokens=10, messages=HELLO)
    with pytest.raises(anthropic.InternalServerError) as failed:
        client.messages.count_tokens(model="error-500", messages=HELLO)
    for error in (limited.value, missing.value, failed.value):
        assert isinstance(error.body, dict) and error.body["type"] == "error"
    vllm = sim.config.kind == "vllm"
    assert isinstance(limited.value.body, dict)
    assert limited.value.body["error"]["type"] == ("TooManyRequestsError" if vllm else "rate_limit_error")
    assert isinstance(missing.value.body, dict) and "no-such-model" in missing.value.body["error"]["message"]


def test_missing_max_tokens_is_a_400(sim: SimulatorThread) -> None:
    response = httpx.post(sim.url + "/v1/messages", json={"model": MODEL, "messages": HELLO}, timeout=5)
    assert response.status_code == 400
    if sim.config.kind == "vllm":  # rejected by vLLM's request validation, before its Messages handler
        assert response.json()["error"]["param"] == "max_tokens"
    else:
        assert response.json()["error"] == {"type": "invalid_request_error",
                                            "message": "max_tokens is required and must be positive"}  # fmt: skip


def test_mid_stream_error_is_an_error_event_on_vllm(sim: SimulatorThread, client: anthropic.Anthropic) -> None:
    stream = client.messages.stream(model="mid-stream-error", max_tokens=100, messages=HELLO)
    if sim.config.kind == "vllm":
        with pytest.raises(anthropic.APIStatusError, match="fault mid-stream-error"), stream as events:
            list(events)
        return
    with stream as events:  # Ollama drops the failure: the stream ends without message_stop
        kinds = [event.type for event in events]
    assert kinds.count("text") == 2 and "message_stop" not in kinds and "message_delta" not in kinds
