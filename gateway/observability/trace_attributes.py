"""What the spans of a request say about it, in OpenTelemetry's semantic conventions (HTTP, GenAI) and
the gateway's own `gateway.*` names: plain functions from what the gateway holds (the decoded request, a
worker's answer or last stream chunk) to attribute mappings, with no OpenTelemetry import, so they are
tested on their own and cost nothing while tracing is off (nothing calls them).

Prompt and completion text go in only when the operator asked (`GATEWAY_TRACE_CONTENT=true`): spans
often leave the trust boundary the request arrived in. Credentials never do.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

import msgspec

Attributes = dict[str, str | bool | int | float | list[str]]
"""Span attributes: OpenTelemetry's primitive values (and lists of strings)."""

OPERATIONS = {"chat/completions": "chat", "messages": "chat", "responses": "chat",
              "completions": "text_completion", "embeddings": "embeddings"}
"""`gen_ai.operation.name` per surface (a surface not listed is named by its endpoint: `rerank`, ...)."""

PROVIDERS = {"local": "llama.cpp", "llamacpp": "llama.cpp"}
"""`gen_ai.provider.name` per worker kind, where it is not the kind itself (`vllm`, `ollama`, `openai`)."""

_REQUEST_NUMBERS = {"temperature": "gen_ai.request.temperature", "top_p": "gen_ai.request.top_p"}
_MAX_TOKENS = ("max_tokens", "max_completion_tokens", "max_output_tokens")
_PROMPT_FIELDS = ("messages", "prompt", "input")


def operation_name(endpoint: str) -> str:
    return OPERATIONS.get(endpoint, endpoint)


def request_attributes(endpoint: str, body: Mapping[str, Any], *, content: bool) -> Attributes:
    """The GenAI request attributes of a decoded request: operation, model asked for, sampling limits,
    and (with `content`) the prompt as the client sent it (JSON)."""
    attributes: Attributes = {"gen_ai.operation.name": operation_name(endpoint)}
    model = body.get("model")
    if isinstance(model, str):
        attributes["gen_ai.request.model"] = model
    for name in _MAX_TOKENS:
        value = body.get(name)
        if isinstance(value, int) and not isinstance(value, bool):
            attributes["gen_ai.request.max_tokens"] = value
            break
    for field, attribute in _REQUEST_NUMBERS.items():
        value = body.get(field)
        if isinstance(value, int | float) and not isinstance(value, bool):
            attributes[attribute] = value
    if body.get("stream") is True:
        attributes["gateway.stream"] = True
    if content:
        for field in _PROMPT_FIELDS:
            if field in body:
                attributes["gen_ai.input.messages"] = msgspec.json.encode(body[field]).decode()
                break
    return attributes


def worker_attributes(*, worker: str, url: str, kind: str, upstream_model: str) -> Attributes:
    """Where one attempt went: the worker, its address, its provider, the model id it was sent."""
    split = urlsplit(url)
    attributes: Attributes = {
        "gateway.worker": worker, "gen_ai.request.model": upstream_model,
        "gen_ai.provider.name": PROVIDERS.get(kind, kind), "gen_ai.system": PROVIDERS.get(kind, kind),
        "server.address": split.hostname or "",
    }
    port = split.port or (443 if split.scheme == "https" else 80)
    attributes["server.port"] = port
    return attributes


class _Choice(msgspec.Struct):
    finish_reason: str | None = None
    message: Any = None
    text: str | None = None  # a text completion's


class _Usage(msgspec.Struct):
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    input_tokens: int | None = None  # Messages' and Responses' names
    output_tokens: int | None = None


class _Answer(msgspec.Struct):
    id: str | None = None
    model: str | None = None
    choices: list[_Choice] = []
    stop_reason: str | None = None  # Anthropic's Messages (a native worker's answer)
    status: str | None = None  # OpenAI's Responses
    usage: _Usage | None = None


_answer_decoder = msgspec.json.Decoder(_Answer)


def answer_attributes(body: bytes, *, content: bool) -> Attributes:
    """The GenAI response attributes of a worker's whole answer, usage included (one decode, made only
    while tracing is on); an answer that is not such an object gives none."""
    try:
        answer = _answer_decoder.decode(body)
    except (msgspec.DecodeError, msgspec.ValidationError, UnicodeDecodeError):
        return {}
    attributes = _identity(answer.id, answer.model)
    reasons = [c.finish_reason for c in answer.choices if c.finish_reason]
    reasons += [r for r in (answer.stop_reason, answer.status) if r]
    if reasons:
        attributes["gen_ai.response.finish_reasons"] = reasons
    usage = answer.usage
    if usage is not None:
        attributes.update(usage_attributes(_first(usage.prompt_tokens, usage.input_tokens),
                                           _first(usage.completion_tokens, usage.output_tokens)))
    if content and answer.choices:
        attributes["gen_ai.output.messages"] = msgspec.json.encode(
            [c.message if c.message is not None else c.text for c in answer.choices]).decode()
    return attributes


def chunk_attributes(last: Mapping[str, Any]) -> Attributes:
    """The GenAI response attributes a stream's last content chunk carries (id, model, the finish
    reasons it gave)."""
    identity = last.get("id"), last.get("model")
    attributes = _identity(*(v if isinstance(v, str) else None for v in identity))
    choices = last.get("choices")
    if isinstance(choices, list):
        reasons = [r for c in choices if isinstance(c, dict) and isinstance(r := c.get("finish_reason"), str)]
        if reasons:
            attributes["gen_ai.response.finish_reasons"] = reasons
    return attributes


def usage_attributes(input_tokens: int | None, output_tokens: int | None) -> Attributes:
    attributes: Attributes = {}
    if input_tokens is not None:
        attributes["gen_ai.usage.input_tokens"] = input_tokens
    if output_tokens is not None:
        attributes["gen_ai.usage.output_tokens"] = output_tokens
    return attributes


def error_type(error: BaseException) -> str:
    """`error.type`: the gateway's error code when it has one (`upstream_timeout`, `rate_limit_requests`,
    ...), else the exception's class name."""
    code = getattr(error, "error_code", None)
    return code if isinstance(code, str) and code else type(error).__name__


def _first(value: int | None, other: int | None) -> int | None:
    return value if value is not None else other


def _identity(response_id: str | None, model: str | None) -> Attributes:
    attributes: Attributes = {}
    if response_id:
        attributes["gen_ai.response.id"] = response_id
    if model:
        attributes["gen_ai.response.model"] = model
    return attributes
