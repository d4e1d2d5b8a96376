"""OpenAI Responses answers (`POST /v1/responses`) as vLLM and Ollama write them: whole, or as events.

A stream is SSE with `event:` lines and no `[DONE]`: `response.created`, `response.in_progress`, then
for text `response.output_item.added` (a `message`), `response.content_part.added`,
`response.output_text.delta` per token, `response.output_text.done`, `response.content_part.done`,
`response.output_item.done`; for a tool call `response.output_item.added` (a `function_call`),
`response.function_call_arguments.delta`, `response.function_call_arguments.done`,
`response.output_item.done`; last `response.completed`. Every event carries a `sequence_number`
from 0. The servers differ, and the simulator with them:

- vLLM streams a call's arguments token by token; a reply cut by `max_output_tokens` has `status:
  "incomplete"` (with `incomplete_details`) but still ends with `response.completed`; a generation
  failure sends an `error` event.
- Ollama (its compatibility layer over /api/chat) sends a call whole once it is parsed, always reports
  `status: "completed"`, and its closing events ride on the final chat line (`no-done` leaves them
  out); a generation failure just ends the stream.
"""

from __future__ import annotations

import time
import uuid
from typing import Any

from simulator.config import SimulatorKind
from simulator.engine import GenerationPlan
from simulator.stream_script import StreamFormat, hold_back
from simulator.streaming import named_sse_event, sse_garbage
from simulator.tool_calls import ToolCallPlan

_FAILURE = "Simulated generation failure (fault mid-stream-error)."


def _text_part(text: str) -> dict[str, Any]:
    return {"type": "output_text", "text": text, "annotations": [], "logprobs": []}


class ResponsesReply:
    """One Responses answer to one request, from its plan."""

    def __init__(
        self,
        kind: SimulatorKind,
        response_id: str,
        model: str,
        request: dict[str, Any],
        plan: GenerationPlan,
        call: ToolCallPlan | None,
    ) -> None:
        self.kind = kind
        self.response_id = response_id
        self.model = model
        self.request = request
        self.plan = plan
        self.call = call
        self.created = int(time.time())
        hex_id = uuid.uuid4().hex
        self.item_id = f"fc_{hex_id}" if call is not None else f"msg_{hex_id}"
        self.call_id = f"call_{hex_id}"
        self.status = "incomplete" if kind == "vllm" and plan.finish_reason == "length" else "completed"
        self._sequence = 0
        self._started = False

    # --- whole objects ------------------------------------------------------------------------

    def response(self, status: str, output: list[dict[str, Any]], usage: dict[str, Any] | None) -> dict[str, Any]:
        """The response object, echoing the request's settings."""
        request = self.request
        return {
            "id": self.response_id,
            "object": "response",
            "created_at": self.created,
            "status": status,
            "background": False,
            "error": None,
            "incomplete_details": {"reason": "max_output_tokens"} if status == "incomplete" else None,
            "instructions": request.get("instructions"),
            "max_output_tokens": request.get("max_output_tokens"),
            "max_tool_calls": None,
            "metadata": request.get("metadata") or {},
            "model": self.model,
            "output": output,
            "parallel_tool_calls": request.get("parallel_tool_calls", True),
            "previous_response_id": request.get("previous_response_id"),
            "reasoning": None,
            "service_tier": "auto",
            "store": False,  # neither server keeps responses unless told to (vLLM: an env variable)
            "temperature": request.get("temperature", 1.0),
            "text": request.get("text") or {"format": {"type": "text"}},
            "tool_choice": request.get("tool_choice", "auto"),
            "tools": request.get("tools") or [],
            "top_logprobs": 0,
            "top_p": request.get("top_p", 1.0),
            "truncation": request.get("truncation", "disabled"),
            "usage": usage,
            "user": None,
        }

    def usage(self) -> dict[str, Any]:
        plan = self.plan
        return {
            "input_tokens": plan.prompt_tokens,
            "input_tokens_details": {"cached_tokens": plan.cached_prompt_tokens if self.kind == "vllm" else 0},
            "output_tokens": plan.completion_tokens,
            "output_tokens_details": {"reasoning_tokens": 0},
            "total_tokens": plan.prompt_tokens + plan.completion_tokens,
        }

    def item(self, status: str, arguments: str) -> dict[str, Any]:
        """The output item: the call (with `arguments` so far) or the message (with the whole text)."""
        call = self.call
        if call is not None:
            return {"id": self.item_id, "type": "function_call", "call_id": self.call_id, "name": call.name,
                    "arguments": arguments, "status": status}  # fmt: skip
        content = [_text_part(self.plan.text)] if status == "completed" else []
        return {"id": self.item_id, "type": "message", "role": "assistant", "status": status, "content": content}

    def whole(self) -> dict[str, Any]:
        """The non-streamed answer."""
        output = [self.item("completed", self.plan.text)] if self.plan.pieces or self.call else []
        return self.response(self.status, output, self.usage())

    # --- events -------------------------------------------------------------------------------

    def event(self, kind: str, fields: dict[str, Any]) -> bytes:
        data = {"type": kind, **fields, "sequence_number": self._sequence}
        self._sequence += 1
        return named_sse_event(kind, data)

    def _item_event(self, kind: str, status: str, arguments: str = "") -> bytes:
        return self.event(kind, {"output_index": 0, "item": self.item(status, arguments)})

    def _opening(self) -> list[bytes]:
        created = self.response("in_progress", [], None)
        return [self.event("response.created", {"response": created}),
                self.event("response.in_progress", {"response": created})]  # fmt: skip

    def _text_token(self, piece: str) -> bytes:
        where = {"item_id": self.item_id, "output_index": 0, "content_index": 0}
        opening = b""
        if not self._started:  # the message item opens with the first token
            self._started = True
            opening = self._item_event("response.output_item.added", "in_progress")
            opening += self.event("response.content_part.added", {**where, "part": _text_part("")})
        return opening + self.event("response.output_text.delta", {**where, "delta": piece, "logprobs": []})

    def _arguments_token(self, piece: str) -> bytes:
        opening = b""
        if not self._started:  # the call item opens with the first piece of its arguments
            self._started = True
            opening = self._item_event("response.output_item.added", "in_progress")
        delta = {"item_id": self.item_id, "output_index": 0, "delta": piece}
        return opening + self.event("response.function_call_arguments.delta", delta)

    def _text_done(self) -> list[bytes]:
        if not self._started:
            return []
        text = self.plan.text
        where = {"item_id": self.item_id, "output_index": 0, "content_index": 0}
        return [self.event("response.output_text.done", {**where, "text": text, "logprobs": []}),
                self.event("response.content_part.done", {**where, "part": _text_part(text)}),
                self._item_event("response.output_item.done", "completed")]  # fmt: skip

    def _call_done(self) -> list[bytes]:
        assert self.call is not None
        arguments = self.plan.text
        events = [] if self.kind == "vllm" else [self._arguments_token(arguments)]
        done = {"item_id": self.item_id, "output_index": 0, "arguments": arguments, "name": self.call.name}
        return [*events, self.event("response.function_call_arguments.done", done),
                self._item_event("response.output_item.done", "completed", arguments)]  # fmt: skip

    def _completed(self) -> bytes:
        output = [self.item("completed", self.plan.text)] if self._started or self.call else []
        return self.event("response.completed", {"response": self.response(self.status, output, self.usage())})

    def stream_format(self, keepalive_comment: str | None = None) -> StreamFormat:
        """How the streamed answer is written (see the module's docstring for the two servers)."""
        if self.kind == "vllm":
            token = self._text_token if self.call is None else self._arguments_token
            closing = self._text_done if self.call is None else self._call_done
            terminator = lambda: [self._completed()]  # noqa: E731
            failure = {"code": "server_error", "message": _FAILURE, "param": None}
            error_events = lambda: [self.event("error", failure)]  # noqa: E731
        elif self.call is None:  # Ollama: the text's closing events ride on the final line
            token, closing = self._text_token, list
            terminator = lambda: [*self._text_done(), self._completed()]  # noqa: E731
            error_events = list  # Ollama drops a failure line: the stream just ends
        else:  # Ollama: the parsed call comes whole, before the final line
            token, closing = hold_back, self._call_done
            terminator = lambda: [self._completed()]  # noqa: E731
            error_events = list
        return StreamFormat(
            opening=self._opening,
            token=token,
            closing=closing,
            terminator=terminator,
            error_events=error_events,
            garbage=sse_garbage,
            keepalive_comment=keepalive_comment,
        )
