"""The Anthropic Messages surface's translation: what it refuses (naming the field as Anthropic does), the
chat completions request it sends, and Anthropic's answers, streams and errors made from the chat
completions a worker (or the cache) gives."""

from __future__ import annotations

from typing import Any

import msgspec
import pytest

from gateway.errors import (
    AuthenticationFailed,
    GatewayError,
    InvalidRequest,
    ModelNotFound,
    NoWorkerAvailable,
    Overloaded,
    PayloadTooLarge,
    PermissionDenied,
    RateLimited,
    UpstreamTimeout,
    WorkerUnreachable,
)
from gateway.surfaces import ANTHROPIC_MESSAGES, CHAT_COMPLETIONS, InferenceRequest
from gateway.surfaces.messages_answers import INVALID_ARGUMENTS

USER = {"role": "user", "content": "hello"}


def _decode(body: dict[str, Any]) -> InferenceRequest:
    return ANTHROPIC_MESSAGES.decode(msgspec.json.encode(body))


def _refusal(body: dict[str, Any]) -> InvalidRequest:
    """The 400 for `body` when it must be translated (raised, or kept on the request for the forwarder
    when a native worker could take the field)."""
    try:
        request = _decode(body)
    except InvalidRequest as refused:
        return refused
    assert request.untranslatable is not None, "translated without refusing"
    return request.untranslatable


def _request(**fields: Any) -> dict[str, Any]:
    return {"model": "chat", "max_tokens": 16, "messages": [USER], **fields}


# ---- what is refused --------------------------------------------------------------------------------------

@pytest.mark.parametrize(("body", "path"), [
    ({"model": "chat", "messages": [USER]}, "max_tokens"),
    (_request(max_tokens=0), "max_tokens"),
    (_request(messages=[]), "messages"),
    (_request(messages=[{"role": "tool", "content": "x"}]), "messages.0.role"),
    (_request(messages=[{"role": "system", "content": [{"type": "image", "source": {}}]}]),
     "messages.0.content.0.type"),
    (_request(messages=[USER, {"role": "assistant"}]), "messages.1.content"),
    (_request(messages=[{"role": "user", "content": [{"type": "text", "text": "a"}, {"type": "video"}]}]),
     "messages.0.content.1.type"),
    (_request(messages=[{"role": "user", "content": [{"type": "text", "text": 3}]}]), "messages.0.content.0.text"),
    (_request(messages=[{"role": "user", "content": [{"type": "document", "source": {}}]}]),
     "messages.0.content.0.type"),
    (_request(messages=[{"role": "user", "content": [{"type": "image", "source": {"type": "file", "file_id": "f"}}]}]),
     "messages.0.content.0.source.type"),
    (_request(messages=[{"role": "assistant", "content": [{"type": "tool_use", "id": "t", "name": "f"}]}]),
     "messages.0.content.0.input"),
    (_request(messages=[{"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t", "content": [
        {"type": "image", "source": {"type": "file"}}]}]}]), "messages.0.content.0.content.0.source.type"),
    (_request(messages=[{"role": "user", "content": [{"type": "text", "text": "a", "citations": [{"x": 1}]}]}]),
     "messages.0.content.0.citations"),
    (_request(tools=[{"name": "f"}]), "tools.0.input_schema"),
    (_request(tools=[{"type": "web_search_20250305", "name": "web_search"}]), "tools.0.type"),
    (_request(tool_choice={"type": "tool"}), "tool_choice.name"),
    (_request(tool_choice={"type": "sometimes"}), "tool_choice.type"),
    (_request(stop_sequences="END"), "stop_sequences"),
    (_request(top_k=-1), "top_k"),
    (_request(metadata={"user_id": "u", "tier": "gold"}), "metadata.tier"),
    (_request(thinking={"type": "sometimes"}), "thinking.type"),
    (_request(thinking={"type": "enabled", "budget_tokens": "lots"}), "thinking.budget_tokens"),
    (_request(mcp_servers=[{"type": "url", "url": "https://mcp.example", "name": "m"}]), "mcp_servers"),
    (_request(tools=[{"name": "f", "input_schema": {}, "defer_loading": True}]), "tools.0.defer_loading"),
    (_request(output_config={"effort": "extreme"}), "output_config.effort"),
    (_request(output_config={"format": {"type": "regex", "pattern": "a+"}}), "output_config.format"),
    (_request(system=[{"type": "image", "source": {}}]), "system.0.type"),
])
def test_refusals_name_the_field_the_way_anthropic_does(body: dict[str, Any], path: str) -> None:
    error = _refusal(body)
    assert error.param == path and error.status_code() == 400
    assert error.message.startswith(f"{path}: ")
    assert ANTHROPIC_MESSAGES.error_body(error) == {
        "type": "error", "error": {"type": "invalid_request_error", "message": error.message}}


def test_hints_that_change_no_answer_are_accepted() -> None:
    cached = {"type": "ephemeral", "scope": "global", "ttl": "1h"}
    request = _decode(_request(
        context_management={"edits": [{"type": "clear_thinking_20251015", "keep": "all"}]},
        diagnostics={"enabled": True}, betas=["interleaved-thinking-2025-05-14"], speed="standard",
        service_tier="auto", inference_geo="us", cache_control=cached,
        system=[{"type": "text", "text": "Be terse.", "cache_control": cached}],
        messages=[{"role": "user", "content": [{"type": "text", "text": "hi", "cache_control": cached}]},
                  {"role": "assistant", "content": [{"type": "thinking", "thinking": "hm", "signature": "s"},
                                                    {"type": "text", "text": "hello"}]},
                  USER],
        tools=[{"name": "f", "input_schema": {"type": "object"}, "cache_control": cached,
                "eager_input_streaming": True, "strict": True}],
        thinking={"type": "disabled"}))
    sent = msgspec.json.encode(request.body).decode()
    for hint in ("cache_control", "context_management", "diagnostics", "betas", "speed", "service_tier",
                 "inference_geo", "eager_input_streaming"):
        assert hint not in sent
    assert request.body["tools"][0]["function"]["strict"] is True
    assert request.body["messages"][2] == {"role": "assistant", "content": "hello"}


# ---- the chat completions request -------------------------------------------------------------------------

def test_a_conversation_with_tools_translates_turn_by_turn() -> None:
    image = {"type": "base64", "media_type": "image/png", "data": "iVBOR"}
    request = _decode({
        "model": "chat", "max_tokens": 64, "stream": True, "temperature": 0.5, "top_p": 0.9, "top_k": 40,
        "stop_sequences": ["END"], "metadata": {"user_id": "user-7"},
        "system": [{"type": "text", "text": "You help."}, {"type": "text", "text": "Be brief."}],
        "tools": [{"name": "weather", "description": "The weather", "input_schema": {"type": "object"}}],
        "tool_choice": {"type": "any", "disable_parallel_tool_use": True},
        "messages": [
            {"role": "user", "content": [{"type": "text", "text": "Weather here?"},
                                         {"type": "image", "source": image}]},
            {"role": "assistant", "content": [
                {"type": "text", "text": "Checking."},
                {"type": "tool_use", "id": "toolu_1", "name": "weather", "input": {"city": "Oslo"}},
                {"type": "tool_use", "id": "toolu_2", "name": "weather", "input": {}}]},
            {"role": "user", "content": [
                {"type": "tool_result", "tool_use_id": "toolu_1", "content": "rain"},
                {"type": "tool_result", "tool_use_id": "toolu_2", "is_error": True,
                 "content": [{"type": "text", "text": "no city"}]},
                {"type": "text", "text": "And tomorrow?"}]}]})
    assert request.stream
    assert request.body == {
        "model": "chat", "max_tokens": 64, "temperature": 0.5, "top_p": 0.9, "top_k": 40,
        "messages": [
            {"role": "system", "content": "You help.\n\nBe brief."},
            {"role": "user", "content": [{"type": "text", "text": "Weather here?"},
                                         {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBOR"}}]},
            {"role": "assistant", "content": "Checking.", "tool_calls": [
                {"id": "toolu_1", "type": "function", "function": {"name": "weather", "arguments": '{"city":"Oslo"}'}},
                {"id": "toolu_2", "type": "function", "function": {"name": "weather", "arguments": "{}"}}]},
            {"role": "tool", "tool_call_id": "toolu_1", "content": "rain"},
            {"role": "tool", "tool_call_id": "toolu_2", "content": "Error: no city"},
            {"role": "user", "content": "And tomorrow?"}],
        "tools": [{"type": "function", "function": {"name": "weather", "parameters": {"type": "object"},
                                                    "description": "The weather"}}],
        "tool_choice": "required", "parallel_tool_calls": False, "stop": ["END"], "user": "user-7",
        "stream": True, "stream_options": {"include_usage": True}}


def test_images_of_tool_results_follow_the_tool_messages() -> None:
    picture = {"type": "image", "source": {"type": "url", "url": "https://example.com/shot.png"}}
    request = _decode(_request(messages=[{"role": "user", "content": [
        {"type": "tool_result", "tool_use_id": "t1", "content": [{"type": "text", "text": "Screenshot:"}, picture]},
        {"type": "tool_result", "tool_use_id": "t2", "content": [picture, {"type": "tool_reference", "name": "x"}]}]}]))
    image_part = {"type": "image_url", "image_url": {"url": "https://example.com/shot.png"}}
    assert request.body["messages"] == [
        {"role": "tool", "tool_call_id": "t1", "content": "Screenshot:"},
        {"role": "tool", "tool_call_id": "t2", "content": ""},
        {"role": "user", "content": [image_part, image_part]}]


@pytest.mark.parametrize(("choice", "expected"), [
    ({"type": "auto"}, "auto"), ({"type": "none"}, "none"),
    ({"type": "tool", "name": "f"}, {"type": "function", "function": {"name": "f"}})])
def test_tool_choices(choice: dict[str, Any], expected: object) -> None:
    assert _decode(_request(tool_choice=choice)).body["tool_choice"] == expected


@pytest.mark.parametrize(("effort", "expected"), [("low", "low"), ("high", "high"), ("max", "high")])
def test_effort_becomes_the_reasoning_effort(effort: str, expected: str) -> None:
    assert _decode(_request(output_config={"effort": effort})).body["reasoning_effort"] == expected


def test_a_json_schema_output_format_becomes_the_response_format() -> None:
    schema = {"type": "object", "properties": {"tip": {"type": "string"}}}
    request = _decode(_request(output_config={"format": {"type": "json_schema", "schema": schema}},
                               cache_control={"type": "ephemeral"}))
    assert request.body["response_format"] == {"type": "json_schema", "json_schema": {"name": "output",
                                                                                      "schema": schema}}
    assert "cache_control" not in request.body


def test_routing_sees_the_same_text_as_for_chat() -> None:
    messages = _request(system="sys", messages=[{"role": "user", "content": [{"type": "text", "text": "a quick tip"}]}])
    chat = CHAT_COMPLETIONS.decode(msgspec.json.encode({"model": "chat", "messages": [
        {"role": "system", "content": "sys"}, {"role": "user", "content": "a quick tip"}]}))
    translated = _decode(messages)
    for match_on in ("last_user_message", "conversation"):
        assert ANTHROPIC_MESSAGES.routing_text(translated.body, match_on) == \
            CHAT_COMPLETIONS.routing_text(chat.body, match_on)
    assert ANTHROPIC_MESSAGES.conversation(translated.body) == CHAT_COMPLETIONS.conversation(chat.body)


def test_count_tokens_needs_no_max_tokens_and_estimates_the_translation() -> None:
    counted = ANTHROPIC_MESSAGES.decode_count(msgspec.json.encode({"model": "chat", "messages": [USER]}))
    assert ANTHROPIC_MESSAGES.prompt_tokens_estimate(counted.body) == \
        CHAT_COMPLETIONS.prompt_tokens_estimate({"messages": [USER]})


# ---- answers ----------------------------------------------------------------------------------------------

def _answer(message: dict[str, Any], finish: str, **choice: Any) -> bytes:
    return msgspec.json.encode({"id": "chatcmpl-abc", "object": "chat.completion", "model": "sim-model", "choices": [
        {"index": 0, "message": {"role": "assistant", **message}, "finish_reason": finish, **choice}],
        "usage": {"prompt_tokens": 11, "completion_tokens": 5, "total_tokens": 16}})


def _encoded(answer: bytes, **fields: Any) -> dict[str, Any]:
    request = _decode(_request(**fields))
    result: dict[str, Any] = msgspec.json.decode(ANTHROPIC_MESSAGES.encode_answer(answer, request))
    return result


def test_a_text_answer() -> None:
    assert _encoded(_answer({"content": "Hi there"}, "stop")) == {
        "id": "msg_abc", "type": "message", "role": "assistant", "model": "chat",
        "content": [{"type": "text", "text": "Hi there"}], "stop_reason": "end_turn", "stop_sequence": None,
        "usage": {"input_tokens": 11, "output_tokens": 5}}
    assert _encoded(_answer({"content": "Hi"}, "length"))["stop_reason"] == "max_tokens"


def test_reasoning_is_a_thinking_block_when_the_client_enabled_thinking() -> None:
    answer = _answer({"content": "42", "reasoning_content": "Six times seven."}, "stop")
    thinking = _encoded(answer, thinking={"type": "adaptive", "budget_tokens": 0})
    assert thinking["content"] == [{"type": "thinking", "thinking": "Six times seven.", "signature": ""},
                                   {"type": "text", "text": "42"}]
    for off in ({}, {"thinking": {"type": "disabled"}}):
        assert _encoded(answer, **off)["content"] == [{"type": "text", "text": "42"}]
    assert "thinking" not in _decode(_request(thinking={"type": "enabled", "budget_tokens": 2048})).body


def test_a_stop_sequence_is_told_when_the_worker_says_which() -> None:
    stopped = _encoded(_answer({"content": "Hi"}, "stop", stop_reason="END"), stop_sequences=["END"])
    assert (stopped["stop_reason"], stopped["stop_sequence"]) == ("stop_sequence", "END")
    unknown = _encoded(_answer({"content": "Hi"}, "stop", stop_reason=None), stop_sequences=["END"])
    assert (unknown["stop_reason"], unknown["stop_sequence"]) == ("end_turn", None)


def test_tool_calls_become_tool_use_blocks() -> None:
    calls = [{"id": "call_1", "type": "function", "function": {"name": "weather", "arguments": '{"city": "Oslo"}'}},
             {"id": "call_2", "type": "function", "function": {"name": "weather", "arguments": '{"city": '}}]
    encoded = _encoded(_answer({"content": None, "tool_calls": calls}, "tool_calls"))
    assert encoded["stop_reason"] == "tool_use"
    assert encoded["content"] == [
        {"type": "tool_use", "id": "call_1", "name": "weather", "input": {"city": "Oslo"}},
        {"type": "tool_use", "id": "call_2", "name": "weather", "input": {INVALID_ARGUMENTS: '{"city": '}}]


@pytest.mark.parametrize(("error", "kind"), [
    (InvalidRequest("x"), "invalid_request_error"), (AuthenticationFailed("x"), "authentication_error"),
    (PermissionDenied("x"), "permission_error"), (ModelNotFound("x"), "not_found_error"),
    (PayloadTooLarge("x"), "request_too_large"), (RateLimited("x"), "rate_limit_error"),
    (WorkerUnreachable("x"), "api_error"), (GatewayError("x"), "api_error"),
    (NoWorkerAvailable("x"), "overloaded_error"), (Overloaded("x"), "overloaded_error"),
    (UpstreamTimeout("x"), "timeout_error")])
def test_errors_take_anthropics_types_by_status(error: GatewayError, kind: str) -> None:
    assert ANTHROPIC_MESSAGES.error_body(error) == {"type": "error", "error": {"type": kind, "message": "x"}}


def test_system_messages_among_the_turns_join_the_system_prompt() -> None:
    """Claude Code (2.1) sends `role: "system"` messages between the user's turns; chat templates refuse a
    system turn anywhere but first, so their text joins the one system message, in order."""
    request = _decode(_request(system="You help.", messages=[
        USER, {"role": "system", "content": "Agent types: claude, Explore."},
        {"role": "assistant", "content": "Hi"},
        {"role": "system", "content": [{"type": "text", "text": "Be brief.", "cache_control": {"type": "ephemeral"}}]},
        {"role": "user", "content": "Again"}]))
    messages = request.body["messages"]
    assert messages[0] == {"role": "system", "content": "You help.\n\nAgent types: claude, Explore.\n\nBe brief."}
    assert [m["role"] for m in messages] == ["system", "user", "assistant", "user"]
