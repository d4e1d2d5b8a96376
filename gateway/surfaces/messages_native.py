"""Anthropic Messages answered natively: a worker that speaks Messages itself (vLLM, llama.cpp's server,
current Ollama) is sent the client's request as it is, its `model` the worker's id, with the client's
`anthropic-version` and `anthropic-beta` headers; its answer and its stream come back as they are, but
for the model they name (the catalog's name the client asked for, as a translated answer names it).

The gateway still reads the stream (`gateway.upstream.native_relay`): `message_start` gives the prompt's
tokens, `message_delta` the answer's, `message_stop` ends the answer; a worker's `error` event, or a
stream that breaks before `message_stop`, becomes Anthropic's error event.

A worker quirk absorbed: llama.cpp's server sometimes leaves `message_start` out under load (3 of 25
streams on the 2-core box, curl straight to it), and the anthropic SDK cannot build the message
without it. A stream whose first event is another one gets a `message_start` made by the gateway
first (the prompt's tokens in it, and counted, are the gateway's estimate).
"""

from __future__ import annotations

import secrets
from typing import Any

import msgspec

from gateway.errors import GatewayError, worker_error
from gateway.surfaces.messages_answers import error_of
from gateway.surfaces.messages_stream import sse

Body = dict[str, Any]
_decode = msgspec.json.Decoder().decode
_encode = msgspec.json.Encoder().encode


def named_answer(answer: bytes, model: str) -> bytes:
    """A worker's whole Messages answer naming `model` (re-encoded only when it named another)."""
    message = _decode(answer)
    if not isinstance(message, dict) or message.get("model") == model:
        return answer
    message["model"] = model
    return _encode(message)


def input_tokens(usage: Body) -> int:
    """The prompt's tokens in Anthropic's usage: new, read from the worker's cache, and written to it."""
    return sum(value for name in ("input_tokens", "cache_read_input_tokens", "cache_creation_input_tokens")
               if type(value := usage.get(name)) is int)


class NativeMessagesStream:
    """One native Messages stream as `gateway.upstream.native_relay` reads it."""

    content_kinds = frozenset({"content_block_delta"})
    __slots__ = ("_completion", "_estimate", "_made_by_us", "_model", "_prompt", "_reported", "_started_message",
                 "ended")

    def __init__(self, model: str, prompt_estimate: int = 0) -> None:
        """`prompt_estimate`: the prompt's tokens, estimated, for a `message_start` the worker left out."""
        self._model = model
        self._estimate = prompt_estimate
        self._prompt = self._completion = 0
        self._reported = False
        self._started_message = False
        self._made_by_us = False
        self.ended = False

    def read(self, kind: str, event: Body, payload: bytes) -> bytes:
        if not self._started_message and kind not in ("message_start", "error"):
            self._started_message = self._made_by_us = True
            return self._made_start() + self.read(kind, event, payload)
        if kind == "message_start":
            self._started_message = True
            payload = self._started(event, payload)
        elif kind == "message_delta":
            self._count(event.get("usage"))
        elif kind == "message_stop":
            self.ended = True
        elif kind == "error":
            raise worker_error(500, payload)
        return b"event: " + kind.encode() + b"\ndata: " + payload + b"\n\n"

    async def finish(self, last: bytes) -> bytes:
        return last

    def usage(self) -> dict[str, int] | None:
        if not self._reported or (self._made_by_us and self._prompt == 0):
            return None  # unknown (the prompt's tokens came with the left-out message_start): estimated
        return {"prompt_tokens": self._prompt, "completion_tokens": self._completion,
                "total_tokens": self._prompt + self._completion}

    def failure(self, error: GatewayError) -> bytes:
        return sse("error", error_of(error))

    def _made_start(self) -> bytes:
        """The `message_start` a worker left out (its id the gateway's, the prompt's tokens estimated)."""
        return sse("message_start", {"type": "message_start", "message": {
            "id": f"msg_{secrets.token_hex(12)}", "type": "message", "role": "assistant", "content": [],
            "model": self._model, "stop_reason": None, "stop_sequence": None,
            "usage": {"input_tokens": self._estimate, "output_tokens": 0}}})

    def _started(self, event: Body, payload: bytes) -> bytes:
        message = event.get("message")
        if not isinstance(message, dict):
            return payload
        self._count(message.get("usage"))
        if message.get("model") == self._model:
            return payload
        message["model"] = self._model
        return _encode(event)

    def _count(self, usage: object) -> None:
        """`message_start` has the prompt's tokens, `message_delta` the answer's (and, from some workers, the
        prompt's again: the last figure wins)."""
        if not isinstance(usage, dict):
            return
        self._reported = True
        if (prompt := input_tokens(usage)) > 0:
            self._prompt = prompt
        if type(output := usage.get("output_tokens")) is int:
            self._completion = output
