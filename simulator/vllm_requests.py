"""Decoding requests to the simulated vLLM server, with vLLM's validation errors.

Like vLLM, POST bodies must be `Content-Type: application/json` JSON objects (else 400), unknown
fields are accepted and ignored, a missing `model` means the first served model, and an unknown
one is a 404. A prompt plus `max_tokens` beyond `max_model_len` is vLLM's context-length 400.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import msgspec
from aiohttp import web

from simulator.config import SimulatorConfig
from simulator.faults import Fault, resolve_fault
from simulator.streaming import ErrorReply, record_of
from simulator.text import count_tokens, serialize_messages
from simulator.vllm_shapes import error_body

Endpoint = Literal["chat", "completions"]


def vllm_error(status: int, message: str, param: str | None = None) -> ErrorReply:
    return ErrorReply(status, error_body(message, status, param))


@dataclass(frozen=True)
class GenerationRequest:
    """The parts of a chat or completions request the simulator acts on."""

    endpoint: Endpoint
    model: str
    prompt_text: str
    prompt_tokens: int
    max_tokens: int | None
    stream: bool
    include_usage: bool
    fault: Fault | None


async def read_json_body(request: web.Request) -> dict[str, Any]:
    """The request's JSON object (also stored on its record); 400 like vLLM when it is not one."""
    raw = await request.read()
    decode_error: str | None = None
    body: Any = None
    try:
        body = msgspec.json.decode(raw) if raw else None
    except msgspec.DecodeError as error:
        decode_error = f"JSON decode error: {error}"
    record_of(request).body = body if isinstance(body, dict) else None
    if request.content_type != "application/json":
        raise vllm_error(400, "Unsupported Media Type: Only 'application/json' is allowed")
    if not isinstance(body, dict):
        raise vllm_error(400, decode_error or "Input should be a valid dictionary")
    return body


LORA_ADAPTERS = web.AppKey("lora_adapters", dict)
"""LoRA adapters loaded at runtime (`/v1/load_lora_adapter`): name → path."""


def resolve_model(request: web.Request, body: dict[str, Any], config: SimulatorConfig) -> tuple[str, Fault | None]:
    """The requested model and its fault; 404 when it is neither served nor a fault name."""
    model = body.get("model")
    if model is None:
        model = config.models[0]
    if not isinstance(model, str):
        raise vllm_error(400, "model: Input should be a valid string", param="model")
    fault = resolve_fault(config.fault, model)
    record = record_of(request)
    record.model = model
    record.fault = fault.name if fault is not None else None
    adapters = request.app.get(LORA_ADAPTERS, {})
    if model not in config.models and model not in adapters and not (fault is not None and fault.name == model):
        raise vllm_error(404, f"The model `{model}` does not exist.", param="model")
    return model, fault


def chat_prompt(body: dict[str, Any]) -> tuple[str, int]:
    """The serialized conversation of a chat request and its tokens."""
    messages = body.get("messages")
    if not isinstance(messages, list):
        raise vllm_error(400, "messages: Field required", param="messages")
    text = serialize_messages(messages)
    return text, count_tokens(text)


def completion_prompt(body: dict[str, Any]) -> tuple[str, int]:
    """The prompt of a completions request (a string, strings, or token ids) and its tokens."""
    prompt = body.get("prompt")
    if isinstance(prompt, str):
        return prompt, count_tokens(prompt)
    if isinstance(prompt, list) and prompt and all(isinstance(item, str) for item in prompt):
        text = "".join(prompt)
        return text, count_tokens(text)
    if isinstance(prompt, list) and prompt and all(isinstance(item, int) for item in prompt):
        return " ".join(map(str, prompt)), len(prompt)
    raise vllm_error(400, "prompt: Field required", param="prompt")


def embedding_inputs(body: dict[str, Any]) -> list[tuple[str, int]]:
    """(text, tokens) per input of an embeddings request: a string, strings, token ids, or lists of them."""
    value = body.get("input")
    if isinstance(value, str):
        return [(value, count_tokens(value))]
    if isinstance(value, list) and value:
        if all(isinstance(item, str) for item in value):
            return [(item, count_tokens(item)) for item in value]
        if all(isinstance(item, int) for item in value):
            return [(" ".join(map(str, value)), len(value))]
        if all(isinstance(item, list) and all(isinstance(i, int) for i in item) for item in value):
            return [(" ".join(map(str, item)), len(item)) for item in value]
    raise vllm_error(400, "input: Field required", param="input")


def generation_request(
    request: web.Request, body: dict[str, Any], config: SimulatorConfig, endpoint: Endpoint
) -> GenerationRequest:
    """Validate a chat or completions request the way vLLM does."""
    prompt_text, prompt_tokens = chat_prompt(body) if endpoint == "chat" else completion_prompt(body)
    model, fault = resolve_model(request, body, config)
    max_tokens = body.get("max_completion_tokens", body.get("max_tokens"))
    if max_tokens is not None and (type(max_tokens) is not int or max_tokens < 1):
        raise vllm_error(400, f"max_tokens must be at least 1, got {max_tokens}.", param="max_tokens")
    stream = body.get("stream") is True
    options = body.get("stream_options")
    include_usage = stream and isinstance(options, dict) and options.get("include_usage") is True
    record_of(request).stream = stream
    requested = prompt_tokens + (max_tokens or 0)
    if requested > config.max_model_len:
        raise vllm_error(
            400,
            f"This model's maximum context length is {config.max_model_len} tokens. However, you requested "
            f"{requested} tokens ({prompt_tokens} in the messages, {max_tokens or 0} in the completion). "
            "Please reduce the length of the messages or completion.",
        )
    return GenerationRequest(endpoint, model, prompt_text, prompt_tokens, max_tokens, stream, include_usage, fault)
