"""The one handler every inference request enters, apart from any web framework: `/v1/*` (the plain-ASGI
fast path and its litestar routes), `/api/chat/completions` and `/api/coaching/chat` all call
`InferenceHandler.answer`, so authorization, the request record, every stage of the pipeline and
interaction capture apply to each of them the same way.

    authorize       who calls (`Authenticator.identify`), written in the record
    decode          the surface's request, or a `Turn`'s (a coaching turn: context type, kept history)
    pipeline        choose model, cache, admit, forward, settle and fill (`gateway.inference.pipeline`)
    turn ends       the turn labels the reply and keeps the answer (a stream: once it has ended)
    capture         the interaction, if the key, rule or model opted in (`InteractionCapture.wrap`); not
                    an answer a worker gave in a translating surface's own shapes (a native one)
    encode          a translating surface's answer back into its shapes (a native one: named as ours)
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Protocol

from gateway.auth.authenticator import Authenticator, Caller
from gateway.capture.interactions import InteractionCapture
from gateway.inference.forwarder import Reply
from gateway.inference.pipeline import InferencePipeline
from gateway.observability.request_record import RequestRecord
from gateway.surfaces import InferenceRequest, Surface
from gateway.workers.active_catalog import CatalogHolder


class Turn(Protocol):
    """One request of a conversation the gateway keeps (a coaching turn), wrapped around the pipeline:
    it decodes the body once the caller is known, and takes the reply before capture and the client do.
    A fresh one per request (it carries the request's state from `begin` to `end`)."""

    @property
    def label(self) -> str:
        """The request's endpoint name in the record (metrics, log line)."""

    @property
    def capture_route(self) -> str | None:
        """After `end`: the routing rule whose `capture` flag applies (the one that chose the model; None:
        no rule did, the model's flag decides)."""

    async def begin(self, body: bytes, caller: Caller) -> InferenceRequest:
        """The request to send through the pipeline."""

    async def end(self, reply: Reply, record: RequestRecord) -> None:
        """Label `reply` (headers, `record.route`) and keep its answer (a stream is replaced by one that
        keeps it once it has ended)."""


class InferenceHandler:
    def __init__(self, pipeline: InferencePipeline, runtimes: CatalogHolder, authenticator: Authenticator,
                 capture: InteractionCapture | None) -> None:
        self._pipeline = pipeline
        self._runtimes = runtimes
        self._authenticator = authenticator
        self._capture = capture

    async def answer(self, surface: Surface, body: bytes, headers: Mapping[str, str], client_host: str | None,
                     record: RequestRecord, turn: Turn | None = None) -> Reply:
        """The reply to one request of `surface` (with a `turn`, the turn decodes the body). The caller
        watches for the client leaving (and cancels this)."""
        record.endpoint = surface.name if turn is None else turn.label
        trace = record.trace
        identifying = self._authenticator.identify(headers, client_host)
        caller = await (identifying if trace is None else trace.traced("auth", identifying))
        if caller.key is not None:
            record.key_id = caller.key.id
        inference = surface.decode(body) if turn is None else await turn.begin(body, caller)
        if trace is not None:
            trace.decoded(inference.endpoint, inference.body)
        if inference.surface.native_headers:
            inference.worker_headers = {name: value for name in inference.surface.native_headers
                                        if (value := headers.get(name)) is not None}
        reply = await self._pipeline.answer(inference, record, caller, headers.get("cache-control"))
        try:
            return await self._finish(reply, inference, caller, record, turn)
        except BaseException:  # the client left while a turn was saved, say: its stream is never asked for
            if reply.abandon is not None:
                reply.abandon()
            raise

    async def _finish(self, reply: Reply, inference: InferenceRequest, caller: Caller, record: RequestRecord,
                      turn: Turn | None) -> Reply:
        """The pipeline's reply as the client gets it: its turn ended, captured, in the surface's shapes."""
        if turn is not None:
            await turn.end(reply, record)
        capture = self._capture
        if capture is not None and inference.surface.captured and not reply.native:
            route = record.route if turn is None else turn.capture_route
            opted_in = capture.wants(caller, self._runtimes.current.catalog, record, route=route)
            reply = capture.wrap(reply, request_body=inference.body, record=record, caller=caller,
                                 endpoint=inference.endpoint, opted_in=opted_in)
        surface = inference.surface
        if reply.native:  # a worker that serves the surface itself answered in its shapes
            if reply.stream is None:
                reply.body = surface.native_answer(reply.body, inference)
        elif surface.translates:  # back into the client's shapes (captured and cached as the worker's)
            if reply.stream is not None:
                reply.stream = surface.encode_stream(reply.stream, inference)
            else:
                reply.body = surface.encode_answer(reply.body, inference)
        return reply
