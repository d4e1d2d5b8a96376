"""Decoding requests to the simulated Ollama server, with Ollama's `{"error": "text"}` errors.

Ollama reads any body as JSON (no Content-Type check), takes the model from `model` (or the older
`name`), streams unless `stream` is false, and reads `options.num_predict` (token limit; negative
means none) and `options.num_ctx` (context; longer prompts are silently cut to it).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import msgspec
from aiohttp import web

from simulator.config import SimulatorConfig
from simulator.faults import Fault, resolve_fault
from simulator.ollama_models import ModelStore, parse_keep_alive
from simulator.streaming import ErrorReply, record_of
from simulator.text import count_tokens

Endpoint = Literal["chat", "generate"]

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
) -> OllamaGeneration:
    """Validate a chat or generate request the way Ollama does."""
    name = model_name(request, body)
    fault = resolve_fault_or_404(request, name, config, store)
    stream = body.get("stream") is not False
    record_of(request).stream = stream
    options = body.get("options")
    if not isinstance(options, dict):
        options = {}
    num_ctx = _int_option(options, "num_ctx") or config.num_ctx
    return OllamaGeneration(
        endpoint=endpoint,
        model=name,
        prompt_text=prompt_text,
        prompt_tokens=min(count_tokens(prompt_text), num_ctx),
        num_predict=_int_option(options, "num_predict"),
        stream=stream,
        keep_alive_s=parse_keep_alive(body.get("keep_alive"), config.keep_alive_s),
        fault=fault,
    )
