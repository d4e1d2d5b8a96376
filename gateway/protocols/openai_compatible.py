"""The OpenAI-compatible protocol: vLLM, llama.cpp's servers, OpenAI itself, any server that speaks
OpenAI's API. The request goes to the worker as the client sent it, but for `model` (the worker's own id
of it); the answer and the SSE stream come back as they are, checked on the way
(`gateway.upstream.sse_relay`).

Kind `openai` (any such server) is asked OpenAI's chat-era surfaces only: Responses and Anthropic
Messages requests reach it translated to chat completions. Kind `vllm` (`gateway.protocols.vllm`)
serves both natively, so they go to it as they came.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import ClassVar

import msgspec

from gateway.protocols.base import Capabilities, StreamRelay, WorkerProtocol
from gateway.surfaces.request import InferenceRequest
from gateway.upstream.sse_push import PushableStream
from gateway.upstream.sse_relay import relay_sse
from gateway.upstream.stream_connection import UpstreamStream
from gateway.workers.pool import Placement

_encode = msgspec.json.Encoder().encode
_PATHS = {"tokenize": "/../tokenize", "detokenize": "/../detokenize"}
"""Surfaces served at the worker's root, not under its `/v1` URL (vLLM's and llama.cpp's): `/..` climbs
out of it (the client's URL library resolves the dot segment)."""


class OpenAICompatible(WorkerProtocol):
    """Workers that speak the OpenAI API under `/v1` (their catalog URL ends there)."""

    capabilities: ClassVar[Capabilities] = Capabilities(
        surfaces=frozenset({"chat/completions", "completions", "embeddings", "rerank", "score", "tokenize",
                            "detokenize", "audio/transcriptions", "audio/translations"}), parameters=None)

    def request(self, request: InferenceRequest, placement: Placement) -> tuple[str, bytes]:
        body = request.body
        body["model"] = placement.upstream_model
        endpoint = request.endpoint
        return _PATHS.get(endpoint) or "/" + endpoint, _encode(body)

    def answer(self, request: InferenceRequest, placement: Placement, body: bytes, request_id: str) -> bytes:
        return body  # already the OpenAI shape (the forwarder checks it is a JSON object)

    def relay(self, response: UpstreamStream, stream: StreamRelay) -> AsyncIterator[bytes]:
        if stream.tap is None:  # the client gets the worker's events as they are: pushed when it can be
            return PushableStream(response, worker_name=stream.worker_name, idle_timeout=stream.idle_timeout,
                                  deadline=stream.deadline, client_wants_usage=stream.client_wants_usage,
                                  prompt_tokens_estimate=stream.prompt_tokens_estimate, on_end=stream.on_end,
                                  on_first=stream.on_first, capture=stream.capture, cutoff=stream.cutoff)
        return relay_sse(response, worker_name=stream.worker_name, idle_timeout=stream.idle_timeout,
                         deadline=stream.deadline, client_wants_usage=stream.client_wants_usage,
                         prompt_tokens_estimate=stream.prompt_tokens_estimate, on_end=stream.on_end,
                         on_first=stream.on_first, capture=stream.capture, cutoff=stream.cutoff, tap=stream.tap)

