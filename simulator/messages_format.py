"""Anthropic Messages answers (`POST /v1/messages`) as vLLM and Ollama write them: whole, or as events.

A stream is SSE with `event:` lines: `message_start` (usage with the input tokens), then per content
block `content_block_start`, `content_block_delta`s (`text_delta`, or `input_json_delta` with
`partial_json` for a `tool_use` block) and `content_block_stop`, then `message_delta` (`stop_reason`,
usage with the output tokens) and `message_stop`. Neither server sends `ping`. `stop_reason` is
`end_turn`, `max_tokens` or `tool_use`. The servers differ, and the simulator with them:

- vLLM (which runs Messages through its chat path) gives the message the chat completion's id
  (`chatcmpl-…`) and its tool calls' ids (`chatcmpl-tool-…`), streams a call's input token by token,
  ends a call of a *named* `tool_choice` with `end_turn` (its chat finish reason is `stop`), sends
  `message_stop` for chat's `[DONE]` (so `no-done` leaves it out), and a generation failure as an
  `error` event (`internal_error`).
- Ollama gives `msg_…` ids, sends a call whole once it is parsed, and its closing events ride on the
  final chat line (`no-done` leaves them all out); a generation failure just ends the stream.
"""

from __future__ import annotations

import uuid
from typing import Any

import msgspec

from simulator.config import SimulatorKind
from simulator.engine import GenerationPlan
from simulator.stream_script import Chunks, StreamFormat, hold_back
from simulator.streaming import named_sse_event, sse_garbage
from simulator.tool_calls import ToolCallPlan, finish_reason

STOP_REASONS = {"stop": "end_turn", "length": "max_tokens", "tool_calls": "tool_use"}
"""Messages' `stop_reason` for each chat finish reason."""

_FAILURE = "Simulated generation failure (fault mid-stream-error)."


def _tool_input(arguments: str) -> Any:
    try:
        return msgspec.json.decode(arguments)
    except msgspec.DecodeError:  # cut by max_tokens: what was generated is not a whole object
        return {}


class MessagesReply:
    """One Messages answer to one request, from its plan."""

    def __init__(
        self, kind: SimulatorKind, message_id: str, model: str, plan: GenerationPlan, call: ToolCallPlan | None
    ) -> None:
        self.kind = kind
        self.message_id = message_id
        self.model = model
        self.plan = plan
        self.call = call
        hex_id = uuid.uuid4().hex
        self.tool_use_id = f"chatcmpl-tool-{hex_id}" if kind == "vllm" else f"call_{hex_id[:8]}"
        self.stop_reason = STOP_REASONS[finish_reason(kind, call, plan)]
        self._started = False

    def _block(self) -> dict[str, Any]:
        if self.call is None:
            return {"type": "text", "text": ""}
        return {"type": "tool_use", "id": self.tool_use_id, "name": self.call.name, "input": {}}

    def whole(self) -> dict[str, Any]:
        """The non-streamed answer (neither server writes a null `stop_sequence`)."""
        plan = self.plan
        content: list[dict[str, Any]] = []
        if self.call is not None:
            content.append({**self._block(), "input": _tool_input(plan.text)})
        elif plan.text:
            content.append({"type": "text", "text": plan.text})
        return {
            "id": self.message_id,
            "type": "message",
            "role": "assistant",
            "model": self.model,
            "content": content,
            "stop_reason": self.stop_reason,
            "usage": {"input_tokens": plan.prompt_tokens, "output_tokens": plan.completion_tokens},
        }

    # --- events -------------------------------------------------------------------------------

    def _opening(self) -> list[bytes]:
        usage = {"input_tokens": self.plan.prompt_tokens, "output_tokens": 0}
        message: dict[str, Any] = {"id": self.message_id, "type": "message", "role": "assistant", "model": self.model}
        message.update(content=[], stop_reason=None, stop_sequence=None, usage=usage)
        return [named_sse_event("message_start", {"type": "message_start", "message": message})]

    def _delta(self, piece: str) -> bytes:
        if self.call is None:
            delta = {"type": "text_delta", "text": piece}
        else:
            delta = {"type": "input_json_delta", "partial_json": piece}
        data = {"type": "content_block_delta", "index": 0, "delta": delta}
        return named_sse_event("content_block_delta", data)

    def _token(self, piece: str) -> bytes:
        if self._started:
            return self._delta(piece)
        self._started = True
        start = {"type": "content_block_start", "index": 0, "content_block": self._block()}
        return named_sse_event("content_block_start", start) + self._delta(piece)

    def _block_stop(self) -> list[bytes]:
        if not self._started:
            return []
        return [named_sse_event("content_block_stop", {"type": "content_block_stop", "index": 0})]

    def _message_delta(self) -> bytes:
        plan = self.plan
        usage = {"input_tokens": plan.prompt_tokens, "output_tokens": plan.completion_tokens}
        data = {"type": "message_delta", "delta": {"stop_reason": self.stop_reason}, "usage": usage}
        return named_sse_event("message_delta", data)

    def _ollama_call(self) -> list[bytes]:
        """Ollama's parsed call: the whole block at once."""
        return [self._token(self.plan.text), *self._block_stop()]

    def stream_format(self, keepalive_comment: str | None = None) -> StreamFormat:
        """How the streamed answer is written (see the module's docstring for the two servers)."""
        stop = named_sse_event("message_stop", {"type": "message_stop"})
        if self.kind == "vllm":
            failure = {"type": "error", "error": {"type": "internal_error", "message": _FAILURE}}
            return StreamFormat(
                opening=self._opening,
                token=self._token,
                closing=lambda: [*self._block_stop(), self._message_delta()],
                terminator=lambda: [stop],
                end_marker=lambda: [stop],
                error_events=lambda: [named_sse_event("error", failure)],
                garbage=sse_garbage,
                keepalive_comment=keepalive_comment,
            )
        closing: Chunks
        if self.call is None:  # Ollama: the text block's end rides on the final line
            token, closing = self._token, list
            terminator = lambda: [*self._block_stop(), self._message_delta(), stop]  # noqa: E731
        else:
            token, closing = hold_back, self._ollama_call
            terminator = lambda: [self._message_delta(), stop]  # noqa: E731
        return StreamFormat(
            opening=self._opening,
            token=token,
            closing=closing,
            terminator=terminator,
            error_events=list,  # Ollama drops a failure line: the stream just ends
            garbage=sse_garbage,
        )
