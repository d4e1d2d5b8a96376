"""OpenAI Responses answered natively: a worker that serves `/v1/responses` itself (vLLM, llama.cpp's
server, current Ollama) is sent the client's request with the conversation the gateway keeps expanded
(a `previous_response_id` becomes the stored input items before the new ones) and `store: false`: the
gateway stores responses (across replicas, per tenant), so the worker stays stateless whichever replica
or worker answers.

What comes back is the worker's Response as it is, but for what names the gateway's side of it: the
`id` (the gateway's, the one `GET /v1/responses/{id}` and a next `previous_response_id` know), the
`model` (the catalog's), and the `store` and `previous_response_id` the client sent. A stream's events
pass as they are but for the same fields in the `response` they carry; `response.completed` (or
`response.incomplete`) ends it, after the turn has stored the response; a worker's `response.failed`
or `error` event, or a stream that breaks first, ends it with the gateway's `response.failed`.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import msgspec

from gateway.errors import GatewayError, UpstreamError, worker_error

Body = dict[str, Any]
Keep = Callable[[Body], Awaitable[None]]
_decode = msgspec.json.Decoder().decode
_encode = msgspec.json.Encoder().encode
_NAMED = ("id", "model", "store", "previous_response_id")
"""The Response's fields the gateway answers for (from the request's head)."""
_ENDS = frozenset({"response.completed", "response.incomplete"})


def native_input(previous: list[Body], new_input: object) -> list[Body] | object:
    """The input sent to a worker: the stored conversation's items (`previous`, chat messages) before the
    request's own input (kept as the client sent it)."""
    if not previous:
        return new_input
    items = [item for message in previous for item in input_items(message)]
    return items + ([{"role": "user", "content": new_input}] if isinstance(new_input, str) else list(new_input)
                    if isinstance(new_input, list) else [])


def input_items(message: Body) -> list[Body]:
    """One chat message of a stored conversation as Responses input items (a message; an assistant's tool
    calls as `function_call` items; a tool message as a `function_call_output`)."""
    role, content = message.get("role"), message.get("content")
    if role == "tool":
        return [{"type": "function_call_output", "call_id": message.get("tool_call_id", ""),
                 "output": content if isinstance(content, str) else ""}]
    items: list[Body] = []
    if content:
        items.append({"type": "message", "role": role,
                      "content": content if isinstance(content, str) else _parts(content, role)})
    for call in message.get("tool_calls") or ():
        function = call.get("function") or {}
        items.append({"type": "function_call", "call_id": call.get("id", ""), "name": function.get("name", ""),
                      "arguments": function.get("arguments", "")})
    return items


def _parts(parts: list[Body], role: object) -> list[Body]:
    text_type = "output_text" if role == "assistant" else "input_text"
    out: list[Body] = []
    for part in parts:
        if part.get("type") == "image_url":
            url = part.get("image_url") or {}
            out.append({"type": "input_image", "image_url": url.get("url", ""), "detail": url.get("detail", "auto")})
        else:
            out.append({"type": text_type, "text": part.get("text", "")})
    return out


def named(response: Body, head: Body) -> Body:
    """The worker's Response, naming what the gateway answers for."""
    for name in _NAMED:
        response[name] = head[name]
    return response


def named_answer(answer: bytes, head: Body) -> Body:
    """A worker's whole Response, decoded and named (`UpstreamError` when it is not one)."""
    response = _decode(answer)
    if not isinstance(response, dict) or not isinstance(response.get("output"), list):
        raise UpstreamError("the worker's answer is not a Response object", code="invalid_upstream_answer")
    return named(response, head)


class NativeResponsesStream:
    """One native Responses stream as `gateway.upstream.native_relay` reads it."""

    content_kinds = frozenset({"response.output_text.delta", "response.function_call_arguments.delta"})
    __slots__ = ("_head", "_keeper", "_response", "_sequence", "ended")

    def __init__(self, head: Body, keeper: Callable[[], Keep | None]) -> None:
        """`keeper`: the turn's `keep` once it is known (the turn sets it after the stream was opened)."""
        self._head = head
        self._keeper = keeper
        self._response: Body | None = None
        self._sequence = 0
        self.ended = False

    def read(self, kind: str, event: Body, payload: bytes) -> bytes:
        sequence = event.get("sequence_number")
        if type(sequence) is int:
            self._sequence = sequence
        response = event.get("response")
        if isinstance(response, dict):
            if kind == "response.failed":
                raise _failure(response.get("error"))
            self._response = named(response, self._head)
            payload = _encode(event)
            self.ended = kind in _ENDS
        elif kind == "error":
            raise worker_error(500, _encode({"error": event}))
        return b"event: " + kind.encode() + b"\ndata: " + payload + b"\n\n"

    async def finish(self, last: bytes) -> bytes:
        """Store the response (a store that fails turns the end into `response.failed`), then its end."""
        keep = self._keeper()
        if keep is not None and self._response is not None:
            try:
                await keep(self._response)
            except GatewayError as exc:
                return self.failure(exc)
        return last

    def usage(self) -> dict[str, int] | None:
        usage = self._response.get("usage") if self._response is not None else None
        if not isinstance(usage, dict):
            return None
        prompt, completion = usage.get("input_tokens") or 0, usage.get("output_tokens") or 0
        return {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}

    def failure(self, error: GatewayError) -> bytes:
        body = error.body()["error"]
        response = {**(self._response or self._head), "status": "failed",
                    "error": {"code": str(body.get("code") or body.get("type") or "server_error"),
                              "message": str(body.get("message") or "The worker's stream failed.")}}
        self._sequence += 1
        event = {"type": "response.failed", "sequence_number": self._sequence, "response": response}
        return b"event: response.failed\ndata: " + _encode(event) + b"\n\n"


def _failure(error: object) -> UpstreamError:
    message = error.get("message") if isinstance(error, dict) else None
    return UpstreamError(f"the worker failed the response: {message or 'no reason given'}")
