"""What a simulated Ollama worker answers on each generation surface, whole or streamed.

/api/chat and /api/generate answer NDJSON lines (one per token with `done: false`, then the `done: true`
line with `done_reason`, the counts and the durations in nanoseconds). A chat tool call is held back
while its tokens are generated and sent whole, as Ollama's tool parser does: a line whose message has
`tool_calls` (`{"id", "function": {"index", "name", "arguments": {…}}}`) and empty content, then the
`done` line. /v1/messages and /v1/responses are Ollama's compatibility layers over the same chat
generation (`simulator.messages_format`, `simulator.responses_format`).
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass
from typing import Any

import msgspec

from simulator.engine import GenerationPlan
from simulator.messages_format import MessagesReply
from simulator.ollama_models import timestamp
from simulator.ollama_requests import OllamaGeneration
from simulator.responses_format import ResponsesReply
from simulator.stream_script import StreamFormat, hold_back
from simulator.streaming import ndjson_line
from simulator.tool_calls import ToolCallPlan, reply_call

_NS = 1_000_000_000

NDJSON = "application/x-ndjson"
SSE = "text/event-stream"


@dataclass(frozen=True)
class Timings:
    """When a request's phases happened (`time.monotonic()`), for the `done` line's durations."""

    arrived: float
    load_s: float
    prefill_started: float
    first_token: float


def line(generation: OllamaGeneration, content: str, tool_calls: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    """The fields every chat or generate line starts with."""
    fields: dict[str, Any] = {"model": generation.model, "created_at": timestamp()}
    if generation.endpoint != "chat":
        fields["response"] = content
    elif tool_calls:
        fields["message"] = {"role": "assistant", "content": content, "tool_calls": tool_calls}
    else:
        fields["message"] = {"role": "assistant", "content": content}
    return fields


def _tool_calls(call: ToolCallPlan) -> list[dict[str, Any]]:
    arguments = msgspec.json.decode(call.arguments)
    return [{"id": f"call_{uuid.uuid4().hex[:8]}", "function": {"index": 0, "name": call.name, "arguments": arguments}}]


class OllamaReply:
    """The answer to one generation request, from its plan."""

    def __init__(self, generation: OllamaGeneration, plan: GenerationPlan, timings: Timings) -> None:
        self.generation = generation
        self.plan = plan
        self.timings = timings
        self.call = reply_call("ollama", generation.tool_call, plan)
        self.content_type = SSE if generation.endpoint in ("messages", "responses") else NDJSON

    def _surface(self) -> MessagesReply | ResponsesReply | None:
        generation = self.generation
        hex_id = uuid.uuid4().hex
        if generation.endpoint == "messages":
            return MessagesReply("ollama", f"msg_{hex_id[:24]}", generation.model, self.plan, self.call)
        if generation.endpoint == "responses":
            request = generation.body or {}
            return ResponsesReply("ollama", f"resp_{hex_id}", generation.model, request, self.plan, self.call)
        return None

    def final(self, content: str, tool_calls: list[dict[str, Any]] | None = None) -> dict[str, Any]:
        """The `done: true` line."""
        now = time.monotonic()
        timings, plan = self.timings, self.plan
        return {
            **line(self.generation, content, tool_calls),
            "done": True,
            "done_reason": plan.finish_reason,
            "total_duration": int((now - timings.arrived) * _NS),
            "load_duration": int(timings.load_s * _NS),
            "prompt_eval_count": plan.prompt_tokens,
            "prompt_eval_duration": int((timings.first_token - timings.prefill_started) * _NS),
            "eval_count": plan.completion_tokens,
            "eval_duration": int((now - timings.first_token) * _NS),
        }

    def whole(self) -> dict[str, Any]:
        """The non-streamed answer."""
        surface = self._surface()
        if surface is not None:
            return surface.whole()
        if self.call is not None:
            return self.final("", _tool_calls(self.call))
        return self.final(self.plan.text)

    def stream_format(self) -> StreamFormat:
        """How the streamed answer is written."""
        surface = self._surface()
        if surface is not None:
            return surface.stream_format()
        generation, call = self.generation, self.call

        def token(piece: str) -> bytes:
            return ndjson_line({**line(generation, piece), "done": False})

        def tool_call_line() -> list[bytes]:
            return [ndjson_line({**line(generation, "", _tool_calls(call)), "done": False})] if call else []

        return StreamFormat(
            opening=list,
            token=hold_back if call else token,
            closing=tool_call_line,
            terminator=lambda: [ndjson_line(self.final(""))],
            error_events=lambda: [ndjson_line({"error": "simulated error (fault mid-stream-error)"})],
            garbage=lambda index: f"<garbage {index}> {{not json\n".encode(),
        )
