"""OpenAPI documentation of the JSON bodies that handlers read themselves.

Handlers decode their bodies with the gateway's own code (so that every error is an OpenAI error object
and inference bodies reach workers untouched); these schemas only document them, in `/schema`, and are
never used to validate a request.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import msgspec
from litestar.openapi.spec import Operation

from routing.catalog import WorkerSpec

Schema = dict[str, Any]


def with_body(body: Schema) -> type[Operation]:
    """An operation class for a route's `operation_class`: its schema gains `body` as `requestBody`."""

    @dataclass
    class WithBody(Operation):
        def to_schema(self) -> dict[str, Any]:
            return {**super().to_schema(), "requestBody": body}

    return WithBody


def json_body(schema: Schema, example: Any, *, description: str | None = None) -> Schema:
    """A required `application/json` request body."""
    body: Schema = {"required": True, "content": {"application/json": {"schema": schema, "example": example}}}
    if description:
        body["description"] = description
    return body


def struct_schema(struct: type[msgspec.Struct]) -> Schema:
    """The JSON schema of a msgspec struct with its `$defs` inlined (the structs are not recursive)."""
    document = msgspec.json.schema(struct)
    definitions: dict[str, Schema] = document.get("$defs", {})

    def inline(node: Any) -> Any:
        if isinstance(node, dict):
            ref = node.get("$ref")
            if isinstance(ref, str) and ref.startswith("#/$defs/"):
                rest = {k: inline(v) for k, v in node.items() if k != "$ref"}
                return {**inline(definitions[ref.removeprefix("#/$defs/")]), **rest}
            return {k: inline(v) for k, v in node.items()}
        if isinstance(node, list):
            return [inline(item) for item in node]
        return node

    schema: Schema = inline({"$ref": document["$ref"]})
    return schema


_STRING_OR_NULL: Schema = {"type": ["string", "null"]}
_CONTENT_PART: Schema = {
    "type": "object", "required": ["type"], "additionalProperties": True,
    "properties": {"type": {"type": "string", "description": "`text`, `image_url`, `input_audio`, ..."},
                   "text": {"type": "string"}}}
_MESSAGE: Schema = {
    "type": "object", "required": ["role"], "additionalProperties": True,
    "properties": {
        "role": {"type": "string", "enum": ["system", "developer", "user", "assistant", "tool"]},
        "content": {"anyOf": [{"type": "string"}, {"type": "array", "items": _CONTENT_PART}, {"type": "null"}]},
        "name": {"type": "string"},
        "tool_calls": {"type": "array", "items": {"type": "object"}},
        "tool_call_id": {"type": "string"}}}
_STOP: Schema = {"anyOf": [{"type": "string"}, {"type": "array", "items": {"type": "string"}, "maxItems": 4},
                           {"type": "null"}]}
_GENERATION: Schema = {
    "model": {"type": "string", "description": "A catalog model or alias; absent: the routing rules choose"},
    "stream": {"type": ["boolean", "null"], "default": False},
    "stream_options": {"type": ["object", "null"], "properties": {"include_usage": {"type": "boolean"}}},
    "max_tokens": {"type": ["integer", "null"], "minimum": 1},
    "temperature": {"type": ["number", "null"], "minimum": 0, "maximum": 2},
    "top_p": {"type": ["number", "null"], "minimum": 0, "maximum": 1},
    "n": {"type": ["integer", "null"], "minimum": 1},
    "stop": _STOP,
    "seed": {"type": ["integer", "null"]},
    "presence_penalty": {"type": ["number", "null"], "minimum": -2, "maximum": 2},
    "frequency_penalty": {"type": ["number", "null"], "minimum": -2, "maximum": 2},
    "user": {"type": "string", "description": "An end-user id; also the session-affinity key"},
    "session_id": {"type": "string", "description": "Session affinity: requests with one id go to one worker"},
}
_VENDOR_FIELDS = ("Other fields (tools, response_format, logprobs, vendor extensions) are forwarded to the "
                  "worker unchanged.")

CHAT_COMPLETION_BODY = json_body(
    {"type": "object", "required": ["messages"], "additionalProperties": True, "properties": {
        **_GENERATION,
        "messages": {"type": "array", "minItems": 1, "items": _MESSAGE},
        "max_completion_tokens": {"type": ["integer", "null"], "minimum": 1},
        "tools": {"type": "array", "items": {"type": "object"}},
        "tool_choice": {"anyOf": [{"type": "string"}, {"type": "object"}]},
        "response_format": {"type": "object"}}},
    {"model": "chat", "messages": [{"role": "user", "content": "Say hello"}], "max_tokens": 32},
    description=_VENDOR_FIELDS)

_TOKENS: Schema = {"type": "array", "minItems": 1, "items": {"type": "integer", "minimum": 0}}
COMPLETION_BODY = json_body(
    {"type": "object", "required": ["prompt"], "additionalProperties": True, "properties": {
        **_GENERATION,
        "prompt": {"anyOf": [{"type": "string"}, {"type": "array", "minItems": 1, "items": {"type": "string"}},
                             _TOKENS, {"type": "array", "minItems": 1, "items": _TOKENS}]},
        "echo": {"type": ["boolean", "null"]},
        "suffix": _STRING_OR_NULL}},
    {"model": "chat", "prompt": "Once upon a time", "max_tokens": 32},
    description=_VENDOR_FIELDS)

EMBEDDING_BODY = json_body(
    {"type": "object", "required": ["input"], "additionalProperties": True, "properties": {
        "model": _GENERATION["model"],
        "input": {"anyOf": [{"type": "string"}, {"type": "array", "minItems": 1, "items": {"type": "string"}},
                            _TOKENS, {"type": "array", "minItems": 1, "items": _TOKENS}]},
        "encoding_format": {"type": "string", "enum": ["float", "base64"], "default": "float"},
        "dimensions": {"type": "integer", "minimum": 1},
        "user": {"type": "string"},
        "stream": {"type": ["boolean", "null"], "enum": [False, None],
                   "description": "Embeddings cannot be streamed"}}},
    {"model": "chat", "input": ["first text", "second text"]},
    description=_VENDOR_FIELDS)

WORKER_BODY = json_body(struct_schema(WorkerSpec), {"name": "gpu-3", "kind": "vllm",
                                                    "base_url": "http://10.0.0.3:8000/v1", "models": ["chat"]})
PULL_BODY = json_body({"type": "object", "required": ["model"], "properties": {"model": {"type": "string"}}},
                      {"model": "llama3.2:3b"})
ADAPTER_BODY = json_body(
    {"type": "object", "required": ["lora_name", "lora_path"],
     "properties": {"lora_name": {"type": "string"}, "lora_path": {"type": "string"}}},
    {"lora_name": "coach-v2", "lora_path": "/adapters/coach-v2"})
