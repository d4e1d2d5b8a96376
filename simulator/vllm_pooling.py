"""The simulated vLLM's pooling and tokenizer endpoints, answered at once in vLLM's shapes:
`POST /v1/rerank` (also `/rerank`), `POST /v1/score` (also `/score`), `POST /tokenize`, `POST /detokenize`.
Scores are deterministic (the cosine of the simulator's text embeddings); a token is a run of up to
CHARS_PER_TOKEN characters, its id a stable number of its text, and detokenize gives `tok<id>` back.
`/tokenize` with `messages` counts the serialized conversation (`simulator.text.serialize_messages`)
and, when it offers `tools`, their serialized JSON after it (`serialize_tools`), as a chat template
renders both into the prompt; `add_generation_prompt` adds nothing."""

from __future__ import annotations

import time
import uuid
import zlib
from typing import Any

from aiohttp import web

from simulator.config import SimulatorConfig
from simulator.streaming import json_response, record_of
from simulator.text import (
    CHARS_PER_TOKEN,
    content_text,
    count_tokens,
    embedding,
    serialize_messages,
    serialize_tools,
)
from simulator.vllm_requests import read_json_body, resolve_model, vllm_error


class VllmPooling:
    """The handlers; registered by `VllmEndpoints.add_routes`."""

    def __init__(self, config: SimulatorConfig) -> None:
        self.config = config

    def add_routes(self, app: web.Application) -> None:
        for path in ("/v1/rerank", "/rerank"):
            app.router.add_post(path, self.rerank)
        for path in ("/v1/score", "/score"):
            app.router.add_post(path, self.score)
        app.router.add_post("/tokenize", self.tokenize)
        app.router.add_post("/detokenize", self.detokenize)

    def _similarity(self, model: str, first: str, second: str) -> float:
        dim = self.config.embedding_dim
        a, b = (embedding(self.config.seed, model, text, dim) for text in (first, second))
        return round(sum(x * y for x, y in zip(a, b, strict=True)), 6)

    async def rerank(self, request: web.Request) -> web.StreamResponse:
        body = await read_json_body(request)
        model, _fault = resolve_model(request, body, self.config)
        query, documents = body.get("query"), body.get("documents")
        if not isinstance(query, str) or not isinstance(documents, list) or not documents:
            raise vllm_error(400, "query (a string) and documents (a non-empty list) are required", param="documents")
        texts = [d if isinstance(d, str) else content_text(d.get("text") if isinstance(d, dict) else "")
                 for d in documents]
        scored = sorted(((self._similarity(model, query, text), i) for i, text in enumerate(texts)), reverse=True)
        top_n = body.get("top_n") if isinstance(body.get("top_n"), int) else len(scored)
        tokens = count_tokens(query) * len(texts) + sum(count_tokens(t) for t in texts)
        record_of(request).prompt_tokens = tokens
        results = [{"index": i, "relevance_score": score, "document": {"text": texts[i]}}
                   for score, i in scored[:top_n]]
        return json_response({"id": f"rerank-{uuid.uuid4().hex}", "model": model, "results": results,
                              "usage": {"total_tokens": tokens}})

    async def score(self, request: web.Request) -> web.StreamResponse:
        body = await read_json_body(request)
        model, _fault = resolve_model(request, body, self.config)
        first, second = body.get("text_1"), body.get("text_2")
        if not isinstance(first, str) or not isinstance(second, str | list):
            raise vllm_error(400, "text_1 (a string) and text_2 (a string or a list) are required", param="text_1")
        seconds = [second] if isinstance(second, str) else [str(t) for t in second]
        data = [{"index": i, "object": "score", "score": self._similarity(model, first, text)}
                for i, text in enumerate(seconds)]
        tokens = sum(count_tokens(first) + count_tokens(text) for text in seconds)
        record_of(request).prompt_tokens = tokens
        return json_response({"id": f"score-{uuid.uuid4().hex}", "object": "list", "created": int(time.time()),
                              "model": model, "data": data,
                              "usage": {"prompt_tokens": tokens, "total_tokens": tokens}})

    async def tokenize(self, request: web.Request) -> web.StreamResponse:
        body = await read_json_body(request)
        resolve_model(request, body, self.config)
        messages = body.get("messages")
        text = serialize_messages(messages) + serialize_tools(body.get("tools")) if isinstance(messages, list) \
            else body.get("prompt")
        if not isinstance(text, str):
            raise vllm_error(400, "prompt (a string) or messages is required", param="prompt")
        tokens = [_token_id(text[i:i + CHARS_PER_TOKEN]) for i in range(0, len(text), CHARS_PER_TOKEN)]
        record_of(request).prompt_tokens = len(tokens)
        return json_response({"count": len(tokens), "max_model_len": 32768, "tokens": tokens})

    async def detokenize(self, request: web.Request) -> web.StreamResponse:
        body = await read_json_body(request)
        resolve_model(request, body, self.config)
        tokens: Any = body.get("tokens")
        if not isinstance(tokens, list) or not all(isinstance(t, int) for t in tokens):
            raise vllm_error(400, "tokens must be a list of integers", param="tokens")
        return json_response({"prompt": "".join(f"tok{t}" for t in tokens)})


def _token_id(piece: str) -> int:
    return zlib.crc32(piece.encode()) % 100_000
