"""Answering one inference request (chat, completion, embeddings), apart from any web framework: who
calls, what they ask, the pipeline's answer, captured if opted in. The litestar handlers
(`openai_api`) and the plain-ASGI hot path (`inference_asgi`) both call `InferenceHandler.answer`."""

from __future__ import annotations

from collections.abc import Mapping

from gateway.auth.authenticator import Authenticator
from gateway.capture.interactions import InteractionCapture
from gateway.inference.forwarder import Reply
from gateway.inference.pipeline import InferencePipeline
from gateway.observability.request_record import RequestRecord
from gateway.surfaces.request import Endpoint, decode_inference_request
from gateway.workers.active_catalog import RuntimeHolder


class InferenceHandler:
    def __init__(self, pipeline: InferencePipeline, runtimes: RuntimeHolder, authenticator: Authenticator,
                 capture: InteractionCapture | None) -> None:
        self._pipeline = pipeline
        self._runtimes = runtimes
        self._authenticator = authenticator
        self._capture = capture

    async def answer(self, endpoint: Endpoint, body: bytes, headers: Mapping[str, str], client_host: str | None,
                     record: RequestRecord) -> Reply:
        """The reply to one request. The caller watches for the client leaving (and cancels this)."""
        record.endpoint = endpoint
        caller = await self._authenticator.identify(headers, client_host)
        if caller.key is not None:
            record.key_id = caller.key.id
        inference = decode_inference_request(endpoint, body)
        reply = await self._pipeline.answer(inference, record, caller, headers.get("cache-control"))
        capture = self._capture
        if capture is not None:
            reply = capture.wrap(reply, request_body=inference.body, record=record, caller=caller, endpoint=endpoint,
                                 opted_in=capture.wants(caller, self._runtimes.current.catalog, record))
        return reply
