"""llama.cpp's own HTTP server (`llama-server`, C++): the embedded `local` workers that `llm-gateway serve`
starts, and `llamacpp` workers run elsewhere. It speaks OpenAI's protocol under `/v1` (content parts,
`max_completion_tokens`, tools and `response_format` included), so requests go as they are; what differs
is how it refuses, mapped here to our errors:

- `exceed_context_size_error` (400, with `n_prompt_tokens` and `n_ctx`) is OpenAI's
  `context_length_exceeded`, its message giving both numbers;
- `not_supported_error` (501: e.g. embeddings asked of a server started without `--embeddings`) is the
  client's 400 on `model`: that model does not serve the endpoint;
- `unavailable_error` (503, the model still loading) is a 503 the gateway retries on another worker;
- it closes the connection after a streamed answer while announcing keep-alive, so a request sent on
  that pooled connection would fail ("Server disconnected", 3 in 30 here): its streamed requests ask for
  `Connection: close` (a loopback connect costs far less than a token);
- it serves Anthropic Messages (`/v1/messages`) itself: those go to it as the client sent them (a
  `message_start` it leaves out under load is made by the gateway: `surfaces.messages_native`). Its
  `/v1/responses` is not used: its stream events lack `sequence_number` and `output_index` (the openai
  SDK's stream helpers index the response by them) and it refuses input messages without `"type":
  "message"`, so Responses requests reach it translated to chat completions;
- a 500 "image input is not supported" (or audio: a model started without its multimodal projector)
  is the client's 400 on `messages`, not a server error.

It counts a chat request's prompt tokens in two calls: `POST /apply-template` (the model's chat template
over `messages` and `tools`, the generation prompt added) gives the prompt's text, `POST /tokenize` its
tokens (special tokens parsed, as the server tokenizes a templated prompt).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any, ClassVar

import msgspec

from gateway.errors import WorkerRejected, worker_error
from gateway.protocols.base import Capabilities, TokenCountCalls, counting_answer
from gateway.protocols.openai_compatible import OpenAICompatible
from gateway.workers.pool import Placement

_encode = msgspec.json.Encoder().encode
_UNREADABLE_MEDIA = re.compile(r"(image|audio) input is not supported")


class LlamaCppServer(OpenAICompatible):
    """Workers of kind `local` (started by the gateway) and `llamacpp` (started elsewhere)."""

    capabilities: ClassVar[Capabilities] = Capabilities(
        surfaces=frozenset({"chat/completions", "completions", "embeddings", "rerank", "tokenize", "detokenize",
                            "messages"}),
        parameters=None, counts_tokens=True)
    closes_connection_after_stream: ClassVar[bool] = True

    def token_count(self, chat: Mapping[str, Any], placement: Placement) -> TokenCountCalls:
        template: dict[str, Any] = {"messages": chat["messages"]}
        if chat.get("tools"):
            template["tools"] = chat["tools"]
        rendered = yield "/../apply-template", _encode(template)
        prompt = counting_answer(rendered, "prompt", str)
        tokenized = yield "/../tokenize", _encode({"content": prompt})
        return len(counting_answer(tokenized, "tokens", list))

    @staticmethod
    def rejection(status: int, body: bytes) -> WorkerRejected:
        error = worker_error(status, body)
        details = _error_details(body)
        kind = details.get("type")
        if kind == "exceed_context_size_error":
            message = (f"The prompt is {details.get('n_prompt_tokens', '?')} tokens; the worker's context holds "
                       f"{details.get('n_ctx', '?')} per request. Shorten the prompt or ask for fewer tokens.")
            return WorkerRejected(400, message, type_="invalid_request_error", param=None,
                                  code="context_length_exceeded")
        if status == 500 and _UNREADABLE_MEDIA.match(error.message):
            return WorkerRejected(400, f"This model reads text only ({error.message.split(' - ')[0]}).",
                                  type_="invalid_request_error", param="messages", code="unsupported_content")
        if kind == "not_supported_error":
            return WorkerRejected(400, f"This model does not serve this endpoint (its worker: {error.message}).",
                                  type_="invalid_request_error", param="model", code="model_not_supported")
        return error


def _error_details(body: bytes) -> dict[str, Any]:
    """The `error` object of llama-server's JSON error answer (empty for any other body)."""
    try:
        data = msgspec.json.decode(body)
    except (msgspec.DecodeError, UnicodeDecodeError):
        return {}
    error = data.get("error") if isinstance(data, dict) else None
    return error if isinstance(error, dict) else {}
