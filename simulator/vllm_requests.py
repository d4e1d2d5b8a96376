"""Decoding requests to the simulated vLLM server, with vLLM's validation errors.

Like vLLM, POST bodies must be `Content-Type: application/json` JSON objects (else 400), unknown
fields are accepted and ignored, a missing `model` means the first served model, and an unknown
one is a 404. A prompt plus `max_tokens` beyond `max_model_len` is vLLM's context-length 400.
Responses (`input`, `max_output_tokens`) and Messages (`messages`, `max_tokens`, both required)
requests become the same generation as chat, over their conversation (`simulator.conversations`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import msgspec
from aiohttp import web

from simulator.config import SimulatorConfig
from simulator.conversations import Conversation, is_tool_answer, messages_conversation, responses_conversation
from simulator.faults import Fault, FaultKind, resolve_fault
from simulator.streaming import ErrorReply, record_of
from simulator.text import count_tokens, serialize_messages
from simulator.tool_calls import ToolCallPlan, plan_tool_call
from simulator.vllm_shapes import error_body

Endpoint = Literal["chat", "completions", "responses", "messages"]


def vllm_error(status: int, message: str, param: str | None = None) -> ErrorReply:
    return ErrorReply(status, error_body(message, status, param))


@dataclass(frozen=True)
class GenerationRequest:
    """The parts of a generation request (chat, completions, Responses, Messages) the simulator acts on."""

    endpoint: Endpoint
    model: str
    prompt_text: str
    prompt_tokens: int
    max_tokens: int | None
    stream: bool
    include_usage: bool
    fault: Fault | None
    tool_call: ToolCallPlan | None = None
    """The tool call the reply makes instead of text (see `simulator.tool_calls`)."""
    body: dict[str, Any] | None = None
    """The request (a Responses answer echoes its settings)."""


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


def conversation(body: dict[str, Any], endpoint: Endpoint) -> Conversation:
    """The chat messages of a chat, Responses or Messages request (400 when its field is missing)."""
    if endpoint == "responses":
        if not isinstance(body.get("input"), str | list):
            raise vllm_error(400, "input: Field required", param="input")
        return responses_conversation(body)
    messages = body.get("messages")
    if not isinstance(messages, list):
        raise vllm_error(400, "messages: Field required", param="messages")
    return messages_conversation(body) if endpoint == "messages" else messages


def _prompt(body: dict[str, Any], endpoint: Endpoint) -> tuple[str, int, Conversation | None]:
    """The prompt text of a request, its tokens, and its conversation (None for completions)."""
    if endpoint == "completions":
        text, tokens = completion_prompt(body)
        return text, tokens, None
    messages = conversation(body, endpoint)
    text = serialize_messages(messages)
    return text, count_tokens(text), messages


def _max_tokens(body: dict[str, Any], endpoint: Endpoint) -> int | None:
    """The completion limit: chat's `max_completion_tokens` or `max_tokens`, Responses'
    `max_output_tokens`, Messages' `max_tokens` (required there)."""
    name = "max_output_tokens" if endpoint == "responses" else "max_tokens"
    value = body.get("max_completion_tokens", body.get(name)) if endpoint == "chat" else body.get(name)
    if value is None and endpoint == "messages":
        raise vllm_error(400, "max_tokens: Field required", param="max_tokens")
    if value is not None and (type(value) is not int or value < 1):
        raise vllm_error(400, f"{name} must be at least 1, got {value}.", param=name)
    return value


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
    """Validate a chat, completions, Responses or Messages request the way vLLM does."""
    prompt_text, prompt_tokens, messages = _prompt(body, endpoint)
    model, fault = resolve_model(request, body, config)
    max_tokens = _max_tokens(body, endpoint)
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
    tool_call = None
    if messages is not None:
        by_choice = fault is not None and fault.kind is FaultKind.TOOL_CALL
        tool_call = plan_tool_call(body.get("tools"), body.get("tool_choice"), by_choice, is_tool_answer(messages))
    return GenerationRequest(
        endpoint, model, prompt_text, prompt_tokens, max_tokens, stream, include_usage, fault, tool_call, body
    )


def check_messages_fields(body: dict[str, Any], counting: bool) -> None:
    """The fields vLLM's Messages schema requires: `messages`, and `max_tokens` unless counting tokens.
    (vLLM rejects these before its Messages handler runs, so their errors keep the OpenAI shape.)"""
    if not isinstance(body.get("messages"), list):
        raise vllm_error(400, "messages: Field required", param="messages")
    if not counting:
        _max_tokens(body, "messages")


def count_tokens_request(
    request: web.Request, body: dict[str, Any], config: SimulatorConfig
) -> tuple[Fault | None, int]:
    """A Messages `count_tokens` request: its fault and the tokens its conversation would take."""
    messages = conversation(body, "messages")
    _, fault = resolve_model(request, body, config)
    tokens = count_tokens(serialize_messages(messages))
    record_of(request).prompt_tokens = tokens
    return fault, tokens
