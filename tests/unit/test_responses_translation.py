"""The Responses surface's translation (`gateway.surfaces.responses*`): requests to chat completions (each
refusal a 400 naming its field), chat answers to Response objects, and recorded chat streams (text,
tool calls, errors) to Responses events."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import msgspec
import pytest

from gateway.errors import InvalidRequest, StoreUnavailable
from gateway.surfaces.responses import RESPONSES, ResponsesRequest

TOOL = {"type": "function", "name": "get_weather", "description": "The weather in a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}, "strict": True}
PARIS = "{\"city\":\"Paris\"}"


def decode(**body: Any) -> ResponsesRequest:
    return RESPONSES.decode(msgspec.json.encode({"model": "chat", **body}))


def refusal(**body: Any) -> InvalidRequest:
    """The 400 for `body` when it must be translated: raised at once, or (a field the translation cannot
    carry, which a native worker could take) kept on the request for the forwarder."""
    try:
        request = decode(**body)
    except InvalidRequest as refused:
        error = refused
    else:
        assert request.untranslatable is not None, "translated without refusing"
        error = request.untranslatable
    assert error.status == 400
    return error


# ---- requests ----------------------------------------------------------------------------------------

def test_a_plain_request_becomes_a_chat_request() -> None:
    request = decode(input="Say hello", instructions="Be terse", max_output_tokens=32, temperature=0.2, top_p=0.9,
                     user="u-1", metadata={"k": "v"}, store=False, stream=True, seed=7)
    assert request.body == {
        "model": "chat",
        "messages": [{"role": "system", "content": "Be terse"}, {"role": "user", "content": "Say hello"}],
        "max_tokens": 32, "temperature": 0.2, "top_p": 0.9, "user": "u-1", "stream": True, "seed": 7,
        "stream_options": {"include_usage": True}}
    assert request.stream and not request.stored
    assert request.conversation == [{"role": "user", "content": "Say hello"}]  # instructions are not kept
    assert request.head["metadata"] == {"k": "v"} and request.head["instructions"] == "Be terse"


def test_items_become_messages_tools_and_formats_their_chat_forms() -> None:
    schema = {"type": "object", "properties": {"city": {"type": "string"}}}
    request = decode(
        input=[{"role": "developer", "content": "Use tools"},
               {"type": "message", "role": "user", "content": [
                   {"type": "input_text", "text": "Weather in Paris?"},
                   {"type": "input_image", "image_url": "data:image/png;base64,AAAA", "detail": "low"}]},
               {"type": "message", "id": "msg_1", "status": "completed", "role": "assistant",
                "content": [{"type": "output_text", "text": "Let me look.", "annotations": []}]},
               {"type": "function_call", "id": "fc_1", "call_id": "call_1", "name": "get_weather",
                "arguments": PARIS, "status": "completed"},
               {"type": "function_call", "call_id": "call_2", "name": "get_weather", "arguments": "{}"},
               {"type": "function_call_output", "call_id": "call_1", "output": "18C"},
               {"type": "function_call_output", "call_id": "call_2", "output": [{"type": "input_text", "text": "?"}]}],
        tools=[TOOL], tool_choice={"type": "function", "name": "get_weather"}, parallel_tool_calls=False,
        text={"format": {"type": "json_schema", "name": "weather", "schema": schema, "strict": True}})
    body = request.body
    assert body["messages"] == [
        {"role": "developer", "content": "Use tools"},
        {"role": "user", "content": [{"type": "text", "text": "Weather in Paris?"},
                                     {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA",
                                                                         "detail": "low"}}]},
        {"role": "assistant", "content": "Let me look.", "tool_calls": [
            {"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": PARIS}},
            {"id": "call_2", "type": "function", "function": {"name": "get_weather", "arguments": "{}"}}]},
        {"role": "tool", "tool_call_id": "call_1", "content": "18C"},
        {"role": "tool", "tool_call_id": "call_2", "content": "?"}]
    assert body["tools"] == [{"type": "function", "function": {
        "name": "get_weather", "description": "The weather in a city", "parameters": TOOL["parameters"],
        "strict": True}}]
    assert body["tool_choice"] == {"type": "function", "function": {"name": "get_weather"}}
    assert body["parallel_tool_calls"] is False
    assert body["response_format"] == {"type": "json_schema", "json_schema": {"name": "weather", "schema": schema,
                                                                             "strict": True}}
    json_object = decode(input="x", text={"format": {"type": "json_object"}})
    assert json_object.body["response_format"] == {"type": "json_object"}
    assert "response_format" not in decode(input="x", text={"format": {"type": "text"}}).body


def test_what_changes_nothing_is_accepted() -> None:
    request = decode(input="x", reasoning={"summary": "auto"}, include=["reasoning.encrypted_content"],
                     background=False, truncation="disabled", text={"verbosity": "medium"},
                     stream_options={"include_obfuscation": False}, prompt_cache_key="k")
    assert request.body == {"model": "chat", "messages": [{"role": "user", "content": "x"}], "prompt_cache_key": "k"}


@pytest.mark.parametrize(("body", "param"), [
    ({}, "input"),
    ({"input": []}, "input"),
    ({"input": "x", "instructions": 5}, "instructions"),
    ({"input": [{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"},
                {"role": "user", "content": [{"type": "input_file", "file_id": "f"}]}]}, "input[2].content[0].type"),
    ({"input": [{"role": "tool", "content": "a"}]}, "input[0].role"),
    ({"input": [{"role": "user", "content": 5}]}, "input[0].content"),
    ({"input": [{"role": "user", "content": [{"type": "input_image", "file_id": "f"}]}]},
     "input[0].content[0].image_url"),
    ({"input": [{"role": "user", "content": [{"type": "input_text"}]}]}, "input[0].content[0].text"),
    ({"input": [{"type": "reasoning", "summary": []}]}, "input[0].type"),
    ({"input": [{"type": "function_call", "name": "f", "arguments": "{}"}]}, "input[0].call_id"),
    ({"input": [{"type": "function_call_output", "call_id": "c", "output": 5}]}, "input[0].output"),
    ({"input": "x", "tools": [{"type": "file_search"}]}, "tools[0].type"),
    ({"input": "x", "tools": [TOOL, {"type": "function"}]}, "tools[1].name"),
    ({"input": "x", "tool_choice": {"type": "file_search"}}, "tool_choice"),
    ({"input": "x", "text": {"format": {"type": "json_schema", "schema": {}}}}, "text.format.name"),
    ({"input": "x", "text": {"format": {"type": "json_schema", "name": "n"}}}, "text.format.schema"),
    ({"input": "x", "text": {"format": {"type": "grammar"}}}, "text.format.type"),
    ({"input": "x", "text": {"verbosity": "low"}}, "text.verbosity"),
    ({"input": "x", "reasoning": {"effort": "high"}}, "reasoning.effort"),
    ({"input": "x", "include": ["message.output_text.logprobs"]}, "include[0]"),
    ({"input": "x", "max_output_tokens": 0}, "max_output_tokens"),
    ({"input": "x", "temperature": "hot"}, "temperature"),
    ({"input": "x", "store": "yes"}, "store"),
    ({"input": "x", "metadata": {"k": 1}}, "metadata"),
    ({"input": "x", "background": True}, "background"),
    ({"input": "x", "truncation": "auto"}, "truncation"),
    ({"input": "x", "conversation": "conv_1"}, "conversation"),
    ({"input": "x", "prompt": {"id": "p"}}, "prompt"),
    ({"input": "x", "max_tool_calls": 3}, "max_tool_calls"),
    ({"input": "x", "top_logprobs": 2}, "top_logprobs"),
    ({"input": "x", "n": 2}, "n"),
    ({"input": "x", "messages": []}, "messages"),
    ({"input": "x", "response_format": {"type": "json_object"}}, "response_format"),
    ({"input": "x", "stream": "yes"}, "stream"),
    ({"input": "x", "model": 5}, "model"),
])
def test_what_cannot_be_carried_is_a_400_naming_the_field(body: dict[str, Any], param: str) -> None:
    assert refusal(**body).param == param


def test_the_pipeline_sees_chat_routing_text_and_estimates() -> None:
    request = decode(input=[{"role": "user", "content": "first"}, {"role": "assistant", "content": "answer"},
                            {"role": "user", "content": [{"type": "input_text", "text": "set a reminder"}]}],
                     instructions="Be terse", temperature=0)
    assert RESPONSES.routing_text(request.body) == "set a reminder"
    assert RESPONSES.routing_text(request.body, "conversation") == "Be terse\nfirst\nanswer\nset a reminder"
    assert RESPONSES.prompt_tokens_estimate(request.body) > 0
    assert RESPONSES.is_deterministic(request.body) and RESPONSES.cache_fields(request.body) is not None
    assert request.endpoint == "chat/completions"


# ---- answers -----------------------------------------------------------------------------------------

def chat_answer(message: dict[str, Any], finish_reason: str = "stop") -> bytes:
    return msgspec.json.encode({
        "id": "chatcmpl-1", "object": "chat.completion", "created": 1, "model": "sim-model",
        "choices": [{"index": 0, "message": message, "finish_reason": finish_reason}],
        "usage": {"prompt_tokens": 10, "completion_tokens": 4, "total_tokens": 14}})


def test_a_chat_answer_becomes_a_response() -> None:
    request = decode(input="hi", instructions="Be terse", tools=[TOOL])
    response = msgspec.json.decode(RESPONSES.encode_answer(chat_answer({"role": "assistant", "content": "Hello"}),
                                                           request))
    assert response["id"].startswith("resp_") and response["object"] == "response"
    assert response["status"] == "completed" and response["incomplete_details"] is None
    assert response["model"] == "chat" and response["instructions"] == "Be terse" and response["tools"] == [TOOL]
    [message] = response["output"]
    assert message["type"] == "message" and message["id"].startswith("msg_") and message["role"] == "assistant"
    assert message["content"] == [{"type": "output_text", "text": "Hello", "annotations": [], "logprobs": []}]
    assert response["usage"]["input_tokens"] == 10 and response["usage"]["output_tokens"] == 4
    assert response["usage"]["total_tokens"] == 14


def test_tool_calls_become_function_call_items_and_a_cut_answer_is_incomplete() -> None:
    calls = [{"id": "call_9", "type": "function", "function": {"name": "get_weather", "arguments": "{\"city\":"}}]
    answer = chat_answer({"role": "assistant", "content": None, "tool_calls": calls}, finish_reason="length")
    response = msgspec.json.decode(RESPONSES.encode_answer(answer, decode(input="hi")))
    assert response["status"] == "incomplete" and response["incomplete_details"] == {"reason": "max_output_tokens"}
    [call] = response["output"]
    assert call["type"] == "function_call" and call["id"].startswith("fc_") and call["call_id"] == "call_9"
    assert call["name"] == "get_weather" and call["arguments"] == "{\"city\":" and call["status"] == "completed"


# ---- streams -----------------------------------------------------------------------------------------

def sse(*chunks: dict[str, Any] | str) -> list[bytes]:
    return [b"data: " + (c.encode() if isinstance(c, str) else msgspec.json.encode(c)) + b"\n\n" for c in chunks]


def delta(**fields: Any) -> dict[str, Any]:
    finish = fields.pop("finish_reason", None)
    return {"id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 1, "model": "sim-model",
            "choices": [{"index": 0, "delta": fields, "finish_reason": finish}]}


USAGE = {"id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 1, "model": "sim-model", "choices": [],
         "usage": {"prompt_tokens": 12, "completion_tokens": 9, "total_tokens": 21}}
TOOL_STREAM = sse(  # as vLLM streams a text then two parallel tool calls
    delta(role="assistant", content=""), delta(content="Checking"), delta(content=" both."),
    delta(tool_calls=[{"index": 0, "id": "call_a", "type": "function",
                       "function": {"name": "get_weather", "arguments": ""}}]),
    delta(tool_calls=[{"index": 0, "function": {"arguments": "{\"city\": "}}]),
    delta(tool_calls=[{"index": 0, "function": {"arguments": "\"Paris\"}"}}]),
    delta(tool_calls=[{"index": 1, "id": "call_b", "type": "function",
                       "function": {"name": "get_weather", "arguments": "{\"city\": \"Rome\"}"}}]),
    delta(finish_reason="tool_calls"), USAGE, "[DONE]")


class Source:
    """A relay's stream of `pieces`, which records being closed."""

    def __init__(self, pieces: list[bytes]) -> None:
        self.pieces = iter(pieces)
        self.closed = False

    def __aiter__(self) -> AsyncIterator[bytes]:
        return self

    async def __anext__(self) -> bytes:
        try:
            return next(self.pieces)
        except StopIteration:
            raise StopAsyncIteration from None

    async def aclose(self) -> None:
        self.closed = True


async def events_of(request: ResponsesRequest, pieces: list[bytes]) -> tuple[list[dict[str, Any]], Source]:
    source = Source(pieces)
    out = [piece async for piece in RESPONSES.encode_stream(source, request)]
    events = []
    for block in b"".join(out).split(b"\n\n"):
        if block:
            name, data = block.split(b"\n")
            event = msgspec.json.decode(data.removeprefix(b"data: "))
            assert name == b"event: " + event["type"].encode()
            events.append(event)
    assert [e["sequence_number"] for e in events] == list(range(len(events)))
    return events, source


async def test_a_stream_with_tool_calls_becomes_items_and_their_events() -> None:
    kept: list[dict[str, Any]] = []
    request = decode(input="Weather in Paris and Rome?", tools=[TOOL], stream=True)

    async def keep(response: dict[str, Any]) -> None:
        kept.append(response)
    request.keep = keep
    events, source = await events_of(request, TOOL_STREAM)
    assert [e["type"] for e in events] == [
        "response.created", "response.in_progress",
        "response.output_item.added", "response.content_part.added",
        "response.output_text.delta", "response.output_text.delta",
        "response.output_text.done", "response.content_part.done", "response.output_item.done",
        "response.output_item.added", "response.function_call_arguments.delta",
        "response.function_call_arguments.delta", "response.function_call_arguments.done", "response.output_item.done",
        "response.output_item.added", "response.function_call_arguments.delta",
        "response.function_call_arguments.done", "response.output_item.done",
        "response.completed"]
    final = events[-1]["response"]
    message, paris, rome = final["output"]
    assert message["content"][0]["text"] == "Checking both."
    assert (paris["call_id"], paris["arguments"]) == ("call_a", "{\"city\": \"Paris\"}")
    assert (rome["call_id"], rome["name"], rome["arguments"]) == ("call_b", "get_weather", "{\"city\": \"Rome\"}")
    assert [e["output_index"] for e in events if e["type"] == "response.output_item.added"] == [0, 1, 2]
    assert final["status"] == "completed" and final["usage"]["total_tokens"] == 21
    assert kept == [final] and source.closed


async def test_a_stream_cut_at_its_limit_ends_incomplete() -> None:
    events, _ = await events_of(decode(input="x", stream=True),
                                sse(delta(content="Hel"), delta(content="lo", finish_reason="length"), "[DONE]"))
    assert events[-1]["type"] == "response.completed"  # what the openai SDK's stream helpers wait for
    assert events[-1]["response"]["status"] == "incomplete"
    assert events[-1]["response"]["incomplete_details"] == {"reason": "max_output_tokens"}


@pytest.mark.parametrize("ending", [
    sse({"error": {"message": "worker broke", "type": "server_error", "code": "upstream_error"}}, "[DONE]"),
    [],  # stopped without [DONE]
    [b"data: {not json\n\n"],
])
async def test_a_broken_stream_ends_with_response_failed(ending: list[bytes]) -> None:
    kept: list[dict[str, Any]] = []

    async def keep(response: dict[str, Any]) -> None:
        kept.append(response)
    request = decode(input="x", stream=True)
    request.keep = keep
    events, source = await events_of(request, sse(delta(content="Hel")) + ending)
    assert events[-1]["type"] == "response.failed" and source.closed and not kept
    failed = events[-1]["response"]
    assert failed["status"] == "failed" and failed["error"]["code"] and failed["error"]["message"]
    assert "response.completed" not in [e["type"] for e in events]


async def test_a_response_that_cannot_be_kept_fails_its_stream() -> None:
    async def keep(response: dict[str, Any]) -> None:
        raise StoreUnavailable("redis store response failed")
    request = decode(input="x", stream=True)
    request.keep = keep
    events, _ = await events_of(request, sse(delta(content="Hi", finish_reason="stop"), "[DONE]"))
    assert events[-1]["type"] == "response.failed"
    assert events[-1]["response"]["error"]["code"] == "store_unavailable"


async def test_closing_the_stream_closes_the_workers() -> None:
    source = Source(sse(delta(content="a"), delta(content="b"), "[DONE]"))
    stream = RESPONSES.encode_stream(source, decode(input="x", stream=True))
    await anext(stream)
    await stream.aclose()  # type: ignore[attr-defined]
    assert source.closed
