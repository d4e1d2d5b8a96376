"""Anthropic's Messages API (`POST /v1/messages`, what Claude Code and the anthropic SDK speak), served by
translation: a checked request (`messages_checks`) becomes a chat completions request
(`messages_requests`) that every worker serves, and the pipeline (model choice, routing rules, prefix
affinity, limits, the cache, capture) sees that request; answers and streams come back as Anthropic's
(`messages_answers`, `messages_stream`), errors as its error object. A worker that speaks Messages
itself is sent the client's request instead, and its answer comes back as it is (`messages_native`).

Routing rules, prefix affinity and the token estimates are chat completions' over the translation, so
a rule matches the same text whether it came as chat or as Messages. `/v1/messages/count_tokens`
(`gateway.http.routes.anthropic`) has a worker count the translation, else answers with that estimate.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass

from gateway.errors import GatewayError, InvalidRequest
from gateway.limits.decisions import Admission
from gateway.limits.headers import anthropic_headers
from gateway.surfaces.base import Body, RequestDoc, decode_object
from gateway.surfaces.chat_completions import ChatCompletions
from gateway.surfaces.lenient_translation import translated_leniently
from gateway.surfaces.messages_answers import encode_message, error_of
from gateway.surfaces.messages_checks import check_messages_request
from gateway.surfaces.messages_native import NativeMessagesStream, named_answer
from gateway.surfaces.messages_requests import messages_to_chat
from gateway.surfaces.messages_stream import messages_stream
from gateway.surfaces.request import InferenceRequest
from gateway.upstream.chunk_tap import ChunkTap

_DOC = RequestDoc(
    summary="Create a message (Anthropic Messages API)",
    schema={"type": "object", "required": ["model", "max_tokens", "messages"], "properties": {
        "model": {"type": "string"},
        "max_tokens": {"type": "integer", "minimum": 1},
        "messages": {"type": "array", "minItems": 1, "items": {
            "type": "object", "required": ["role", "content"], "properties": {
                "role": {"enum": ["user", "assistant"]},
                "content": {"anyOf": [{"type": "string"}, {"type": "array", "items": {"type": "object"}}]}}}},
        "system": {"anyOf": [{"type": "string"}, {"type": "array", "items": {"type": "object"}}]},
        "tools": {"type": "array", "items": {"type": "object"}},
        "tool_choice": {"type": "object"},
        "stop_sequences": {"type": "array", "items": {"type": "string"}},
        "temperature": {"type": "number"}, "top_p": {"type": "number"}, "top_k": {"type": "integer", "minimum": 0},
        "stream": {"type": "boolean"},
        "metadata": {"type": "object", "properties": {"user_id": {"type": ["string", "null"]}}},
        "thinking": {"type": "object"}}},
    example={"model": "chat", "max_tokens": 64, "messages": [{"role": "user", "content": "Say hello"}]},
    description="Translated into a chat completions request for the model's workers; fields a translation "
                "cannot carry are refused with a 400 naming them (docs/configuration.md, Anthropic Messages).")


@dataclass(slots=True)
class MessagesRequest(InferenceRequest):
    """A Messages request on its way: the translated body, the model name the client asked for (the
    forwarder rewrites the body's to the worker's, and Anthropic's answers name the client's), and
    whether it enabled `thinking` (the worker's reasoning is then returned as thinking blocks)."""

    client_model: str = ""
    thinking: bool = False


class AnthropicMessages(ChatCompletions):
    name = "messages"
    paths = ("/v1/messages",)
    title = "Messages"
    doc = _DOC
    translates = True
    native_capable = True
    worker_name = "chat/completions"
    native_headers = ("anthropic-version", "anthropic-beta")

    def decode(self, raw: bytes) -> InferenceRequest:
        """Checked and translated; a field the translation cannot carry is refused only if no worker that
        serves Messages natively answers (`lenient_translation`)."""
        body = decode_object(raw)
        request, untranslatable = translated_leniently(self.decode_body, body)
        thinking = body.get("thinking")
        return MessagesRequest(self, request.body, request.stream, native=body, untranslatable=untranslatable,
                               tap=ChunkTap() if request.stream else None,
                               client_model=request.body.get("model") or "",
                               thinking=isinstance(thinking, dict) and thinking.get("type") != "disabled")

    def decode_count(self, raw: bytes) -> InferenceRequest:
        """A `/v1/messages/count_tokens` body (a Messages request without `max_tokens`), checked and
        translated, for choosing its model and estimating its prompt."""
        body = decode_object(raw)
        if not isinstance(body.get("model", ""), str):
            raise InvalidRequest("model: Input should be a string", param="model", code="invalid_type")
        body.pop("stream", None)  # counting streams nothing
        check_messages_request(body, counting=True)
        return InferenceRequest(self, messages_to_chat(body), False)

    def check(self, body: Body) -> None:
        check_messages_request(body)

    def to_worker(self, body: Body) -> Body:
        return messages_to_chat(body)

    def encode_answer(self, answer: bytes, request: InferenceRequest) -> bytes:
        return encode_message(answer, _model_of(request), request.body.get("stop"), thinking=_thinks(request))

    def encode_stream(self, events: AsyncIterator[bytes], request: InferenceRequest) -> AsyncIterator[bytes]:
        return messages_stream(events, _model_of(request), request.body.get("stop"), thinking=_thinks(request),
                               tap=request.tap)

    def native_answer(self, answer: bytes, request: InferenceRequest) -> bytes:
        return named_answer(answer, _model_of(request))

    def native_stream(self, request: InferenceRequest) -> NativeMessagesStream:
        return NativeMessagesStream(_model_of(request), self.prompt_tokens_estimate(request.body))

    def error_body(self, error: GatewayError) -> Body:
        return error_of(error)

    def rate_limit_headers(self, admission: Admission) -> dict[str, str]:
        """Anthropic's `anthropic-ratelimit-*` (and not OpenAI's): what its SDKs and Claude Code read."""
        return anthropic_headers(admission)


def _thinks(request: InferenceRequest) -> bool:
    return isinstance(request, MessagesRequest) and request.thinking


def _model_of(request: InferenceRequest) -> str:
    if isinstance(request, MessagesRequest) and request.client_model:
        return request.client_model
    model = request.body.get("model")
    return model if isinstance(model, str) else ""


ANTHROPIC_MESSAGES = AnthropicMessages()
