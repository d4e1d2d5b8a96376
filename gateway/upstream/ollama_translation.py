"""Translation between the OpenAI API the gateway speaks and Ollama's native API (`/api/chat`,
`/api/generate`, `/api/embed`). Pure functions and a small per-stream state machine: no I/O.

Why the native API and not Ollama's `/v1` layer: only the native API takes `options.num_ctx` per
request (the `/v1` layer silently cuts long prompts at the default context), and its failed streams
end cleanly with `{"error": "..."}` instead of just stopping.

Requests (`to_ollama`): messages (content parts → text joined by newlines, `image_url` data URLs →
`images`), tools and tool calls (arguments JSON string ↔ object), tool results (`tool_name` looked up
from the call id), `response_format` → `format`, sampling fields → `options`, `num_ctx` from the
catalog (it wins over a client's: Ollama reloads the model whenever num_ctx changes), and `stream`
always explicit (Ollama streams by default). Ollama extras a client may send through `extra_body`:
`options`, `keep_alive`, `think`, `format`, top-level `top_k`/`min_p`/`typical_p`/`repeat_penalty`.

Answers (`from_ollama`, `StreamTranslator`): `chat.completion(.chunk)`, `text_completion`, and the
`list` of embeddings, with `finish_reason` from `done_reason` (`tool_calls` when the model called a
tool), `usage` from `prompt_eval_count`/`eval_count`, tool call ids generated when Ollama gives none,
and Ollama's `thinking` as `reasoning_content` (vLLM's name for it).
"""

from __future__ import annotations

import base64
import hashlib
import re
import secrets
import struct
import time
from typing import Any, Literal

import msgspec

from gateway.errors import InvalidRequest, UpstreamError, worker_error

Endpoint = Literal["chat/completions", "completions", "embeddings"]

PATHS: dict[str, str] = {"chat/completions": "/api/chat", "completions": "/api/generate", "embeddings": "/api/embed"}
"""The Ollama path that serves each OpenAI endpoint."""

COMPLETIONS_DEFAULT_MAX_TOKENS = 16
"""OpenAI's (and vLLM's) default `max_tokens` for `/v1/completions`; Ollama's own default is unlimited."""

_encode = msgspec.json.Encoder().encode
_decode_any = msgspec.json.Decoder().decode
_ID_PREFIX = {"chat/completions": "chatcmpl-", "completions": "cmpl-", "embeddings": "embd-"}
_GATEWAY_REQUEST_ID = re.compile(r"req_([0-9a-f]{8,64})")
_IMAGE_DATA_URL = re.compile(r"data:(?:image/[A-Za-z0-9.+-]+)?;base64,(.*)", re.DOTALL)
_FINISH = {"stop": "stop", "length": "length"}
# Top-level sampling fields (vLLM-style extras) that are Ollama options, by Ollama's name.
_EXTRA_OPTIONS = {"top_k": "top_k", "min_p": "min_p", "typical_p": "typical_p", "repeat_penalty": "repeat_penalty",
                  "repetition_penalty": "repeat_penalty"}
_PLAIN_OPTIONS = ("temperature", "top_p", "seed", "frequency_penalty", "presence_penalty")


# --- requests -----------------------------------------------------------------------------------


def to_ollama(endpoint: Endpoint, body: dict[str, Any], *, upstream_model: str, num_ctx: int | None
              ) -> tuple[str, bytes]:
    """The Ollama path and JSON body for an OpenAI request body (already checked by
    its surface, `gateway.surfaces`). Raises `InvalidRequest` for what Ollama cannot do (n > 1, several
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


# --- answers ------------------------------------------------------------------------------------


class _Function(msgspec.Struct):
    name: str = ""
    arguments: Any = None


class _ToolCall(msgspec.Struct):
    function: _Function = msgspec.field(default_factory=_Function)
    id: str | None = None


class _Message(msgspec.Struct):
    content: str | None = None
    thinking: str | None = None
    tool_calls: list[_ToolCall] | None = None


class OllamaLine(msgspec.Struct):
    """One NDJSON line of `/api/chat` or `/api/generate` (or the whole non-streamed answer)."""

    message: _Message | None = None
    response: str | None = None
    thinking: str | None = None
    done: bool = False
    done_reason: str | None = None
    prompt_eval_count: int | None = None
    eval_count: int | None = None
    error: Any = None


class _EmbedAnswer(msgspec.Struct):
    embeddings: list[list[float]] = msgspec.field(default_factory=list)
    prompt_eval_count: int | None = None
    error: Any = None


_line_decoder = msgspec.json.Decoder(OllamaLine)
_embed_decoder = msgspec.json.Decoder(_EmbedAnswer)


def decode_line(raw: bytes, worker_name: str, what: str = "stream line") -> OllamaLine:
    """Decode one Ollama line. `{"error": ...}` raises the worker's error (normalized, as a 500);
    anything that is not an Ollama line raises `UpstreamError`."""
    try:
        line = _line_decoder.decode(raw)
    except (msgspec.DecodeError, UnicodeDecodeError):  # (ValidationError is a DecodeError; invalid UTF-8)
        raise UpstreamError(f"worker {worker_name!r} sent a malformed {what}") from None
    if line.error is not None:
        raise worker_error(500, raw)
    return line


def completion_id(endpoint: Endpoint, request_id: str | None = None) -> str:
    """`chatcmpl-<hex>` (`cmpl-` for completions). The gateway's own request ids (`req_<hex>`) give
    their hex, so logs and answers correlate; otherwise (a client's id may repeat) a random one."""
    match = _GATEWAY_REQUEST_ID.fullmatch(request_id) if request_id else None
    return _ID_PREFIX[endpoint] + (match.group(1) if match else secrets.token_hex(12))


def tool_call_id(completion: str, index: int) -> str:
    """A tool call id for Ollama's calls, which carry none: unique per completion and index."""
    return "call_" + hashlib.blake2b(f"{completion}/{index}".encode(), digest_size=12).hexdigest()


def finish_reason(done_reason: str | None, called_tools: bool) -> str:
    """`stop`→`stop`, `length`→`length`; a reply that called tools ends with `tool_calls` (unless cut)."""
    reason = _FINISH.get(done_reason or "stop", "stop")
    return "tool_calls" if called_tools and reason == "stop" else reason


def usage_of(line: OllamaLine, *, prompt_estimate: int, completion_estimate: int) -> tuple[dict[str, int], bool]:
    """The OpenAI usage of a final line, and whether part of it was estimated (a count Ollama left out:
    it omits `prompt_eval_count` when the whole prompt came from its cache, for instance)."""
    prompt = line.prompt_eval_count
    completion = line.eval_count
    estimated = prompt is None or completion is None
    prompt = prompt_estimate if prompt is None else prompt
    completion = completion_estimate if completion is None else completion
    return {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}, estimated


def _openai_tool_calls(calls: list[_ToolCall], completion: str, first_index: int, *, streaming: bool
                       ) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for offset, call in enumerate(calls):
        index = first_index + offset
        arguments = call.function.arguments
        if not isinstance(arguments, str):
            arguments = _encode({} if arguments is None else arguments).decode()
        entry: dict[str, Any] = {"id": call.id or tool_call_id(completion, index), "type": "function",
                                 "function": {"name": call.function.name, "arguments": arguments}}
        out.append({"index": index, **entry} if streaming else entry)
    return out


def from_ollama(endpoint: Endpoint, raw: bytes, *, model: str, request_id: str,
                encoding_format: str | None = None, worker_name: str = "") -> bytes:
    """A whole (non-streamed) Ollama answer as the OpenAI JSON body. `model` is the name to show;
    `encoding_format="base64"` (embeddings; the openai SDK asks for it by default) packs each vector
    as little-endian float32, as OpenAI does. A body carrying `{"error": ...}` raises the worker's
    error; one that is not Ollama's raises `UpstreamError`."""
    created = int(time.time())
    if endpoint == "embeddings":
        try:
            answer = _embed_decoder.decode(raw)
        except (msgspec.DecodeError, UnicodeDecodeError):  # (ValidationError is a DecodeError; invalid UTF-8)
            raise UpstreamError(f"worker {worker_name!r} sent a malformed embeddings answer") from None
        if answer.error is not None:
            raise worker_error(500, raw)
        packed = encoding_format == "base64"
        data = [{"object": "embedding", "index": i, "embedding": _base64_floats(v) if packed else v}
                for i, v in enumerate(answer.embeddings)]
        tokens = answer.prompt_eval_count or 0
        return _encode({"object": "list", "data": data, "model": model,
                        "usage": {"prompt_tokens": tokens, "total_tokens": tokens}})
    line = decode_line(raw, worker_name, "answer")
    identifier = completion_id(endpoint, request_id)
    usage, _ = usage_of(line, prompt_estimate=0, completion_estimate=0)
    if endpoint == "completions":
        choice: dict[str, Any] = {"index": 0, "text": line.response or "", "logprobs": None,
                                  "finish_reason": finish_reason(line.done_reason, False)}
        return _encode({"id": identifier, "object": "text_completion", "created": created, "model": model,
                        "choices": [choice], "usage": usage})
    message = line.message or _Message()
    calls = _openai_tool_calls(message.tool_calls or [], identifier, 0, streaming=False)
    content = message.content or ""
    reply: dict[str, Any] = {"role": "assistant", "content": None if calls and not content else content}
    if message.thinking:
        reply["reasoning_content"] = message.thinking
    if calls:
        reply["tool_calls"] = calls
    choice = {"index": 0, "message": reply, "logprobs": None, "finish_reason": finish_reason(line.done_reason,
                                                                                             bool(calls))}
    return _encode({"id": identifier, "object": "chat.completion", "created": created, "model": model,
                    "choices": [choice], "usage": usage})


def _base64_floats(vector: list[float]) -> str:
    return base64.b64encode(struct.pack(f"<{len(vector)}f", *vector)).decode()


class StreamTranslator:
    """Turns the lines of one Ollama stream into OpenAI stream chunks (dicts, in order).

    Chat: a first chunk with `delta.role`, one chunk per line with content, thinking or tool calls,
    then a chunk with `finish_reason`. Completions: one `text_completion` chunk per line, then one with
    `finish_reason`. The chunks carry no `usage` key (as vLLM's); the usage chunk is `usage_chunk`."""

    def __init__(self, endpoint: Endpoint, *, model: str, request_id: str | None = None) -> None:
        if endpoint == "embeddings":
            raise ValueError("embeddings are not streamed")
        self.endpoint = endpoint
        self.model = model
        self.id = completion_id(endpoint, request_id)
        self.created = int(time.time())
        self.tool_calls = 0
        self._started = False
        self._object = "chat.completion.chunk" if endpoint == "chat/completions" else "text_completion"

    def _chunk(self, choice: dict[str, Any]) -> dict[str, Any]:
        return {"id": self.id, "object": self._object, "created": self.created, "model": self.model,
                "choices": [choice]}

    def feed(self, line: OllamaLine) -> list[dict[str, Any]]:
        """The chunks for one (already decoded, error-free) line."""
        if self.endpoint == "completions":
            return self._feed_completion(line)
        chunks: list[dict[str, Any]] = []
        if not self._started:
            self._started = True
            chunks.append(self._chunk({"index": 0, "delta": {"role": "assistant", "content": ""}, "logprobs": None,
                                       "finish_reason": None}))
        delta: dict[str, Any] = {}
        message = line.message
        if message is not None:
            if message.thinking:
                delta["reasoning_content"] = message.thinking
            if message.content:
                delta["content"] = message.content
            if message.tool_calls:
                delta["tool_calls"] = _openai_tool_calls(message.tool_calls, self.id, self.tool_calls, streaming=True)
                self.tool_calls += len(message.tool_calls)
        if delta:
            chunks.append(self._chunk({"index": 0, "delta": delta, "logprobs": None, "finish_reason": None}))
        if line.done:
            chunks.append(self._chunk({"index": 0, "delta": {}, "logprobs": None,
                                       "finish_reason": finish_reason(line.done_reason, self.tool_calls > 0)}))
        return chunks

    def _feed_completion(self, line: OllamaLine) -> list[dict[str, Any]]:
        chunks: list[dict[str, Any]] = []
        if line.response:
            chunks.append(self._chunk({"index": 0, "text": line.response, "logprobs": None, "finish_reason": None}))
        if line.done:
            chunks.append(self._chunk({"index": 0, "text": "", "logprobs": None,
                                       "finish_reason": finish_reason(line.done_reason, False)}))
        return chunks

    def usage_chunk(self, usage: dict[str, int]) -> dict[str, Any]:
        return {"id": self.id, "object": self._object, "created": self.created, "model": self.model, "choices": [],
                "usage": usage}


def has_content(chunk: dict[str, Any]) -> bool:
    """Whether an OpenAI chunk carries generated output (text, reasoning or tool calls)."""
    for choice in chunk.get("choices") or ():
        delta = choice.get("delta")
        if delta is not None:
            if delta.get("content") or delta.get("tool_calls") or delta.get("reasoning_content"):
                return True
        elif choice.get("text"):
            return True
    return False
