"""OpenAI's (legacy) completions (`POST /v1/completions`): a prompt in, its continuation (or stream) out."""

from __future__ import annotations

from gateway.surfaces.base import Body, RequestDoc
from gateway.surfaces.openai_common import VENDOR_FIELDS, OpenAITextInput, check_generation
from gateway.surfaces.openai_schema import GENERATION, STRING_OR_NULL, TEXTS_OR_TOKENS

_DOC = RequestDoc(
    summary="Create a completion",
    schema={"type": "object", "required": ["prompt"], "additionalProperties": True, "properties": {
        **GENERATION,
        "prompt": TEXTS_OR_TOKENS,
        "echo": {"type": ["boolean", "null"]},
        "suffix": STRING_OR_NULL}},
    example={"model": "chat", "prompt": "Once upon a time", "max_tokens": 32},
    description=VENDOR_FIELDS)


class Completions(OpenAITextInput):
    """Routing rules and prefix affinity see the prompt (several prompts: one per line)."""

    name = "completions"
    paths = ("/v1/completions",)
    title = "Completions"
    doc = _DOC
    input_field = "prompt"

    def check(self, body: Body) -> None:
        super().check(body)
        check_generation(body)


COMPLETIONS = Completions()
