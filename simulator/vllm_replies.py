"""What a simulated vLLM worker answers on each generation surface, whole or streamed.

Chat and completions stream `data:` chunks ending with `[DONE]` (`simulator.vllm_shapes`); Responses
and Messages stream their own events (`simulator.responses_format`, `simulator.messages_format`). A
chat tool call streams as `tool_calls` deltas: the first with the call's id, type and name and the first
piece of its arguments, then one piece per token; its finish reason is `tool_calls` (`stop` for a named
`tool_choice`, as vLLM and OpenAI do), and a whole reply's message has empty content.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from typing import Any, Literal

from simulator.config import SimulatorConfig
from simulator.engine import GenerationPlan
from simulator.messages_format import MessagesReply
from simulator.responses_format import ResponsesReply
from simulator.stream_script import StreamFormat
from simulator.streaming import sse_event, sse_garbage
from simulator.tool_calls import finish_reason
from simulator.vllm_requests import GenerationRequest
from simulator.vllm_shapes import (
    chat_chunk,
    chat_completion,
    error_body,
    text_chunk,
    text_completion,
    tool_call_delta,
    tool_call_entry,
    usage_body,
    usage_chunk,
)

_DONE = b"data: [DONE]\n\n"


class VllmReplies:
    """Builds the answer of each surface from a request and its plan."""

    def __init__(self, config: SimulatorConfig) -> None:
        self.config = config
        self.keepalive_comment = "keep-alive" if config.keepalive_comments else None

    def whole(self, generation: GenerationRequest, plan: GenerationPlan, request_id: str) -> dict[str, Any]:
        """The non-streamed answer."""
        if generation.endpoint == "responses":
            return self._responses(generation, plan, request_id).whole()
        if generation.endpoint == "messages":
            return self._messages(generation, plan, request_id).whole()
        usage = usage_body(plan, self.config.prompt_tokens_details)
        created = int(time.time())
        if generation.endpoint == "completions":
            return text_completion(f"cmpl-{request_id}", created, generation.model, plan, usage)
        call = generation.tool_call
        if call is None:
            return chat_completion(f"chatcmpl-{request_id}", created, generation.model, plan, usage)
        entry = tool_call_entry(_tool_call_id(), call.name, plan.text)
        finish = finish_reason("vllm", call, plan)
        return chat_completion(f"chatcmpl-{request_id}", created, generation.model, plan, usage, finish, [entry])

    def stream_format(self, generation: GenerationRequest, plan: GenerationPlan, request_id: str) -> StreamFormat:
        """How the streamed answer is written."""
        if generation.endpoint == "responses":
            return self._responses(generation, plan, request_id).stream_format(self.keepalive_comment)
        if generation.endpoint == "messages":
            return self._messages(generation, plan, request_id).stream_format(self.keepalive_comment)
        return self._chunk_stream(generation, plan, request_id)

    def _responses(self, generation: GenerationRequest, plan: GenerationPlan, request_id: str) -> ResponsesReply:
        request = generation.body or {}
        return ResponsesReply("vllm", f"resp_{request_id}", generation.model, request, plan, generation.tool_call)

    def _messages(self, generation: GenerationRequest, plan: GenerationPlan, request_id: str) -> MessagesReply:
        return MessagesReply("vllm", f"chatcmpl-{request_id}", generation.model, plan, generation.tool_call)

    def _chunk_stream(self, generation: GenerationRequest, plan: GenerationPlan, request_id: str) -> StreamFormat:
        """Chat or completions chunks, `[DONE]` last."""
        created = int(time.time())
        model = generation.model
        usage = usage_body(plan, self.config.prompt_tokens_details)
        chunk_object: Literal["chat.completion.chunk", "text_completion"]
        if generation.endpoint == "chat":
            response_id = f"chatcmpl-{request_id}"
            role = sse_event(chat_chunk(response_id, created, model, {"role": "assistant", "content": ""}))
            token = self._chat_token(generation, response_id, created, model)
            finish = chat_chunk(response_id, created, model, {}, finish_reason("vllm", generation.tool_call, plan))
            opening, chunk_object = [role], "chat.completion.chunk"
        else:
            response_id = f"cmpl-{request_id}"

            def token(piece: str) -> bytes:
                return sse_event(text_chunk(response_id, created, model, piece))

            finish = text_chunk(response_id, created, model, "", plan.finish_reason)
            opening, chunk_object = [], "text_completion"

        def closing() -> list[bytes]:
            chunks = [sse_event(finish)]
            if generation.include_usage:
                chunks.append(sse_event(usage_chunk(response_id, created, model, chunk_object, usage)))
            return chunks

        def error_events() -> list[bytes]:
            return [sse_event(error_body("Simulated generation failure (fault mid-stream-error).", 500)), _DONE]

        return StreamFormat(
            opening=lambda: opening,
            token=token,
            closing=closing,
            terminator=lambda: [_DONE],
            end_marker=lambda: [_DONE],
            error_events=error_events,
            garbage=sse_garbage,
            keepalive_comment=self.keepalive_comment,
        )

    def _chat_token(
        self, generation: GenerationRequest, response_id: str, created: int, model: str
    ) -> Callable[[str], bytes]:
        """Writes one chat token chunk: a content piece, or a piece of the tool call's arguments."""
        call = generation.tool_call
        if call is None:
            return lambda piece: sse_event(chat_chunk(response_id, created, model, {"content": piece}))
        started = False

        def tool_token(piece: str) -> bytes:
            nonlocal started
            delta = tool_call_delta(piece) if started else tool_call_delta(piece, _tool_call_id(), call.name)
            started = True
            return sse_event(chat_chunk(response_id, created, model, delta))

        return tool_token


def _tool_call_id() -> str:
    """vLLM's tool call ids: `chatcmpl-tool-<hex>`."""
    return f"chatcmpl-tool-{uuid.uuid4().hex}"
