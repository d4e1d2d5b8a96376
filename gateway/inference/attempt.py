"""One try of a request on one worker: send it in the worker's protocol, then read the whole answer or
hand back the relay of its stream. Which worker, whether to try again and where the reply's headers
come from is the chain's business (`gateway.inference.forwarder`).

A worker's in-flight count covers the try from the send until the answer is read, or until the stream
ends: then its slot is released (to the next request waiting for one, if any). Its prefilling count
covers the same try only until the stream's first content (a whole answer: until it is read), so
least_outstanding can tell a queue still waiting for prefill from requests decoding.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

from gateway.errors import GatewayError, UpstreamError
from gateway.inference.lifecycle import Lifecycle
from gateway.inference.worker_slots import WorkerSlots
from gateway.observability.metrics import GatewayMetrics
from gateway.observability.request_record import RequestRecord
from gateway.protocols.base import StreamRelay, WorkerProtocol
from gateway.surfaces.request import InferenceRequest
from gateway.upstream.client import WorkerClient
from gateway.upstream.sse_relay import StreamOutcome
from gateway.upstream.stream_connection import UpstreamStream
from gateway.upstream.token_usage import Usage, checked_native_usage, checked_usage
from gateway.workers.active_catalog import ActiveCatalog
from gateway.workers.pool import Placement, WorkerState
from routing.model_choice import ModelChoice


class Closable(Protocol):
    """A worker's open response (ours, or aiohttp's for an upload's answer)."""

    def close(self) -> None: ...


if TYPE_CHECKING:
    from gateway.observability.tracing import AttemptTrace, RequestTrace


@dataclass(slots=True)
class Reply:
    """The answer to send: a whole JSON body, or a stream of SSE bytes."""

    headers: dict[str, str]
    body: bytes = b""
    stream: AsyncIterator[bytes] | None = None
    usage: Usage | None = None
    """A whole answer's `usage`, as the worker reported it."""
    native: bool = False
    """A worker that serves the request's (translating) surface natively answered it in that surface's
    shape: nothing to translate back, nothing for the cache (it keeps OpenAI's shapes)."""
    abandon: Callable[[], None] | None = None
    """For a stream: ends it as a client that left would, for a caller dropping the reply before its first
    chunk was asked for. A generator never started runs no `finally`, so its worker's in-flight count,
    the limits' reservation and the drain's count of open streams would stay taken; once the stream has
    ended (or ends), this does nothing."""


StreamEnd = Callable[[StreamOutcome, Usage, bool], None]
"""Called when a relayed stream ends: its outcome, the tokens it used (reported, else counted), and
whether the model first chosen answered it (not a fallback)."""


@dataclass(slots=True)
class Call:
    """One request on its way along the chain: what was asked and where the answer goes, then its tries
    so far (every worker tried, the last failure, the deadline set by the first try)."""

    runtime: ActiveCatalog
    request: InferenceRequest
    record: RequestRecord
    choice: ModelChoice
    client_wants_usage: bool
    on_stream_end: StreamEnd
    capture: list[bytes] | None
    """A stream's data payloads are collected in it (for the cache)."""
    tried: set[str] = field(default_factory=set)
    unable: frozenset[str] = frozenset()
    """Workers whose protocol does not serve the request's surface (never tried), or, for a translating
    surface some workers serve natively, the workers that would need the translation (tried only when
    no native one can be)."""
    incapable: frozenset[str] = frozenset()
    """Of `unable`, the workers that cannot serve the request even translated."""
    attempts: int = 0
    last_error: GatewayError | None = None
    deadline: float | None = None
    """The loop time by which the request must be answered, from the first worker's timeouts."""

    def start(self, attempt: Attempt) -> bool:
        """Count `attempt` as made (on the record too); True when it is a retry."""
        self.attempts += 1
        record = self.record
        record.attempts, record.worker, record.model = self.attempts, attempt.placement.name, attempt.model
        self.tried.add(attempt.placement.name)
        return self.attempts > 1


@dataclass(slots=True)
class Attempt:
    """One try of a call: the model tried (the chosen one or a fallback), the worker and its protocol, and
    the time limits the try runs under."""

    call: Call
    model: str
    placement: Placement
    protocol: WorkerProtocol
    deadline: float
    first_byte: float
    idle: float
    slot_held: bool
    """The worker's in-flight count already includes this try (a slot the request waited for)."""
    native: bool = False
    """The worker serves the request's translating surface itself: it is sent the client's request."""


class AttemptRunner:
    def __init__(self, client: WorkerClient, lifecycle: Lifecycle, slots: WorkerSlots, metrics: GatewayMetrics) -> None:
        self._client = client
        self._lifecycle = lifecycle
        self._slots = slots
        self._metrics = metrics

    async def run(self, attempt: Attempt) -> Reply:
        """The worker's answer: read whole, or a stream to relay (which releases the slot when it ends).
        Raises the worker's failure before the first byte, for the chain to retry elsewhere or not."""
        placement, protocol, request = attempt.placement, attempt.protocol, attempt.call.request
        state = placement.state
        try:
            path, payload = (protocol.native_request if attempt.native else protocol.request)(request, placement)
        except BaseException:
            if attempt.slot_held:
                self.release(state)
            raise
        record = attempt.call.record
        headers = request.worker_headers if attempt.native else None
        traced = None if record.trace is None else traced_attempt(record.trace, attempt)
        if traced is not None:
            headers = traced.worker_headers(headers)
        wait = min(attempt.first_byte, attempt.deadline - asyncio.get_running_loop().time())
        if not attempt.slot_held:
            state.in_flight += 1
        state.prefilling += 1  # until its first token (a stream's), or until it ends
        handed_to_stream = False
        began = time.perf_counter()
        try:
            if not request.stream:
                response = await self._client.send(placement.target, path, payload, record.request_id, wait=wait,
                                                   rejection=protocol.rejection, headers=headers)
                body = await self._client.read_body(response, placement.name, wait)
                reply = self._whole(attempt, body)
                if traced is not None:
                    traced.answered(reply.body)
                return reply
            stream = await self._client.open_stream(
                placement.target, path, payload, record.request_id, wait=wait, rejection=protocol.rejection,
                close_connection=protocol.closes_connection_after_stream, headers=headers)
            reply = self._stream(attempt, stream, traced)
            handed_to_stream = True
            return reply
        except BaseException as exc:
            if traced is not None:
                traced.failed(exc)
            raise
        finally:
            record.upstream_s += time.perf_counter() - began
            if not handed_to_stream:
                state.prefilling -= 1
                self.release(state)

    def release(self, state: WorkerState) -> None:
        if state.spec.max_concurrent is None:
            state.in_flight -= 1
        else:
            self._slots.release(state)  # to the next request in line, if one waits

    @staticmethod
    def _whole(attempt: Attempt, body: bytes) -> Reply:
        placement = attempt.placement
        if attempt.native:
            return _native_whole(placement.name, body)
        body = attempt.protocol.answer(attempt.call.request, placement, body, attempt.call.record.request_id)
        try:
            usage = checked_usage(body)
        except ValueError as exc:
            raise UpstreamError(f"worker {placement.name!r} answered 200 with a body that is not a JSON "
                                f"object ({exc})", code="invalid_upstream_answer") from None
        return Reply(headers={}, body=body, usage=usage)

    def _stream(self, attempt: Attempt, response: UpstreamStream, traced: AttemptTrace | None) -> Reply:
        call, placement = attempt.call, attempt.placement
        request, record, on_stream_end, state = call.request, call.record, call.on_stream_end, placement.state
        prompt_estimate = request.surface.prompt_tokens_estimate(request.body)
        first_choice = attempt.model == call.choice.model
        prefilling = True
        streamed = None if traced is None else traced.stream()
        ended = False

        def first_token() -> None:
            nonlocal prefilling
            prefilling = False
            state.prefilling -= 1
            if streamed is not None:
                streamed.first_token()

        def finished(outcome: StreamOutcome) -> None:
            nonlocal ended
            if ended:
                return
            ended = True
            if prefilling:
                state.prefilling -= 1
            self.release(state)
            self._lifecycle.stream_ended(cutoff)
            record.first_token = outcome.first_content_at
            record.client_disconnected = outcome.client_disconnected
            if outcome.error is not None:
                record.error = outcome.error.error_code
                if isinstance(outcome.error, UpstreamError):  # the worker broke the stream (not the drain)
                    self._metrics.upstream_errors.labels(placement.name, outcome.error.error_code or "").inc()
            usage = Usage.from_dict(outcome.usage)
            if usage is None:  # the client left first: what was streamed
                usage = Usage(prompt_estimate, outcome.content_chunks, prompt_estimate + outcome.content_chunks)
            record.tokens_counted = outcome.usage is None or outcome.usage_counted_by_gateway
            record.prompt_tokens, record.completion_tokens = usage.prompt_tokens, usage.completion_tokens
            if streamed is not None:
                streamed.ended(completed=outcome.completed, error=outcome.error, chunks=outcome.chunks,
                               client_disconnected=outcome.client_disconnected, last=outcome.last,
                               input_tokens=usage.prompt_tokens, output_tokens=usage.completion_tokens)
            on_stream_end(outcome, usage, first_choice)

        if call.capture is not None:
            call.capture.clear()  # a retried attempt starts over
        cutoff = self._lifecycle.stream_started()
        relay = StreamRelay(
            worker_name=placement.name, upstream_model=placement.upstream_model, endpoint=request.endpoint,
            request_id=record.request_id, idle_timeout=attempt.idle, deadline=attempt.deadline,
            client_wants_usage=call.client_wants_usage, prompt_tokens_estimate=prompt_estimate, on_end=finished,
            capture=call.capture, cutoff=cutoff, tap=request.tap, on_first=first_token)
        abandon = abandoning(response, finished)
        if attempt.native:
            return Reply(headers={}, stream=attempt.protocol.native_relay(response, relay, request), native=True,
                         abandon=abandon)
        return Reply(headers={}, stream=attempt.protocol.relay(response, relay), abandon=abandon)


def abandoning(response: Closable, finished: Callable[[StreamOutcome], None]) -> Callable[[], None]:
    """`Reply.abandon` for a relay of `response` whose end is `finished` (which must do nothing the
    second time): the worker's connection closed, the stream ended as the client's leaving."""

    def abandon() -> None:
        response.close()
        finished(StreamOutcome(client_disconnected=True))

    return abandon


def traced_attempt(trace: RequestTrace, attempt: Attempt) -> AttemptTrace:
    """The span of `attempt` (tracing is on)."""
    call, placement = attempt.call, attempt.placement
    spec = placement.state.spec
    return trace.start_attempt(number=call.attempts, model=attempt.model, chosen=call.choice.model,
                               worker=placement.name, url=spec.url, kind=spec.kind,
                               upstream_model=placement.upstream_model, endpoint=call.request.endpoint,
                               body=call.request.body)


def _native_whole(worker_name: str, body: bytes) -> Reply:
    """A native worker's whole answer (Anthropic's or Responses' usage names: `input_tokens`, ...)."""
    try:
        usage = checked_native_usage(body)
    except ValueError as exc:
        raise UpstreamError(f"worker {worker_name!r} answered 200 with a body that is not a JSON "
                            f"object ({exc})", code="invalid_upstream_answer") from None
    return Reply(headers={}, body=body, usage=usage, native=True)
