"""Answering one inference request (chat, completion, embeddings), apart from any web framework: who
calls, what they ask, the pipeline's answer, captured if opted in. The litestar handlers
(`openai_api`) and the plain-ASGI hot path (`inference_asgi`) both call `InferenceHandler.answer`."""

from __future__ import annotations

from collections.abc import Mapping

from gateway.auth.authenticator import Authenticator
from gateway.capture.interactions import InteractionCapture
from gateway.inference.pipeline import InferencePipeline, Reply
from gateway.observability.request_record import RequestRecord
from gateway.surfaces import Surface
from gateway.workers.active_catalog import RuntimeHolder


class InferenceHandler:
    def __init__(self, pipeline: InferencePipeline, runtimes: RuntimeHolder, authenticator: Authenticator,
                 capture: InteractionCapture | None) -> None:
        self._pipeline = pipeline
        self._runtimes = runtimes
        self._authenticator = authenticator
        self._capture = capture

    async def answer(self, surface: Surface, body: bytes, headers: Mapping[str, str], client_host: str | None,
                     record: RequestRecord) -> Reply:
        """The reply to one request. The caller watches for the client leaving (and cancels this)."""
        record.endpoint = surface.name
        caller = await self._authenticator.identify(headers, client_host)
        if caller.key is not None:
            record.key_id = caller.key.id
        inference = surface.decode(body)
        reply = await self._pipeline.forward(inference, record, caller, headers.get("cache-control"))
        capture = self._capture
        if capture is not None and surface.captured:
            opted_in = capture.wants(caller, self._runtimes.current.catalog, record)
            reply = capture.wrap(reply, request_body=inference.body, record=record, caller=caller,
                                 endpoint=surface.name, opted_in=opted_in)
        return reply
