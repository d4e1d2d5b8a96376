"""Chat completions streams as recorded from workers (vLLM's tool call pieces, llama.cpp's whole calls, a
broken stream), translated into Anthropic's Messages events."""

from __future__ import annotations

from typing import Any

import msgspec

from gateway.surfaces import ANTHROPIC_MESSAGES, InferenceRequest

DONE = b"data: [DONE]\n\n"
REQUEST = ANTHROPIC_MESSAGES.decode(msgspec.json.encode(
    {"model": "claude-like", "max_tokens": 64, "stream": True, "stop_sequences": ["END"],
     "messages": [{"role": "user", "content": "weather?"}]}))


def _chunk(delta: dict[str, Any] | None = None, finish: str | None = None, **extra: Any) -> bytes:
    choices = [] if delta is None else [{"index": 0, "delta": delta, "finish_reason": finish, **extra}]
    return b"data: " + msgspec.json.encode({"id": "chatcmpl-7", "object": "chat.completion.chunk",
                                            "model": "sim-model", "choices": choices}) + b"\n\n"


def _usage(prompt: int, completion: int) -> bytes:
    return b"data: " + msgspec.json.encode({"id": "chatcmpl-7", "choices": [], "usage": {
        "prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}}) + b"\n\n"


class _Recorded:
    """A worker's relayed events, noting whether the translation closed it."""

    def __init__(self, events: list[bytes]) -> None:
        self.events = iter(events)
        self.closed = False

    def __aiter__(self) -> _Recorded:
        return self

    async def __anext__(self) -> bytes:
        try:
            return next(self.events)
        except StopIteration:
            raise StopAsyncIteration from None

    async def aclose(self) -> None:
        self.closed = True


async def _translated(events: list[bytes], request: InferenceRequest = REQUEST
                      ) -> tuple[list[tuple[str, dict[str, Any]]], _Recorded]:
    source = _Recorded(events)
    out = b"".join([piece async for piece in ANTHROPIC_MESSAGES.encode_stream(source, request)])
    parsed = []
    for block in out.decode().strip().split("\n\n"):
        name, data = block.split("\n")
        assert name.startswith("event: ") and data.startswith("data: ")
        parsed.append((name[7:], msgspec.json.decode(data[6:])))
    return parsed, source


async def test_text_streams_as_one_text_block() -> None:
    events, source = await _translated([
        _chunk({"role": "assistant", "content": ""}), _chunk({"content": "Hel"}), _chunk({"content": "lo"}),
        _chunk({}, "stop", stop_reason="END"), _usage(12, 2), DONE])
    assert [name for name, _ in events] == ["message_start", "ping", "content_block_start", "content_block_delta",
                                            "content_block_delta", "content_block_stop", "message_delta",
                                            "message_stop"]
    start = events[0][1]["message"]
    assert (start["id"], start["model"], start["content"], start["usage"]) == (
        "msg_7", "claude-like", [], {"input_tokens": 0, "output_tokens": 0})
    assert events[2][1] == {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}}
    assert [e[1]["delta"]["text"] for e in events[3:5]] == ["Hel", "lo"]
    assert events[6][1] == {"type": "message_delta", "delta": {"stop_reason": "stop_sequence", "stop_sequence": "END"},
                            "usage": {"input_tokens": 12, "output_tokens": 2}}
    assert source.closed


async def test_reasoning_streams_as_a_thinking_block_when_thinking_is_enabled() -> None:
    recorded = [_chunk({"role": "assistant", "content": ""}), _chunk({"reasoning_content": "Six times"}),
                _chunk({"reasoning_content": " seven."}), _chunk({"content": "42"}), _chunk({}, "stop"),
                _usage(9, 4), DONE]
    thinking = ANTHROPIC_MESSAGES.decode(msgspec.json.encode(
        {"model": "m", "max_tokens": 64, "stream": True, "thinking": {"type": "adaptive"},
         "messages": [{"role": "user", "content": "6*7?"}]}))
    events, _ = await _translated(recorded, thinking)
    blocks = [(name, data.get("content_block") or data.get("delta")) for name, data in events
              if name in ("content_block_start", "content_block_delta")]
    assert blocks == [("content_block_start", {"type": "thinking", "thinking": "", "signature": ""}),
                      ("content_block_delta", {"type": "thinking_delta", "thinking": "Six times"}),
                      ("content_block_delta", {"type": "thinking_delta", "thinking": " seven."}),
                      ("content_block_start", {"type": "text", "text": ""}),
                      ("content_block_delta", {"type": "text_delta", "text": "42"})]
    plain, _ = await _translated(recorded)
    assert [data["content_block"]["type"] for name, data in plain if name == "content_block_start"] == ["text"]


async def test_streamed_tool_call_pieces_become_input_json_deltas() -> None:
    first = {"index": 0, "id": "call_a", "type": "function", "function": {"name": "weather", "arguments": ""}}
    second = {"index": 1, "id": "call_b", "type": "function", "function": {"name": "time", "arguments": "{}"}}
    events, _ = await _translated([
        _chunk({"role": "assistant", "content": ""}), _chunk({"tool_calls": [first]}),
        _chunk({"tool_calls": [{"index": 0, "function": {"arguments": '{"city": '}}]}),
        _chunk({"tool_calls": [{"index": 0, "function": {"arguments": '"Oslo"}'}}]}),
        _chunk({"tool_calls": [second]}), _chunk({}, "tool_calls"), _usage(30, 9), DONE])
    blocks = [(name, data) for name, data in events if name.startswith("content_block")]
    assert blocks == [
        ("content_block_start", {"type": "content_block_start", "index": 0, "content_block": {
            "type": "tool_use", "id": "call_a", "name": "weather", "input": {}}}),
        ("content_block_delta", {"type": "content_block_delta", "index": 0, "delta": {
            "type": "input_json_delta", "partial_json": '{"city": '}}),
        ("content_block_delta", {"type": "content_block_delta", "index": 0, "delta": {
            "type": "input_json_delta", "partial_json": '"Oslo"}'}}),
        ("content_block_stop", {"type": "content_block_stop", "index": 0}),
        ("content_block_start", {"type": "content_block_start", "index": 1, "content_block": {
            "type": "tool_use", "id": "call_b", "name": "time", "input": {}}}),
        ("content_block_delta", {"type": "content_block_delta", "index": 1, "delta": {
            "type": "input_json_delta", "partial_json": "{}"}}),
        ("content_block_stop", {"type": "content_block_stop", "index": 1})]
    assert events[-2][1]["delta"] == {"stop_reason": "tool_use", "stop_sequence": None}


async def test_text_then_a_whole_tool_call_in_one_chunk() -> None:
    call = {"index": 0, "id": "call_z", "type": "function", "function": {"name": "f", "arguments": '{"a": 1}'}}
    events, _ = await _translated([_chunk({"role": "assistant", "content": "Let me check."}),
                                   _chunk({"tool_calls": [call]}, "tool_calls"), _usage(5, 7), DONE])
    starts = [data["content_block"]["type"] for name, data in events if name == "content_block_start"]
    assert starts == ["text", "tool_use"]
    assert [data["index"] for name, data in events if name == "content_block_stop"] == [0, 1]


async def test_calls_that_share_an_index_but_not_an_id_are_two_blocks() -> None:
    calls = [{"index": 0, "id": f"call_{n}", "type": "function", "function": {"name": "f", "arguments": "{}"}}
             for n in (1, 2)]
    repeated = {"index": 0, "id": "call_1", "function": {"arguments": ""}}
    events, _ = await _translated([_chunk({"role": "assistant", "content": ""}), _chunk({"tool_calls": calls[:1]}),
                                   _chunk({"tool_calls": [repeated]}), _chunk({"tool_calls": calls[1:]}, "tool_calls"),
                                   _usage(5, 7), DONE])
    ids = [data["content_block"]["id"] for name, data in events if name == "content_block_start"]
    assert ids == ["call_1", "call_2"]


async def test_the_relays_error_event_becomes_anthropics_error_event_without_message_stop() -> None:
    error = {"error": {"message": "worker 'w' broke off the stream (ServerDisconnectedError)", "type": "api_error",
                       "param": None, "code": "worker_unreachable"}}
    events, source = await _translated([_chunk({"role": "assistant", "content": "Hi"}),
                                        b"data: " + msgspec.json.encode(error) + b"\n\n", DONE])
    assert [name for name, _ in events] == ["message_start", "ping", "content_block_start", "content_block_delta",
                                            "error"]
    assert events[-1][1] == {"type": "error", "error": {
        "type": "api_error", "message": "worker 'w' broke off the stream (ServerDisconnectedError)"}}
    assert source.closed
    timeout = {"error": {"message": "quiet", "type": "api_error", "param": None, "code": "upstream_timeout"}}
    timed_out, _ = await _translated([b"data: " + msgspec.json.encode(timeout) + b"\n\n", DONE])
    assert timed_out == [("error", {"type": "error", "error": {"type": "timeout_error", "message": "quiet"}})]


async def test_a_stream_that_ends_without_done_ends_with_an_error() -> None:
    events, _ = await _translated([_chunk({"role": "assistant", "content": "Hi"})])
    assert events[-1][0] == "error" and "message_stop" not in [name for name, _ in events]


async def test_leaving_early_closes_the_workers_stream() -> None:
    source = _Recorded([_chunk({"role": "assistant", "content": "Hi"}), _chunk({"content": "there"}), DONE])
    stream = ANTHROPIC_MESSAGES.encode_stream(source, REQUEST)
    first = await stream.__anext__()
    assert first.startswith(b"event: message_start")
    await stream.aclose()  # type: ignore[attr-defined]
    assert source.closed
