"""Tool calls from the simulated workers on chat: vLLM's chat completions (the openai SDK) and Ollama's
/api/chat (the official `ollama` client); and the deterministic arguments they carry."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import ollama
import openai
import pytest
from openai.types.chat import (
    ChatCompletionMessageFunctionToolCall,
    ChatCompletionMessageParam,
    ChatCompletionToolParam,
)
from openai.types.chat.chat_completion_message_function_tool_call_param import Function

from simulator import SimulatorConfig, SimulatorThread
from simulator.tool_calls import arguments_from_schema, forced_choice, offered_tools

MODEL = "sim-model"
HELLO: list[ChatCompletionMessageParam] = [{"role": "user", "content": "weather in Paris?"}]
SCHEMA: dict[str, object] = {
    "type": "object",
    "properties": {
        "city": {"type": "string"},
        "days": {"type": "integer"},
        "metric": {"type": "boolean"},
        "where": {"type": "object", "properties": {"lat": {"type": "number"}}, "required": ["lat"]},
        "note": {"type": "string"},
    },
    "required": ["city", "days", "metric", "where"],
}
WEATHER: ChatCompletionToolParam = {"type": "function", "function": {"name": "get_weather", "parameters": SCHEMA}}
CLOCK: ChatCompletionToolParam = {"type": "function", "function": {"name": "get_time", "parameters": {}}}
ARGUMENTS = {"city": "x", "days": 1, "metric": True, "where": {"lat": 1}}


@pytest.fixture
def sim() -> Iterator[SimulatorThread]:
    with SimulatorThread(SimulatorConfig(kind="vllm", models=(MODEL,), default_max_tokens=64)) as simulator:
        yield simulator


@pytest.fixture
def client(sim: SimulatorThread) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(base_url=sim.url + "/v1", api_key="unused", max_retries=0, timeout=5) as sdk:
        yield sdk


def test_arguments_follow_the_schema_deterministically() -> None:
    assert arguments_from_schema(SCHEMA) == ARGUMENTS
    everything = {"properties": {"a": {"type": ["null", "integer"]}, "b": {"enum": ["on", "off"]}, "c": {}}}
    assert arguments_from_schema(everything) == {"a": 1, "b": "on", "c": "x"}
    assert arguments_from_schema(None) == {} and arguments_from_schema({"type": "array"}) == {}


def test_tool_shapes_of_every_protocol_are_read() -> None:
    chat = [WEATHER]
    responses = [{"type": "function", "name": "get_weather", "parameters": SCHEMA}]
    messages = [{"name": "get_weather", "input_schema": SCHEMA}]
    for tools in (chat, responses, messages):
        assert offered_tools(tools) == [("get_weather", SCHEMA)]
    choices: list[tuple[Any, Any]] = [
        ("required", ("required", None)),
        ({"type": "any"}, ("required", None)),
        ({"type": "function", "function": {"name": "f"}}, ("named", "f")),
        ({"type": "function", "name": "f"}, ("named", "f")),
        ({"type": "tool", "name": "f"}, ("named", "f")),
        ("auto", None),
        ({"type": "auto"}, None),
    ]
    for choice, expected in choices:
        assert forced_choice(choice) == expected


def test_required_tool_choice_finishes_with_tool_calls(client: openai.OpenAI) -> None:
    completion = client.chat.completions.create(model=MODEL, messages=HELLO, tools=[WEATHER], tool_choice="required")
    [choice] = completion.choices
    assert choice.finish_reason == "tool_calls" and choice.message.content == ""
    assert choice.message.tool_calls is not None
    [call] = choice.message.tool_calls
    assert call.type == "function" and call.id.startswith("chatcmpl-tool-")
    assert call.function.name == "get_weather" and json.loads(call.function.arguments) == ARGUMENTS
    assert completion.usage is not None and completion.usage.completion_tokens == -(-len(call.function.arguments) // 4)


def test_named_tool_choice_finishes_with_stop_like_vllm(client: openai.OpenAI) -> None:
    completion = client.chat.completions.create(
        model=MODEL,
        messages=HELLO,
        tools=[WEATHER, CLOCK],
        tool_choice={"type": "function", "function": {"name": "get_time"}},
    )
    [choice] = completion.choices
    assert choice.finish_reason == "stop" and choice.message.tool_calls is not None
    [call] = choice.message.tool_calls
    assert isinstance(call, ChatCompletionMessageFunctionToolCall) and call.function.name == "get_time"


def test_streamed_call_sends_id_and_name_first_then_arguments(sim: SimulatorThread, client: openai.OpenAI) -> None:
    chunks = list(client.chat.completions.create(model="tool-call", messages=HELLO, tools=[WEATHER], stream=True))
    deltas = [chunk.choices[0].delta.tool_calls for chunk in chunks[1:-1]]
    assert chunks[0].choices[0].delta.role == "assistant" and chunks[-1].choices[0].finish_reason == "tool_calls"
    assert all(delta is not None and len(delta) == 1 for delta in deltas)
    first, *rest = [delta[0] for delta in deltas if delta is not None]
    assert first.id is not None and first.type == "function" and first.function is not None
    assert first.function.name == "get_weather"
    assert all(call.id is None and call.function is not None and call.function.name is None for call in rest)
    pieces = [call.function.arguments or "" for call in (first, *rest) if call.function is not None]
    assert json.loads("".join(pieces)) == ARGUMENTS and len(pieces) == sim.records[-1].completion_tokens


def test_a_tool_result_gets_a_text_answer(client: openai.OpenAI) -> None:
    first = client.chat.completions.create(model=MODEL, messages=HELLO, tools=[WEATHER], tool_choice="required")
    [call] = first.choices[0].message.tool_calls or []
    assert isinstance(call, ChatCompletionMessageFunctionToolCall)
    function: Function = {"name": call.function.name, "arguments": call.function.arguments}
    conversation: list[ChatCompletionMessageParam] = [
        *HELLO,
        {"role": "assistant", "content": "", "tool_calls": [{"id": call.id, "type": "function", "function": function}]},
        {"role": "tool", "tool_call_id": call.id, "content": "sunny"},
    ]
    second = client.chat.completions.create(model=MODEL, messages=conversation, tools=[WEATHER], tool_choice="required")
    assert second.choices[0].finish_reason == "stop" and second.choices[0].message.content
    assert not second.choices[0].message.tool_calls


def test_no_tools_or_tool_choice_none_get_text(client: openai.OpenAI) -> None:
    plain = client.chat.completions.create(model="tool-call", messages=HELLO)
    refused = client.chat.completions.create(model="tool-call", messages=HELLO, tools=[WEATHER], tool_choice="none")
    for completion in (plain, refused):
        assert completion.choices[0].message.content and not completion.choices[0].message.tool_calls


def test_tool_call_fault_for_every_request_and_a_cut_call() -> None:
    config = SimulatorConfig(models=(MODEL,), fault="tool-call")
    with SimulatorThread(config) as sim, openai.OpenAI(base_url=sim.url + "/v1", api_key="unused") as client:
        completion = client.chat.completions.create(model=MODEL, messages=HELLO, tools=[WEATHER], max_tokens=3)
    [choice] = completion.choices
    assert choice.finish_reason == "length" and choice.message.tool_calls is not None
    [call] = choice.message.tool_calls
    assert isinstance(call, ChatCompletionMessageFunctionToolCall)
    assert call.function.arguments == json.dumps(ARGUMENTS, separators=(",", ":"))[:12]  # 3 tokens of 4 characters


def test_ollama_chat_sends_a_parsed_call_whole() -> None:
    tools: list[Any] = [WEATHER]
    with SimulatorThread(SimulatorConfig(kind="ollama", models=(MODEL,))) as sim, ollama.Client(host=sim.url) as client:
        whole = client.chat(model="tool-call", messages=HELLO, tools=tools)
        parts = list(client.chat(model="tool-call", messages=HELLO, tools=tools, stream=True))
        cut = client.chat(model="tool-call", messages=HELLO, tools=tools, options={"num_predict": 3})
    assert whole.done_reason == "stop" and whole.message.content == "" and whole.message.tool_calls is not None
    [call] = whole.message.tool_calls
    arguments = {**ARGUMENTS, "where": {}}  # the ollama client sends nested objects without their properties
    assert call.function.name == "get_weather" and call.function.arguments == arguments
    assert [part.done for part in parts] == [False, True]  # the call's line, then the done line
    assert parts[0].message.tool_calls is not None and parts[0].message.tool_calls[0].function.arguments == arguments
    assert parts[1].eval_count == whole.eval_count
    assert cut.done_reason == "length" and not cut.message.tool_calls and cut.message.content  # unparsed: text


def test_a_tool_round_trip_is_the_same_prompt_on_every_surface(sim: SimulatorThread) -> None:
    call = {"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": "{}"}}
    chat = [*HELLO, {"role": "assistant", "content": "", "tool_calls": [call]},
            {"role": "tool", "tool_call_id": "call_1", "content": "sunny"}]  # fmt: skip
    responses = [*HELLO, {"type": "function_call", "call_id": "call_1", "name": "get_weather", "arguments": "{}"},
                 {"type": "function_call_output", "call_id": "call_1", "output": "sunny"}]  # fmt: skip
    use = {"type": "tool_use", "id": "call_1", "name": "get_weather", "input": {}}
    result = {"type": "tool_result", "tool_use_id": "call_1", "content": "sunny"}
    messages = [*HELLO, {"role": "assistant", "content": [use]}, {"role": "user", "content": [result]}]
    requests: list[tuple[str, dict[str, Any]]] = [
        ("/v1/chat/completions", {"messages": chat}),
        ("/v1/responses", {"input": responses}),
        ("/v1/messages", {"messages": messages, "max_tokens": 64}),
    ]
    for path, body in requests:
        response = httpx.post(sim.url + path, json={"model": MODEL, **body}, timeout=5)
        assert response.status_code == 200, response.text
    prompts = {record.path: record.prompt_tokens for record in sim.records}
    assert len(prompts) == 3 and len(set(prompts.values())) == 1


@pytest.mark.parametrize("path", ["/v1/responses", "/v1/messages"])
def test_drop_mid_stream_cuts_the_event_stream(sim: SimulatorThread, path: str) -> None:
    body = {"model": "drop-mid-stream", "input": "hello", "messages": HELLO, "max_tokens": 64, "stream": True}
    lines: list[str] = []
    with pytest.raises(httpx.RemoteProtocolError), httpx.stream("POST", sim.url + path, json=body, timeout=5) as reply:
        lines.extend(reply.iter_lines())
    deltas = [line for line in lines if line.startswith("event: ") and "delta" in line]
    assert len(deltas) == 3 and not any(line.endswith(("response.completed", "message_stop")) for line in lines)
