"""JSON schema pieces of OpenAI's request bodies, for the OpenAPI documentation of their surfaces
(documentation only: the surfaces check bodies themselves, and forward unknown fields)."""

from __future__ import annotations

from typing import Any

Schema = dict[str, Any]

STRING_OR_NULL: Schema = {"type": ["string", "null"]}
_CONTENT_PART: Schema = {
    "type": "object", "required": ["type"], "additionalProperties": True,
    "properties": {"type": {"type": "string", "description": "`text`, `image_url`, `input_audio`, ..."},
                   "text": {"type": "string"}}}
MESSAGE: Schema = {
    "type": "object", "required": ["role"], "additionalProperties": True,
    "properties": {
        "role": {"type": "string", "enum": ["system", "developer", "user", "assistant", "tool"]},
        "content": {"anyOf": [{"type": "string"}, {"type": "array", "items": _CONTENT_PART}, {"type": "null"}]},
        "name": {"type": "string"},
        "tool_calls": {"type": "array", "items": {"type": "object"}},
        "tool_call_id": {"type": "string"}}}
_STOP: Schema = {"anyOf": [{"type": "string"}, {"type": "array", "items": {"type": "string"}, "maxItems": 4},
                           {"type": "null"}]}
MODEL: Schema = {"type": "string", "description": "A catalog model or alias; absent: the routing rules choose"}
GENERATION: Schema = {
    "model": MODEL,
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
"""The generation parameters chat completions and completions share."""
_TOKENS: Schema = {"type": "array", "minItems": 1, "items": {"type": "integer", "minimum": 0}}
TEXTS_OR_TOKENS: Schema = {"anyOf": [{"type": "string"}, {"type": "array", "minItems": 1, "items": {"type": "string"}},
                                     _TOKENS, {"type": "array", "minItems": 1, "items": _TOKENS}]}
"""A prompt or an input: a string, strings, token ids, or lists of token ids."""
