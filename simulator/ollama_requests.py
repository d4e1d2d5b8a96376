"""Decoding requests to the simulated Ollama server, with Ollama's `{"error": "text"}` errors.

Ollama reads any body as JSON (no Content-Type check), takes the model from `model` (or the older
`name`), streams unless `stream` is false, and reads `options.num_predict` (token limit; negative
means none) and `options.num_ctx` (context; longer prompts are silently cut to it). Its Messages and
Responses layers stream only when `stream` is true and take the limit from `max_tokens` and
`max_output_tokens`.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any, Literal

import msgspec
from aiohttp import web

from simulator.config import SimulatorConfig
from simulator.conversations import Conversation, is_tool_answer
from simulator.faults import Fault, FaultKind, resolve_fault
from simulator.ollama_models import ModelStore, parse_keep_alive
from simulator.streaming import ErrorReply, record_of
from simulator.text import count_tokens
from simulator.tool_calls import ToolCallPlan, plan_tool_call

Endpoint = Literal["chat", "generate", "messages", "responses"]

BUSY_MESSAGE = "server busy, please try again.  maximum pending requests exceeded"
"""Ollama's 503 text when more than OLLAMA_MAX_QUEUE requests wait."""


def ollama_error(status: int, message: str) -> ErrorReply:
    return ErrorReply(status, {"error": message})


@dataclass(frozen=True)
class OllamaGeneration:
    """The parts of a chat or generate request the simulator acts on."""

    endpoint: Endpoint
    model: str
    prompt_text: str
    prompt_tokens: int
    """Tokens of the prompt, cut to num_ctx."""
    num_predict: int | None
    stream: bool
    keep_alive_s: float
    fault: Fault | None
    tool_call: ToolCallPlan | None = None
    """The tool call the reply makes instead of text (see `simulator.tool_calls`)."""
    body: dict[str, Any] | None = None
    """The request (a Responses answer echoes its settings)."""

    @property
    def is_fault_model(self) -> bool:
        """Whether the model's name is a fault name (such a model needs no loading)."""
        return is_fault_model(self.model, self.fault)


def is_fault_model(name: str, fault: Fault | None) -> bool:
    return fault is not None and fault.name == name.removesuffix(":latest")


async def read_json_body(request: web.Request) -> dict[str, Any]:
    """The request's JSON object (also stored on its record); an empty body is `{}`."""
    raw = await request.read()
    try:
        body = msgspec.json.decode(raw) if raw else {}
    except msgspec.DecodeError as error:
        raise ollama_error(400, f"invalid character in request body: {error}") from None
    if not isinstance(body, dict):
        raise ollama_error(400, "json: cannot unmarshal request body into a request object")
    record_of(request).body = body
    return body


def model_name(request: web.Request, body: dict[str, Any]) -> str:
    """The requested model's name as given; 400 "model is required" without one."""
    name = body.get("model") or body.get("name")
    if not isinstance(name, str) or not name:
        raise ollama_error(400, "model is required")
    record_of(request).model = name
    return name


def resolve_fault_or_404(request: web.Request, name: str, config: SimulatorConfig, store: ModelStore) -> Fault | None:
    """The request's fault; 404 when the model is neither installed nor a fault name."""
    fault = resolve_fault(config.fault, name)
    record_of(request).fault = fault.name if fault is not None else None
    if store.find(name) is None and not is_fault_model(name, fault):
        raise ollama_error(404, f'model "{name}" not found, try pulling it first')
    return fault


def _int_option(options: dict[str, Any], name: str) -> int | None:
    value = options.get(name)
    return value if type(value) is int else None


def generation_request(
    request: web.Request,
    body: dict[str, Any],
    endpoint: Endpoint,
    prompt_text: str,
    config: SimulatorConfig,
    store: ModelStore,
    conversation: Conversation | None = None,
) -> OllamaGeneration:
    """Validate a generation request the way Ollama does (`conversation`: a chat's messages, or what
    a Messages or Responses request became)."""
    name = model_name(request, body)
    fault = resolve_fault_or_404(request, name, config, store)
    native = endpoint in ("chat", "generate")
    stream = body.get("stream") is not False if native else body.get("stream") is True
    record_of(request).stream = stream
    options = body.get("options")
    if not isinstance(options, dict):
        options = {}
    num_ctx = _int_option(options, "num_ctx") or config.num_ctx
    limit = _int_option(options, "num_predict") if native else _int_option(body, _LIMIT_FIELDS[endpoint])
    tool_call = None
    if conversation is not None:
        by_choice = fault is not None and fault.kind is FaultKind.TOOL_CALL
        tool_call = plan_tool_call(body.get("tools"), body.get("tool_choice"), by_choice, is_tool_answer(conversation))
    return OllamaGeneration(
        endpoint=endpoint,
        model=name,
        prompt_text=prompt_text,
        prompt_tokens=min(count_tokens(prompt_text), num_ctx),
        num_predict=limit,
        stream=stream,
        keep_alive_s=parse_keep_alive(body.get("keep_alive"), config.keep_alive_s),
        fault=fault,
        tool_call=tool_call,
        body=body,
    )


_LIMIT_FIELDS = {"messages": "max_tokens", "responses": "max_output_tokens"}


_ANTHROPIC_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    429: "rate_limit_error",
    503: "overloaded_error",
    529: "overloaded_error",
}
_OPENAI_TYPES = {400: "invalid_request_error", 404: "not_found_error"}


def reshaped_error(error: ErrorReply, endpoint: Endpoint) -> ErrorReply:
    """An `{"error": "text"}` reply as Ollama's compatibility layers write it: Anthropic's
    `{"type": "error", "error": {"type", "message"}, "request_id"}` on /v1/messages, OpenAI's
    `{"error": {"message", "type", "param", "code"}}` on /v1/responses."""
    message = error.body.get("error") if isinstance(error.body, dict) else None
    if not isinstance(message, str) or endpoint in ("chat", "generate"):
        return error
    status = error.status
    if endpoint == "messages":
        detail: dict[str, Any] = {"type": _ANTHROPIC_TYPES.get(status, "api_error"), "message": message}
        body: dict[str, Any] = {"type": "error", "error": detail, "request_id": f"req_{uuid.uuid4().hex[:24]}"}
    else:
        detail = {"message": message, "type": _OPENAI_TYPES.get(status, "api_error"), "param": None, "code": None}
        body = {"error": detail}
    return ErrorReply(status, body, error.headers)


def check_surface_fields(body: dict[str, Any], endpoint: Endpoint) -> None:
    """What Ollama's Messages and Responses layers require before they call the chat handler."""
    if endpoint == "messages":
        if not body.get("model"):
            raise ollama_error(400, "model is required")
        max_tokens = body.get("max_tokens")
        if type(max_tokens) is not int or max_tokens <= 0:
            raise ollama_error(400, "max_tokens is required and must be positive")
        if not isinstance(body.get("messages"), list) or not body["messages"]:
            raise ollama_error(400, "messages is required")
    elif endpoint == "responses" and not isinstance(body.get("input"), str | list):
        raise ollama_error(400, "input must be a string or array")
