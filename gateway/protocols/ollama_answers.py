"""Ollama's native API, answers: a whole answer of `/api/chat`, `/api/generate` or `/api/embed` as the
OpenAI body (`from_ollama`), and the lines of a stream as OpenAI stream chunks (`StreamTranslator`, which
the NDJSON relay of `gateway.upstream` drives). Pure functions and a small per-stream state machine.

`chat.completion(.chunk)`, `text_completion`, and the `list` of embeddings, with `finish_reason` from
`done_reason` (`tool_calls` when the model called a tool), `usage` from `prompt_eval_count`/`eval_count`,
tool call ids generated when Ollama gives none, and Ollama's `thinking` as `reasoning_content` (vLLM's
name for it). Ollama's `{"error": "..."}` becomes the worker's error, normalized (`worker_error`).
"""

from __future__ import annotations

import base64
import hashlib
import re
import secrets
import struct
import time
from typing import Any

import msgspec

from gateway.errors import UpstreamError, worker_error
from gateway.surfaces.request import Endpoint

_encode = msgspec.json.Encoder().encode
_ID_PREFIX = {"chat/completions": "chatcmpl-", "completions": "cmpl-", "embeddings": "embd-"}
_GATEWAY_REQUEST_ID = re.compile(r"req_([0-9a-f]{8,64})")
_FINISH = {"stop": "stop", "length": "length"}


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
    """Turns the lines of one Ollama stream into OpenAI stream chunks (dicts, in order); the
    `LineTranslator` of `gateway.upstream.ndjson_relay`.

    Chat: a first chunk with `delta.role`, one chunk per line with content, thinking or tool calls,
    then a chunk with `finish_reason`. Completions: one `text_completion` chunk per line, then one with
    `finish_reason`. The chunks carry no `usage` key (as vLLM's); the usage chunk is `usage_chunk`."""

    def __init__(self, endpoint: Endpoint, *, model: str, request_id: str | None = None, worker_name: str = ""
                 ) -> None:
        if endpoint == "embeddings":
            raise ValueError("embeddings are not streamed")
        self.endpoint = endpoint
        self.model = model
        self.worker_name = worker_name
        self.id = completion_id(endpoint, request_id)
        self.created = int(time.time())
        self.tool_calls = 0
        self.done = False
        """Whether the last line fed was the final one (`done: true`)."""
        self._final: OllamaLine | None = None
        self._started = False
        self._object = "chat.completion.chunk" if endpoint == "chat/completions" else "text_completion"

    def _chunk(self, choice: dict[str, Any]) -> dict[str, Any]:
        return {"id": self.id, "object": self._object, "created": self.created, "model": self.model,
                "choices": [choice]}

    def feed(self, raw: bytes) -> list[dict[str, Any]]:
        """The chunks for one line of the stream. `{"error": ...}` raises the worker's error; a line that
        is not Ollama's raises `UpstreamError`."""
        line = decode_line(raw, self.worker_name)
        if line.done:
            self.done = True
            self._final = line
        if self.endpoint == "completions":
            return self._completion_chunks(line)
        return self._chat_chunks(line)

    def _chat_chunks(self, line: OllamaLine) -> list[dict[str, Any]]:
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

    def _completion_chunks(self, line: OllamaLine) -> list[dict[str, Any]]:
        chunks: list[dict[str, Any]] = []
        if line.response:
            chunks.append(self._chunk({"index": 0, "text": line.response, "logprobs": None, "finish_reason": None}))
        if line.done:
            chunks.append(self._chunk({"index": 0, "text": "", "logprobs": None,
                                       "finish_reason": finish_reason(line.done_reason, False)}))
        return chunks

    def final_usage(self, *, prompt_estimate: int, completion_estimate: int) -> tuple[dict[str, int], bool]:
        """The usage of the final line (`usage_of`); only once the stream is `done`."""
        if self._final is None:
            raise ValueError("the stream has not ended")
        return usage_of(self._final, prompt_estimate=prompt_estimate, completion_estimate=completion_estimate)

    def usage_chunk(self, usage: dict[str, int]) -> dict[str, Any]:
        return {"id": self.id, "object": self._object, "created": self.created, "model": self.model, "choices": [],
                "usage": usage}
