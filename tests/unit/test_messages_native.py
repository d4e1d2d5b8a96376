"""A native Messages stream read by the gateway: the model named as the catalog's, usage counted, and a
`message_start` the worker left out (llama.cpp's server, under load) made by the gateway."""

from __future__ import annotations

from typing import Any

import msgspec

from gateway.surfaces.messages_native import NativeMessagesStream
from gateway.upstream.sse_events import sse_payloads

START: dict[str, Any] = {"type": "message_start", "message": {
    "id": "msg_1", "type": "message", "role": "assistant", "content": [], "model": "worker-id",
    "usage": {"input_tokens": 9, "output_tokens": 0}}}
BLOCK: dict[str, Any] = {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}}
DELTA: dict[str, Any] = {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "Hi"}}
END: dict[str, Any] = {"type": "message_delta", "delta": {"stop_reason": "end_turn"}, "usage": {"output_tokens": 3}}


def _read(events: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], NativeMessagesStream]:
    reader = NativeMessagesStream("chat", prompt_estimate=7)
    out = b"".join(reader.read(str(e["type"]), e, msgspec.json.encode(e)) for e in events)
    return [msgspec.json.decode(p) for p in sse_payloads([out])], reader


def test_the_model_is_the_catalogs_and_usage_is_counted() -> None:
    events, reader = _read([START, BLOCK, DELTA, END, {"type": "message_stop"}])
    assert events[0]["message"]["model"] == "chat"
    assert reader.ended and reader.usage() == {"prompt_tokens": 9, "completion_tokens": 3, "total_tokens": 12}


def test_a_left_out_message_start_is_made_with_the_estimated_prompt() -> None:
    events, reader = _read([BLOCK, DELTA, END, {"type": "message_stop"}])
    assert [e["type"] for e in events][:2] == ["message_start", "content_block_start"]
    assert events[0]["message"]["model"] == "chat" and events[0]["message"]["role"] == "assistant"
    assert events[0]["message"]["usage"]["input_tokens"] == 7  # the gateway's estimate
    assert reader.usage() is None  # counted from the estimate by the relay's caller
