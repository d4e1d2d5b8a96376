"""Ollama's native API, requests: an OpenAI request body as the body of `/api/chat`, `/api/generate` or
`/api/embed` (`to_ollama`), and the OpenAI parameters that mapping reads (`PARAMETERS`). Pure functions.

Why the native API and not Ollama's `/v1` layer: only the native API takes `options.num_ctx` per
request (the `/v1` layer silently cuts long prompts at the default context), and its failed streams
end cleanly with `{"error": "..."}` instead of just stopping.

Messages (content parts → text joined by newlines, `image_url` data URLs → `images`), tools and tool
calls (arguments JSON string ↔ object), tool results (`tool_name` looked up from the call id),
`response_format` → `format`, sampling fields → `options`, `num_ctx` from the catalog (it wins over a
client's: Ollama reloads the model whenever num_ctx changes), and `stream` always explicit (Ollama
streams by default). Ollama extras a client may send through `extra_body`: `options`, `keep_alive`,
`think`, `format`, top-level `top_k`/`min_p`/`typical_p`/`repeat_penalty`. Any other parameter is left
out (Ollama would ignore it); what Ollama cannot do at all is refused with `InvalidRequest`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

import msgspec

from gateway.errors import InvalidRequest
from gateway.surfaces.request import Endpoint

PATHS: Mapping[Endpoint, str] = MappingProxyType(
    {"chat/completions": "/api/chat", "completions": "/api/generate", "embeddings": "/api/embed"})
"""The Ollama path that serves each OpenAI endpoint."""

COMPLETIONS_DEFAULT_MAX_TOKENS = 16
"""OpenAI's (and vLLM's) default `max_tokens` for `/v1/completions`; Ollama's own default is unlimited."""

_encode = msgspec.json.Encoder().encode
_decode_any = msgspec.json.Decoder().decode
_IMAGE_DATA_URL = re.compile(r"data:(?:image/[A-Za-z0-9.+-]+)?;base64,(.*)", re.DOTALL)
# Top-level sampling fields (vLLM-style extras) that are Ollama options, by Ollama's name.
_EXTRA_OPTIONS = {"top_k": "top_k", "min_p": "min_p", "typical_p": "typical_p", "repeat_penalty": "repeat_penalty",
                  "repetition_penalty": "repeat_penalty"}
_PLAIN_OPTIONS = ("temperature", "top_p", "seed", "frequency_penalty", "presence_penalty")

_GENERATING = frozenset({
    "model", "stream", "stream_options", "n", "response_format", "format", "options", *_EXTRA_OPTIONS,
    *_PLAIN_OPTIONS, "max_tokens", "max_completion_tokens", "stop", "keep_alive", "think", "reasoning_effort"})
PARAMETERS: Mapping[Endpoint, frozenset[str]] = MappingProxyType({
    "chat/completions": _GENERATING | {"messages", "tools", "tool_choice"},
    "completions": _GENERATING | {"prompt", "suffix"},
    "embeddings": frozenset({"model", "input", "dimensions", "keep_alive", "encoding_format"}),
})
"""The OpenAI request parameters Ollama's workers understand, per endpoint: what `to_ollama` maps (`model`
becomes the worker's id; `n` may only be 1), plus `stream_options` (the gateway's usage chunk) and
`encoding_format` (the answer's packing of vectors). Any other parameter is not sent."""


def to_ollama(endpoint: Endpoint, body: dict[str, Any], *, upstream_model: str, num_ctx: int | None
              ) -> tuple[str, bytes]:
    """The Ollama path and JSON body for an OpenAI request body (already checked by
    the surface's `decode`). Raises `InvalidRequest` for what Ollama cannot do (n > 1, several
    prompts, token-id inputs, image URLs that are not data URLs, tool arguments that are not JSON)."""
    if endpoint == "embeddings":
        return PATHS[endpoint], _encode(_embed_body(body, upstream_model, num_ctx))
    out: dict[str, Any] = {"model": upstream_model}
    n = body.get("n")
    if n is not None and n != 1:
        raise InvalidRequest("This model's workers generate one choice per request: `n` must be 1.", param="n",
                             code="unsupported_value")
    if endpoint == "chat/completions":
        out["messages"] = _messages(body.get("messages") or [])
        tools = _tools(body.get("tools"), body.get("tool_choice"))
        if tools:
            out["tools"] = tools
    else:
        out["prompt"] = _single_prompt(body.get("prompt"))
        suffix = body.get("suffix")
        if isinstance(suffix, str) and suffix:
            out["suffix"] = suffix
    fmt = _format(body)
    if fmt is not None:
        out["format"] = fmt
    options = _options(endpoint, body, num_ctx)
    if options:
        out["options"] = options
    for passthrough in ("keep_alive", "think"):
        if passthrough in body and body[passthrough] is not None:
            out[passthrough] = body[passthrough]
    if "think" not in out:
        effort = body.get("reasoning_effort")
        if isinstance(effort, str) and effort:
            out["think"] = False if effort == "none" else effort
    out["stream"] = body.get("stream") is True
    return PATHS[endpoint], _encode(out)


def _options(endpoint: Endpoint, body: dict[str, Any], num_ctx: int | None) -> dict[str, Any]:
    given = body.get("options")
    options: dict[str, Any] = dict(given) if isinstance(given, dict) else {}
    for name, ollama_name in _EXTRA_OPTIONS.items():
        if body.get(name) is not None:
            options[ollama_name] = body[name]
    for name in _PLAIN_OPTIONS:
        if body.get(name) is not None:
            options[name] = body[name]
    limit = body.get("max_completion_tokens")
    if limit is None:
        limit = body.get("max_tokens")
    if limit is None and endpoint == "completions":
        limit = COMPLETIONS_DEFAULT_MAX_TOKENS
    if limit is not None:
        options["num_predict"] = limit
    stop = body.get("stop")
    if isinstance(stop, str):
        options["stop"] = [stop]
    elif isinstance(stop, list):
        if not all(isinstance(s, str) for s in stop):
            raise InvalidRequest("`stop` must be a string or a list of strings.", param="stop", code="invalid_type")
        if stop:
            options["stop"] = stop
    if num_ctx is not None:
        options["num_ctx"] = num_ctx  # one value per model: another one would make Ollama reload it
    return options


def _format(body: dict[str, Any]) -> Any:
    response_format = body.get("response_format")
    if not isinstance(response_format, dict):
        return body.get("format")
    kind = response_format.get("type")
    if kind == "json_object":
        return "json"
    if kind == "json_schema":
        spec = response_format.get("json_schema")
        schema = spec.get("schema") if isinstance(spec, dict) else None
        if not isinstance(schema, dict):
            raise InvalidRequest("`response_format.json_schema.schema` must be a JSON schema object.",
                                 param="response_format", code="invalid_value")
        return schema
    return body.get("format")


def _single_prompt(prompt: object) -> str:
    if isinstance(prompt, list) and len(prompt) == 1:
        prompt = prompt[0]
    if not isinstance(prompt, str):
        raise InvalidRequest("This model's workers take one text prompt per request (not several prompts "
                             "nor token ids).", param="prompt", code="unsupported_value")
    return prompt


def _embed_body(body: dict[str, Any], upstream_model: str, num_ctx: int | None) -> dict[str, Any]:
    value = body.get("input")
    if not (isinstance(value, str) or (isinstance(value, list) and all(isinstance(v, str) for v in value))):
        raise InvalidRequest("This model's workers embed text: `input` must be a string or a list of strings "
                             "(not token ids).", param="input", code="unsupported_value")
    # truncate: false makes a too-long input an error, as OpenAI does, instead of a silent cut.
    out: dict[str, Any] = {"model": upstream_model, "input": value, "truncate": False}
    dimensions = body.get("dimensions")
    if dimensions is not None:
        out["dimensions"] = dimensions
    if body.get("keep_alive") is not None:
        out["keep_alive"] = body["keep_alive"]
    if num_ctx is not None:
        out["options"] = {"num_ctx": num_ctx}
    return out


def _messages(messages: list[Any]) -> list[dict[str, Any]]:
    names_by_call_id: dict[str, str] = {}
    out: list[dict[str, Any]] = []
    for i, message in enumerate(messages):
        role = message.get("role")
        converted: dict[str, Any] = {"role": "system" if role == "developer" else role}
        text, images = _content(message.get("content"), i)
        converted["content"] = text
        if images:
            converted["images"] = images
        if role == "assistant":
            calls = message.get("tool_calls")
            if calls:
                converted["tool_calls"] = _history_tool_calls(calls, i, names_by_call_id)
            thinking = message.get("reasoning_content")
            if isinstance(thinking, str) and thinking:
                converted["thinking"] = thinking
        elif role == "tool":
            name = message.get("name")
            if not isinstance(name, str) or not name:
                name = names_by_call_id.get(str(message.get("tool_call_id")), "")
            if name:
                converted["tool_name"] = name
        out.append(converted)
    return out


def _content(content: object, index: int) -> tuple[str, list[str]]:
    if content is None:
        return "", []
    if isinstance(content, str):
        return content, []
    if not isinstance(content, list):
        raise InvalidRequest(f"'messages[{index}].content' must be a string or an array of content parts.",
                             param=f"messages[{index}].content", code="invalid_type")
    texts: list[str] = []
    images: list[str] = []
    for j, part in enumerate(content):
        where = f"messages[{index}].content[{j}]"
        kind = part.get("type") if isinstance(part, dict) else None
        if kind == "text" and isinstance(part.get("text"), str):
            texts.append(part["text"])
        elif kind == "image_url":
            image = part.get("image_url")
            url = image.get("url") if isinstance(image, dict) else image
            match = _IMAGE_DATA_URL.fullmatch(url) if isinstance(url, str) else None
            if match is None:
                raise InvalidRequest("This model's workers take images as base64 `data:` URLs only.", param=where,
                                     code="unsupported_value")
            images.append(match.group(1))
        else:
            raise InvalidRequest(f"Content parts of type {kind!r} are not supported by this model's workers.",
                                 param=where, code="unsupported_value")
    return "\n".join(texts), images


def _history_tool_calls(calls: object, index: int, names_by_call_id: dict[str, str]) -> list[dict[str, Any]]:
    if not isinstance(calls, list):
        raise InvalidRequest(f"'messages[{index}].tool_calls' must be an array.",
                             param=f"messages[{index}].tool_calls", code="invalid_type")
    out: list[dict[str, Any]] = []
    for j, call in enumerate(calls):
        where = f"messages[{index}].tool_calls[{j}]"
        function = call.get("function") if isinstance(call, dict) else None
        if not isinstance(function, dict) or not isinstance(function.get("name"), str):
            raise InvalidRequest(f"'{where}.function.name' is required.", param=f"{where}.function.name",
                                 code="missing_required_parameter")
        arguments = function.get("arguments")
        if isinstance(arguments, str):
            try:
                arguments = _decode_any(arguments) if arguments.strip() else {}
            except msgspec.DecodeError:
                raise InvalidRequest(f"'{where}.function.arguments' is not valid JSON.",
                                     param=f"{where}.function.arguments", code="invalid_value") from None
        elif arguments is None:
            arguments = {}
        call_id = call.get("id") if isinstance(call, dict) else None
        if isinstance(call_id, str):
            names_by_call_id[call_id] = function["name"]
        out.append({"function": {"name": function["name"], "arguments": arguments}})
    return out


def _tools(tools: object, tool_choice: object) -> list[Any]:
    """OpenAI function tools are Ollama's tools as they are. Ollama has no `tool_choice`: `none`
    sends no tools, a named function sends only that one; `required` cannot be enforced."""
    if not isinstance(tools, list) or not tools or tool_choice == "none":
        return []
    if isinstance(tool_choice, dict):
        function = tool_choice.get("function")
        name = function.get("name") if isinstance(function, dict) else None
        if isinstance(name, str):
            chosen = [t for t in tools if isinstance(t, dict) and isinstance(t.get("function"), dict)
                      and t["function"].get("name") == name]
            if not chosen:
                raise InvalidRequest(f"`tool_choice` names the function {name!r}, which is not in `tools`.",
                                     param="tool_choice", code="invalid_value")
            return chosen
    return tools
