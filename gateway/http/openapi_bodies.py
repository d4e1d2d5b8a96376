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

from gateway.surfaces import Surface
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


def surface_body(surface: Surface) -> Schema:
    """The request body of an API surface, as its module documents it."""
    doc = surface.doc
    return json_body(doc.schema, doc.example, description=doc.description)


WORKER_BODY = json_body(struct_schema(WorkerSpec), {"name": "gpu-3", "kind": "vllm",
                                                    "base_url": "http://10.0.0.3:8000/v1", "models": ["chat"]})
PULL_BODY = json_body({"type": "object", "required": ["model"], "properties": {"model": {"type": "string"}}},
                      {"model": "llama3.2:3b"})
ADAPTER_BODY = json_body(
    {"type": "object", "required": ["lora_name", "lora_path"],
     "properties": {"lora_name": {"type": "string"}, "lora_path": {"type": "string"}}},
    {"lora_name": "coach-v2", "lora_path": "/adapters/coach-v2"})
