"""OpenAI's embeddings (`POST /v1/embeddings`): texts (or token ids) in, vectors out; never streamed,
never captured."""

from __future__ import annotations

from gateway.surfaces.base import Body, RequestDoc
from gateway.surfaces.openai_common import VENDOR_FIELDS, OpenAITextInput
from gateway.surfaces.openai_schema import MODEL, TEXTS_OR_TOKENS

_DOC = RequestDoc(
    summary="Create embeddings",
    schema={"type": "object", "required": ["input"], "additionalProperties": True, "properties": {
        "model": MODEL,
        "input": TEXTS_OR_TOKENS,
        "encoding_format": {"type": "string", "enum": ["float", "base64"], "default": "float"},
        "dimensions": {"type": "integer", "minimum": 1},
        "user": {"type": "string"},
        "stream": {"type": ["boolean", "null"], "enum": [False, None],
                   "description": "Embeddings cannot be streamed"}}},
    example={"model": "chat", "input": ["first text", "second text"]},
    description=VENDOR_FIELDS)


class Embeddings(OpenAITextInput):
    """Routing rules and prefix affinity see the input (several inputs: one per line)."""

    name = "embeddings"
    paths = ("/v1/embeddings",)
    title = "Embeddings"
    doc = _DOC
    input_field = "input"
    streamable = False
    captured = False

    def completion_reserve(self, body: Body, default: int) -> int:
        """Nothing is generated: only a limit the request sets itself is reserved."""
        return super().completion_reserve(body, 0)


EMBEDDINGS = Embeddings()
