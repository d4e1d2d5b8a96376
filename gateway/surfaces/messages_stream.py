"""A chat completions stream (a worker's, relayed, or a cached answer replayed) as Anthropic's Messages
events, chunk by chunk as they come:

    message_start, ping           at the worker's first chunk (input_tokens 0: the worker says the
                                  prompt's size at the end, and message_delta carries it)
    content_block_start / _delta  a text block (`text_delta`) for content, a `tool_use` block
    / _stop                       (`input_json_delta` pieces of its arguments) for each tool call, a
                                  `thinking` block (`thinking_delta`) for reasoning when the client
                                  enabled `thinking`
    message_delta, message_stop   at `[DONE]`: stop_reason, stop_sequence, usage
    error                         when the relay's stream carries its error event (the worker broke
                                  off, stalled, cut its answer, ...) or ends without `[DONE]`: never a
                                  silent end, nor a made-up message_stop

Each event of the relay is one `data: {json}` SSE event, decoded once here; what one chunk becomes is
sent as one piece.
"""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator
from typing import Any

import msgspec

from gateway.surfaces.messages_answers import anthropic_error, message_id, reasoning_of, stop_reason, usage_of
from gateway.upstream.chunk_tap import ChunkTap

Body = dict[str, Any]
_decode = msgspec.json.Decoder().decode
_encode = msgspec.json.Encoder().encode
_DONE = b"data: [DONE]\n\n"
_PING = b'event: ping\ndata: {"type":"ping"}\n\n'
_TEXT_HEAD = b'event: content_block_delta\ndata: {"type":"content_block_delta","index":'
_TEXT_MIDDLE = b',"delta":{"type":"text_delta","text":'
_TEXT_TAIL = b"}}\n\n"
_ERROR_STATUS = {"upstream_timeout": 504, "no_worker_available": 503, "queue_full": 503, "queue_timeout": 503,
                 "shutting_down": 503, "store_unavailable": 503}
"""The status an error event's code had (mid-stream errors keep no status; Anthropic's types go by it)."""


def sse(name: str, data: Body) -> bytes:
    return b"event: " + name.encode() + b"\ndata: " + _encode(data) + b"\n\n"


def error_event(error: object) -> bytes:
    """The relay's OpenAI error object (`{"message", "type", "code", ...}`) as Anthropic's error event."""
    error = error if isinstance(error, dict) else {}
    code = error.get("code")
    status = _ERROR_STATUS.get(code, 500) if isinstance(code, str) else 500
    if error.get("type") == "invalid_request_error":
        status = 400
    elif error.get("type") == "rate_limit_exceeded":
        status = 429
    return sse("error", anthropic_error(status, str(error.get("message") or "The worker's stream failed.")))


class _Translation:
    """The state of one stream's translation: the open content block and what ends the message."""

    __slots__ = ("_blocks", "_finish", "_matched", "_model", "_open", "_stops", "_text_head", "_thinking", "_tool",
                 "_usage", "started")

    def __init__(self, model: str, stop_sequences: object, thinking: bool) -> None:
        self._model = model
        self._stops = stop_sequences
        self._thinking = thinking
        self.started = False
        self._blocks = 0
        """Content blocks started so far (the next one's index)."""
        self._open: str | None = None
        """The open block's kind: "thinking", "text", "tool_use" or None."""
        self._tool: tuple[object, object] = (None, None)
        """The OpenAI index and id of the tool call the open `tool_use` block holds."""
        self._finish: object = None
        self._matched: object = None
        self._usage: object = None
        self._text_head = b""
        """The fixed start of the open text block's `text_delta` events (up to the text)."""

    def chunk(self, chunk: Body) -> bytes:
        """The events one chat completions chunk becomes (often one, none for a usage chunk)."""
        out = b"" if self.started else self._start(chunk)
        if usage := chunk.get("usage"):
            self._usage = usage
        for choice in chunk.get("choices") or ():
            if choice.get("index", 0) != 0:
                continue
            delta = choice.get("delta") or {}
            reasoning = reasoning_of(delta) if self._thinking else None
            if reasoning:
                if self._open != "thinking":
                    out += self._begin({"type": "thinking", "thinking": "", "signature": ""}, "thinking")
                out += self._delta({"type": "thinking_delta", "thinking": reasoning})
            text = delta.get("content")
            if text:
                if self._open != "text":
                    out += self._begin({"type": "text", "text": ""}, "text")
                    self._text_head = _TEXT_HEAD + str(self._blocks - 1).encode() + _TEXT_MIDDLE
                # The event `_delta` would make, from pieces fixed for the block: the one per-chunk event.
                out += b"".join((self._text_head, _encode(text), _TEXT_TAIL))
            for call in delta.get("tool_calls") or ():
                out += self._tool_call(call)
            if choice.get("finish_reason") is not None:
                self._finish, self._matched = choice["finish_reason"], choice.get("stop_reason")
        return out

    def end(self) -> bytes:
        """The events that end the message, at the stream's `[DONE]`."""
        out = [] if self.started else [self._start({})]
        if self._open is not None:
            out.append(self._stop())
        reason, sequence = stop_reason(self._finish, self._matched, self._stops)
        usage = usage_of(self._usage)
        out.append(sse("message_delta", {"type": "message_delta",
                                         "delta": {"stop_reason": reason or "end_turn", "stop_sequence": sequence},
                                         "usage": usage}))
        out.append(b'event: message_stop\ndata: {"type":"message_stop"}\n\n')
        return b"".join(out)

    def _start(self, chunk: Body) -> bytes:
        self.started = True
        message: Body = {"id": message_id(chunk.get("id")), "type": "message", "role": "assistant",
                         "model": self._model, "content": [], "stop_reason": None, "stop_sequence": None,
                         "usage": {"input_tokens": 0, "output_tokens": 0}}
        return sse("message_start", {"type": "message_start", "message": message}) + _PING

    def _tool_call(self, call: Body) -> bytes:
        out = b""
        key = (call.get("index", 0), call.get("id") or self._tool[1])  # some workers repeat the id, some omit it
        function = call.get("function") or {}
        if self._open != "tool_use" or key != self._tool:
            block: Body = {"type": "tool_use", "id": call.get("id") or "toolu_" + secrets.token_hex(12),
                           "name": function.get("name") or "", "input": {}}
            out += self._begin(block, "tool_use")
            self._tool = key
        arguments = function.get("arguments")
        if arguments:
            out += self._delta({"type": "input_json_delta", "partial_json": arguments})
        return out

    def _begin(self, block: Body, kind: str) -> bytes:
        out = self._stop() if self._open is not None else b""
        self._open = kind
        self._blocks += 1
        return out + sse("content_block_start", {"type": "content_block_start", "index": self._blocks - 1,
                                                 "content_block": block})

    def _delta(self, delta: Body) -> bytes:
        return sse("content_block_delta", {"type": "content_block_delta", "index": self._blocks - 1, "delta": delta})

    def _stop(self) -> bytes:
        self._open = None
        return sse("content_block_stop", {"type": "content_block_stop", "index": self._blocks - 1})


async def messages_stream(events: AsyncIterator[bytes], model: str, stop_sequences: object, *, thinking: bool,
                          tap: ChunkTap | None = None) -> AsyncIterator[bytes]:
    """The Messages stream of a chat completions stream's `events` (`model`: what the client asked for;
    `thinking`: the worker's reasoning is passed on; `tap`: where the relay left the chunks it decoded,
    `chunk_tap`). Closing this closes `events` (the worker's connection)."""
    translation = _Translation(model, stop_sequences, thinking)
    try:
        async for event in events:
            if tap is not None and event is tap.event:  # a worker's chunk the relay decoded (no error)
                chunk = tap.chunk
            else:  # `[DONE]`, an error event, a cache replay's event
                if event == _DONE:
                    yield translation.end()
                    return
                chunk = _decode(memoryview(event)[6:-2])  # `data: {...}\n\n`, as the relay and the cache send
                if "error" in chunk:
                    yield error_event(chunk["error"])
                    return
            if out := translation.chunk(chunk):
                yield out
        yield error_event({"message": "The worker's stream ended before it was complete."})
    finally:
        closing = getattr(events, "aclose", None)
        if closing is not None:
            await closing()
