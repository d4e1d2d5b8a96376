"""OpenAI's Responses API (`POST /v1/responses`), sent as it is to workers that serve it (`responses_native`),
else translated to chat completions: the request becomes a chat request
(`responses_request`), which the pipeline routes, limits, caches and captures as any chat request (a
routing rule sees the same text either way: `routing_text` is chat's, over the translated messages);
the answer and the stream come back as a Response object and Responses events (`responses_answer`,
`responses_stream`).

The surface registers no path of its own (`paths` is empty, and it is not in `BUILTIN_SURFACES`):
`/v1/responses` is served with a turn (`gateway.inference.responses_turn`; on the fast path and by its
litestar route, `gateway.http.routes.responses`), which knows the caller, so it can expand
`previous_response_id` from the tenant's stored responses and keep the answer. What the turn and the
encoders share of one request rides on `ResponsesRequest`.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import msgspec

from gateway.errors import InvalidRequest
from gateway.surfaces.base import Body, RequestDoc, decode_object
from gateway.surfaces.chat_completions import CHAT_COMPLETIONS
from gateway.surfaces.lenient_translation import translated_leniently
from gateway.surfaces.openai_common import OpenAISurface
from gateway.surfaces.request import InferenceRequest
from gateway.surfaces.responses_answer import response_head, response_of_answer
from gateway.surfaces.responses_native import NativeResponsesStream, named_answer, native_input
from gateway.surfaces.responses_request import chat_body
from gateway.surfaces.responses_stream import Keep, responses_stream
from gateway.upstream.chunk_tap import ChunkTap

_decode = msgspec.json.Decoder().decode
_encode = msgspec.json.Encoder().encode

_DOC = RequestDoc(
    summary="Create a model response (OpenAI Responses API, translated to chat completions)",
    schema={"type": "object", "required": ["input"], "additionalProperties": True, "properties": {
        "model": {"type": "string"},
        "input": {"anyOf": [{"type": "string"}, {"type": "array", "minItems": 1, "items": {"type": "object"}}]},
        "instructions": {"type": ["string", "null"]},
        "max_output_tokens": {"type": ["integer", "null"], "minimum": 1},
        "temperature": {"type": ["number", "null"]}, "top_p": {"type": ["number", "null"]},
        "tools": {"type": "array", "items": {"type": "object"}},
        "tool_choice": {"anyOf": [{"type": "string"}, {"type": "object"}]},
        "text": {"type": "object"}, "stream": {"type": ["boolean", "null"]},
        "store": {"type": ["boolean", "null"], "default": True},
        "previous_response_id": {"type": ["string", "null"]},
        "metadata": {"type": ["object", "null"]}, "user": {"type": "string"}}},
    example={"model": "chat", "input": "Say hello", "max_output_tokens": 32},
    description="See docs/configuration.md (OpenAI Responses) for the fields translated and those refused.")


@dataclass(slots=True)
class ResponsesRequest(InferenceRequest):
    """A Responses request: the chat request sent (`body`), and what its answer is made of."""

    head: Body = field(default_factory=dict)
    """The Response object before any output (`responses_answer.response_head`)."""
    conversation: list[Body] = field(default_factory=list)
    """The turn's input as chat messages, without `instructions` (a stored response keeps it, then the
    answer); a continuation's starts with its previous response's."""
    previous: list[Body] = field(default_factory=list)
    """A continuation's previous conversation (chat messages), which a native worker is sent as input
    items before the request's own."""
    keep: Keep | None = None
    """Set by the turn when the response is stored: called with the finished Response before the client
    is told it completed."""
    encoded: bytes | None = None
    """A whole answer the turn already encoded (to store it): `encode_answer` returns it."""

    @property
    def stored(self) -> bool:
        return bool(self.head["store"])


class Responses(OpenAISurface):
    """What the pipeline asks of a request (routing text, prefix affinity, token estimate, cache key,
    answer reservation) is chat's, over the translated body."""

    name = "responses"
    worker_name = "chat/completions"
    paths = ()
    title = "Responses"
    doc = _DOC
    translates = True
    native_capable = True

    def decode(self, raw: bytes) -> ResponsesRequest:
        """Checked and translated in one pass: a field the translation cannot carry is the 400 unless a
        worker that serves Responses natively answers (`lenient_translation`)."""
        body = decode_object(raw)
        model = body.get("model")
        if model is not None and not isinstance(model, str):
            raise InvalidRequest("`model` must be a string.", param="model", code="invalid_type")
        stream = body.get("stream")
        if stream is not None and not isinstance(stream, bool):
            raise InvalidRequest("`stream` must be a boolean.", param="stream", code="invalid_type")
        chat, untranslatable = translated_leniently(chat_body, body)
        start = 1 if body.get("instructions") is not None else 0
        return ResponsesRequest(self, chat, stream is True, native=body, untranslatable=untranslatable,
                                tap=ChunkTap() if stream is True else None, head=response_head(body),
                                conversation=list(chat["messages"][start:]))

    def check(self, body: Body) -> None:
        """The translation checks every field as it carries it (`decode` keeps what it makes)."""
        chat_body(body)

    def to_worker(self, body: Body) -> Body:
        """The chat completions request of `body` (`responses_request.chat_body`)."""
        return chat_body(body)

    def routing_text(self, body: Body, match_on: str = "last_user_message") -> str:
        return CHAT_COMPLETIONS.routing_text(body, match_on)

    def conversation(self, body: Body) -> str:
        return CHAT_COMPLETIONS.conversation(body)

    def prompt_tokens_estimate(self, body: Body) -> int:
        return CHAT_COMPLETIONS.prompt_tokens_estimate(body)

    def encode_answer(self, answer: bytes, request: InferenceRequest) -> bytes:
        assert isinstance(request, ResponsesRequest)
        if request.encoded is not None:
            return request.encoded
        return _encode(response_of_answer(_decode(answer), request.head))

    def encode_stream(self, events: AsyncIterator[bytes], request: InferenceRequest) -> AsyncIterator[bytes]:
        assert isinstance(request, ResponsesRequest)
        return responses_stream(events, request.head, request.keep, request.tap)

    def native_body(self, request: InferenceRequest) -> Body:
        """The client's request, its conversation expanded, `store: false` (the gateway stores responses)."""
        assert isinstance(request, ResponsesRequest) and request.native is not None
        body = {**request.native, "store": False, "input": native_input(request.previous, request.native["input"])}
        body.pop("previous_response_id", None)
        return body

    def native_answer(self, answer: bytes, request: InferenceRequest) -> bytes:
        assert isinstance(request, ResponsesRequest)
        if request.encoded is not None:
            return request.encoded
        return _encode(named_answer(answer, request.head))

    def native_stream(self, request: InferenceRequest) -> NativeResponsesStream:
        assert isinstance(request, ResponsesRequest)
        return NativeResponsesStream(request.head, lambda: request.keep)

    def native_response(self, answer: bytes, request: ResponsesRequest) -> dict[str, Any]:
        """The Response of a native worker's whole answer, kept on `request` like `encoded_response`'s."""
        response = named_answer(answer, request.head)
        request.encoded = _encode(response)
        return response

    def encoded_response(self, answer: bytes, request: ResponsesRequest) -> dict[str, Any]:
        """The Response of a whole chat answer, kept on `request` for `encode_answer` (the turn stores it
        before the handler encodes the reply)."""
        response = response_of_answer(_decode(answer), request.head)
        request.encoded = _encode(response)
        return response


RESPONSES = Responses()
