"""The anthropic SDK through the gateway against scripted workers doing what the simulator does not: a
tool-use round trip with a worker that calls a tool as vLLM streams it (the call's id and name first,
then its arguments in pieces): the tool_use block, whole and streamed as input_json_delta pieces, then
the tool_result sent back as chat's tool message; and a reasoning worker's thinking blocks."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import anthropic
import pytest
from anthropic.types import MessageParam, ToolParam

from tests.conftest import catalog_yaml, start_gateway
from tests.reliability.asgi_workers import Answer, answering_worker
from tests.servers import ServerThread

TOOLS: list[ToolParam] = [{"name": "weather", "description": "The weather in a city",
                           "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}}}]
ASK: list[MessageParam] = [{"role": "user", "content": "Weather in Oslo?"}]
_CALL = {"id": "call_7", "type": "function", "function": {"name": "weather", "arguments": '{"city": "Oslo"}'}}
_USAGE = {"prompt_tokens": 21, "completion_tokens": 9, "total_tokens": 30}


def _sse(chunk: dict[str, Any]) -> bytes:
    return b"data: " + json.dumps({"id": "chatcmpl-t", "object": "chat.completion.chunk", "model": "m",
                                   **chunk}).encode() + b"\n\n"


def _delta(delta: dict[str, Any], finish: str | None = None) -> bytes:
    return _sse({"choices": [{"index": 0, "delta": delta, "finish_reason": finish}]})


def _tool_calling(received: list[dict[str, Any]]) -> Answer:
    """The worker's answer to the last request in `received`: a tool call, or text once a tool answered."""
    body = received[-1]
    answered = body["messages"][-1]["role"] == "tool"
    if not body.get("stream"):
        message = {"role": "assistant", "content": "Take an umbrella."} if answered else \
            {"role": "assistant", "content": None, "tool_calls": [_CALL]}
        whole = {"id": "chatcmpl-t", "object": "chat.completion", "model": "m", "usage": _USAGE, "choices": [
            {"index": 0, "message": message, "finish_reason": "stop" if answered else "tool_calls"}]}
        return 200, [(b"content-type", b"application/json")], [json.dumps(whole).encode()]
    pieces = [_delta({"role": "assistant", "content": ""}),
              _delta({"tool_calls": [{"index": 0, "id": "call_7", "type": "function",
                                      "function": {"name": "weather", "arguments": ""}}]}),
              _delta({"tool_calls": [{"index": 0, "function": {"arguments": '{"city": '}}]}),
              _delta({"tool_calls": [{"index": 0, "function": {"arguments": '"Oslo"}'}}]}),
              _delta({}, "tool_calls"), _sse({"choices": [], "usage": _USAGE}), b"data: [DONE]\n\n"]
    return 200, [(b"content-type", b"text/event-stream")], pieces


@pytest.fixture(scope="module")
def received() -> list[dict[str, Any]]:
    return []


@pytest.fixture(scope="module")
def client(received: list[dict[str, Any]]) -> Iterator[anthropic.Anthropic]:
    def answer(raw: bytes) -> Answer:
        received.append(json.loads(raw))
        return _tool_calling(received)

    with ServerThread(answering_worker(answer)) as worker, \
            start_gateway(catalog_yaml([("tools", worker.url)], kind="openai")) as gateway, \
            anthropic.Anthropic(base_url=gateway.url, api_key="k", max_retries=0) as sdk:
        yield sdk


def test_a_tool_call_comes_back_as_a_tool_use_block(client: anthropic.Anthropic) -> None:
    message = client.messages.create(model="chat", max_tokens=64, tools=TOOLS, messages=ASK)
    assert message.stop_reason == "tool_use"
    [block] = message.content
    assert block.type == "tool_use" and (block.id, block.name, block.input) == ("call_7", "weather", {"city": "Oslo"})
    assert (message.usage.input_tokens, message.usage.output_tokens) == (21, 9)


def test_a_streamed_tool_call_arrives_in_input_json_deltas(client: anthropic.Anthropic) -> None:
    with client.messages.stream(model="chat", max_tokens=64, tools=TOOLS, messages=ASK) as stream:
        kinds = [event.type for event in stream]
        final = stream.get_final_message()
    assert kinds.count("input_json") == 2 and kinds[-1] == "message_stop"
    [block] = final.content
    assert block.type == "tool_use" and (block.id, block.name, block.input) == ("call_7", "weather", {"city": "Oslo"})
    assert final.stop_reason == "tool_use" and final.usage.output_tokens == 9


def test_the_tool_result_goes_back_as_a_tool_message(client: anthropic.Anthropic,
                                                     received: list[dict[str, Any]]) -> None:
    call = client.messages.create(model="chat", max_tokens=64, tools=TOOLS, messages=ASK)
    [use] = call.content
    assert use.type == "tool_use"
    answer = client.messages.create(model="chat", max_tokens=64, tools=TOOLS, messages=[
        *ASK, {"role": "assistant", "content": [{"type": "tool_use", "id": use.id, "name": use.name,
                                                 "input": use.input}]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": use.id, "content": "Rain, 4 C"}]}])
    assert answer.stop_reason == "end_turn" and answer.content[0].type == "text"
    assert answer.content[0].text == "Take an umbrella."
    assert received[-1]["messages"][-2:] == [
        {"role": "assistant", "content": None, "tool_calls": [
            {"id": "call_7", "type": "function", "function": {"name": "weather", "arguments": '{"city":"Oslo"}'}}]},
        {"role": "tool", "tool_call_id": "call_7", "content": "Rain, 4 C"}]


def _reasoning(raw: bytes) -> Answer:
    """A worker that reasons before answering (llama.cpp's `reasoning_content`), streamed or whole."""
    if not json.loads(raw).get("stream"):
        whole = {"id": "chatcmpl-r", "object": "chat.completion", "model": "m", "usage": _USAGE, "choices": [
            {"index": 0, "finish_reason": "stop",
             "message": {"role": "assistant", "content": "42", "reasoning_content": "Six times seven."}}]}
        return 200, [(b"content-type", b"application/json")], [json.dumps(whole).encode()]
    pieces = [_delta({"role": "assistant", "content": ""}), _delta({"reasoning_content": "Six times"}),
              _delta({"reasoning_content": " seven."}), _delta({"content": "42"}), _delta({}, "stop"),
              _sse({"choices": [], "usage": _USAGE}), b"data: [DONE]\n\n"]
    return 200, [(b"content-type", b"text/event-stream")], pieces


def test_a_reasoning_workers_thinking_blocks() -> None:
    with ServerThread(answering_worker(_reasoning)) as worker, \
            start_gateway(catalog_yaml([("thinker", worker.url)], kind="openai")) as gateway, \
            anthropic.Anthropic(base_url=gateway.url, api_key="k", max_retries=0) as sdk:
        whole = sdk.messages.create(model="chat", max_tokens=64, messages=ASK,
                                    thinking={"type": "enabled", "budget_tokens": 1024})
        with sdk.messages.stream(model="chat", max_tokens=64, messages=ASK,
                                 thinking={"type": "enabled", "budget_tokens": 1024}) as stream:
            streamed = stream.get_final_message()
        plain = sdk.messages.create(model="chat", max_tokens=64, messages=ASK)
    for message in (whole, streamed):
        assert [block.type for block in message.content] == ["thinking", "text"]
        assert getattr(message.content[0], "thinking", None) == "Six times seven."
        assert getattr(message.content[1], "text", None) == "42"
    assert [block.type for block in plain.content] == ["text"]
