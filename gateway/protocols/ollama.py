"""Ollama's native protocol (`/api/chat`, `/api/generate`, `/api/embed`): requests translated by
`ollama_requests`, answers and streams by `ollama_answers`, the NDJSON stream relayed line by line by
`gateway.upstream.ndjson_relay` with this protocol's translator. Anthropic Messages and OpenAI Responses
go as the client sent them to Ollama's own `/v1/messages` and `/v1/responses` (Ollama 0.13 and later).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import ClassVar

from gateway.protocols.base import Capabilities, StreamRelay, WorkerProtocol
from gateway.protocols.ollama_answers import StreamTranslator, from_ollama
from gateway.protocols.ollama_requests import PARAMETERS, PATHS, to_ollama
from gateway.surfaces.request import InferenceRequest
from gateway.upstream.ndjson_relay import relay_ndjson
from gateway.upstream.stream_connection import UpstreamStream
from gateway.workers.pool import Placement


class OllamaNative(WorkerProtocol):
    """Ollama workers (their catalog URL is the server's root). Parameters outside `PARAMETERS` are not
    sent; what Ollama cannot do (`n` > 1, several prompts, token ids, image URLs) is a 400."""

    capabilities: ClassVar[Capabilities] = Capabilities(surfaces=frozenset(PATHS) | {"messages", "responses"},
                                                        parameters=PARAMETERS)
    native_prefix: ClassVar[str] = "/v1/"

    def request(self, request: InferenceRequest, placement: Placement) -> tuple[str, bytes]:
        return to_ollama(request.endpoint, request.body, upstream_model=placement.upstream_model,
                         num_ctx=placement.num_ctx)

    def answer(self, request: InferenceRequest, placement: Placement, body: bytes, request_id: str) -> bytes:
        encoding = request.body.get("encoding_format")
        return from_ollama(request.endpoint, body, model=placement.upstream_model, request_id=request_id,
                           encoding_format=encoding if isinstance(encoding, str) else None,
                           worker_name=placement.name)

    def relay(self, response: UpstreamStream, stream: StreamRelay) -> AsyncIterator[bytes]:
        translator = StreamTranslator(stream.endpoint, model=stream.upstream_model, request_id=stream.request_id,
                                      worker_name=stream.worker_name)
        return relay_ndjson(response, translator, worker_name=stream.worker_name, idle_timeout=stream.idle_timeout,
                            deadline=stream.deadline, client_wants_usage=stream.client_wants_usage,
                            prompt_tokens_estimate=stream.prompt_tokens_estimate, on_end=stream.on_end,
                            on_first=stream.on_first, capture=stream.capture, cutoff=stream.cutoff)
