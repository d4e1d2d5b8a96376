"""Pass-through surfaces: worker APIs the gateway routes, authorizes and limits but does not interpret,
in the worker's own shapes. Only workers whose protocol serves the surface get them (vLLM serves all four,
llama.cpp's server rerank with `--reranking` and tokenize/detokenize, Ollama none); a model none of
whose workers serves it is the client's 400.

- `POST /v1/rerank` (vLLM, llama.cpp, Jina/Cohere shape): `query` and `documents` in, scored documents out.
- `POST /v1/score` (vLLM): `text_1` against `text_2` (a string or a list).
- `POST /tokenize`, `POST /detokenize` (vLLM, llama.cpp): the body as the worker takes it (vLLM: `prompt`
  or `messages`; llama.cpp: `content`), and `tokens` back to text.

Never streamed, captured or cached (cheap next to generation, and their answers carry no id of their own).
"""

from __future__ import annotations

from typing import ClassVar

from gateway.errors import InvalidRequest
from gateway.surfaces.base import Body, RequestDoc, Surface
from gateway.surfaces.openai_common import check_present, text_of
from gateway.surfaces.openai_schema import MODEL

_PASSED_ON = "The body reaches a worker of the model as it is (its `model` rewritten to the worker's id)."


class PassThroughSurface(Surface):
    """What the pass-through surfaces share: no stream, no capture, no cache, nothing generated."""

    streamable = False
    captured = False
    text_fields: ClassVar[tuple[str, ...]]
    """The fields whose text routing rules and prefix affinity see, in order."""

    def routing_text(self, body: Body, match_on: str = "last_user_message") -> str:
        return "\n".join(text for name in self.text_fields if (text := text_of(body.get(name))))

    def prompt_tokens_estimate(self, body: Body) -> int:
        """About four characters a token."""
        return len(self.routing_text(body)) // 4 + 1

    def completion_reserve(self, body: Body, default: int) -> int:
        return 0

    def is_deterministic(self, body: Body) -> bool:
        return False

    def cache_fields(self, body: Body) -> Body | None:
        return None


class Rerank(PassThroughSurface):
    name = "rerank"
    paths = ("/v1/rerank", "/rerank")
    title = "Rerank"
    text_fields = ("query", "documents")
    doc = RequestDoc(
        summary="Rerank documents against a query",
        schema={"type": "object", "required": ["query", "documents"], "additionalProperties": True,
                "properties": {"model": MODEL, "query": {"type": "string"},
                               "documents": {"type": "array", "minItems": 1},
                               "top_n": {"type": "integer", "minimum": 1}}},
        example={"model": "reranker", "query": "a habit", "documents": ["run daily", "eat well"]},
        description=_PASSED_ON)

    def check(self, body: Body) -> None:
        check_present(body, "query", (str,))
        check_present(body, "documents", (list,))
        top_n = body.get("top_n")
        if top_n is not None and (type(top_n) is not int or top_n < 1):
            raise InvalidRequest("'top_n' must be an integer of at least 1.", param="top_n", code="invalid_type")


class Score(PassThroughSurface):
    name = "score"
    paths = ("/v1/score", "/score")
    title = "Score"
    text_fields = ("text_1", "text_2")
    doc = RequestDoc(
        summary="Score text pairs",
        schema={"type": "object", "required": ["text_1", "text_2"], "additionalProperties": True,
                "properties": {"model": MODEL, "text_1": {"type": ["string", "array"]},
                               "text_2": {"type": ["string", "array"]}}},
        example={"model": "reranker", "text_1": "a habit", "text_2": ["run daily", "eat well"]},
        description=_PASSED_ON)

    def check(self, body: Body) -> None:
        check_present(body, "text_1", (str, list))
        check_present(body, "text_2", (str, list))


class Tokenize(PassThroughSurface):
    name = "tokenize"
    paths = ("/tokenize", "/v1/tokenize")
    title = "Tokenize"
    text_fields = ("prompt", "content", "messages")
    doc = RequestDoc(
        summary="Tokenize text with the model's tokenizer",
        schema={"type": "object", "additionalProperties": True,
                "properties": {"model": MODEL, "prompt": {"type": "string"}, "content": {"type": "string"},
                               "messages": {"type": "array"}}},
        example={"model": "chat", "prompt": "Hello there"},
        description=_PASSED_ON + " vLLM reads `prompt` or `messages`, llama.cpp `content`.")

    def check(self, body: Body) -> None:
        if not any(name in body for name in self.text_fields):
            raise InvalidRequest("Missing required parameter: 'prompt' (or 'content', 'messages').", param="prompt",
                                 code="missing_required_parameter")

    def routing_text(self, body: Body, match_on: str = "last_user_message") -> str:
        messages = body.get("messages")
        if isinstance(messages, list):
            return "\n".join(text_of(m.get("content")) for m in messages if isinstance(m, dict))
        return text_of(body.get("prompt")) or text_of(body.get("content"))


class Detokenize(PassThroughSurface):
    name = "detokenize"
    paths = ("/detokenize", "/v1/detokenize")
    title = "Detokenize"
    text_fields = ()
    doc = RequestDoc(
        summary="Turn token ids back into text",
        schema={"type": "object", "required": ["tokens"], "additionalProperties": True,
                "properties": {"model": MODEL, "tokens": {"type": "array", "items": {"type": "integer"}}}},
        example={"model": "chat", "tokens": [9906, 1070]},
        description=_PASSED_ON)

    def check(self, body: Body) -> None:
        tokens = body.get("tokens")
        if tokens is None:
            raise InvalidRequest("Missing required parameter: 'tokens'.", param="tokens",
                                 code="missing_required_parameter")
        if not isinstance(tokens, list) or not all(type(t) is int for t in tokens):
            raise InvalidRequest("'tokens' must be an array of integers.", param="tokens", code="invalid_type")


RERANK = Rerank()
SCORE = Score()
TOKENIZE = Tokenize()
DETOKENIZE = Detokenize()
