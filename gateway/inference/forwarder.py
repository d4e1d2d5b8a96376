"""Sending one admitted request to a worker of its model, in the worker's own protocol (OpenAI-compatible
or Ollama-native), and handing back its answer, whole or as a relay of its stream.

Retries happen only before the first byte reaches the client, each on another worker, with jittered
backoff, inside the request's deadline and the retry budget; then the model's fallbacks are tried.
A full worker (503, 429) is retried elsewhere without counting as a failure of that worker.

Workers with `max_concurrent` are skipped while full; when every worker of the model and of its fallbacks
is full, the request waits in the model's queue for the next freed slot (`gateway.inference.worker_slots`). At the drain
deadline, a request still waiting for its answer gets 503 `shutting_down` and open streams are cut
(`gateway.inference.lifecycle`).
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass

import msgspec

from gateway.errors import (
    GatewayError,
    NoWorkerAvailable,
    UpstreamError,
    UpstreamTimeout,
    WorkerRejected,
    is_retryable,
)
from gateway.inference.lifecycle import Lifecycle
from gateway.inference.worker_slots import WorkerSlots
from gateway.observability.metrics import GatewayMetrics
from gateway.observability.request_record import RequestRecord
from gateway.surfaces.request import InferenceRequest
from gateway.upstream.client import WorkerClient
from gateway.upstream.ndjson_relay import relay_ndjson
from gateway.upstream.ollama_translation import from_ollama, to_ollama
from gateway.upstream.sse_relay import StreamOutcome, relay_sse
from gateway.upstream.usage import Usage, checked_usage
from gateway.workers.active_catalog import Runtime
from gateway.workers.pool import Placement, WorkerState
from routing.model_choice import ModelChoice
from routing.retry_budget import RetryBudget, backoff_s
from routing.snapshot import RequestKey

_encode = msgspec.json.Encoder().encode


@dataclass(slots=True)
class Reply:
    """The answer to send: a whole JSON body, or a stream of SSE bytes."""

    headers: dict[str, str]
    body: bytes = b""
    stream: AsyncIterator[bytes] | None = None
    usage: Usage | None = None
    """A whole answer's `usage`, as the worker reported it."""


StreamEnd = Callable[[StreamOutcome, Usage, bool], None]
"""Called when a relayed stream ends: its outcome, the tokens it used (reported, else counted), and
whether the model first chosen answered it (not a fallback)."""


def request_key(request: InferenceRequest, model: str) -> RequestKey:
    return RequestKey(model=model, prompt=request.surface.conversation(request.body), session=request.session_key())


def _is_full(error: GatewayError) -> bool:
    return isinstance(error, WorkerRejected) and error.status_code() in (429, 503)


class Forwarder:
    def __init__(self, client: WorkerClient, metrics: GatewayMetrics, *, jitter_seed: int | None = None,
                 lifecycle: Lifecycle | None = None) -> None:
        self._client = client
        self._metrics = metrics
        self._lifecycle = lifecycle or Lifecycle()
        self._slots = WorkerSlots(metrics)
        self._rng = random.Random(jitter_seed)  # noqa: S311 (backoff jitter, not a secret)
        self._active = 0
        self._retrying = 0

    async def forward(self, runtime: Runtime, request: InferenceRequest, record: RequestRecord, choice: ModelChoice,
                      *, on_stream_end: StreamEnd, capture: list[bytes] | None) -> Reply:
        """`capture`: a stream's data payloads are collected in it (for the cache)."""
        client_wants_usage = request.wants_usage
        if request.stream:
            # Always ask for usage, so accounting never depends on the client's choice.
            options = request.body.get("stream_options")
            request.body["stream_options"] = {**options, "include_usage": True} if isinstance(options, dict) \
                else {"include_usage": True}
        lifecycle = self._lifecycle
        task = lifecycle.call_started()
        self._active += 1
        try:
            return await self._try_chain(runtime, request, record, choice, client_wants_usage, on_stream_end,
                                         capture)
        except asyncio.CancelledError:
            if (stopped := lifecycle.was_stopped(task)) is not None:
                raise stopped from None
            raise
        finally:
            self._active -= 1
            lifecycle.call_ended(task)

    async def _try_chain(self, runtime: Runtime, request: InferenceRequest, record: RequestRecord,
                         choice: ModelChoice, client_wants_usage: bool, on_stream_end: StreamEnd,
                         capture: list[bytes] | None, held: Placement | None = None) -> Reply:
        """`held`: a slot of `choice.model`'s that the request waited for, taken by the first attempt."""
        loop = asyncio.get_running_loop()
        pool, retries, metrics = runtime.pool, runtime.catalog.retries, self._metrics
        limited = self._slots.limited_models(runtime)
        budget = RetryBudget(ratio=retries.budget_ratio, minimum=retries.budget_minimum)
        tried: set[str] = set()
        last_error: GatewayError | None = None
        deadline: float | None = None
        attempts = 0
        for model in (choice.model, *choice.fallbacks):
            key = request_key(request, model)
            while attempts < retries.max_attempts:
                now = loop.time()
                slot_held = held is not None
                if held is None:
                    busy = tried if model not in limited else tried | self._slots.full(pool, model)
                    placement = pool.pick(model, key, now, exclude=busy, sticky=request.session is not None)
                else:
                    placement, held = held, None
                if placement is None:
                    break
                timeouts = runtime.timeouts_for(model, placement.state.spec.timeouts)
                if deadline is None:
                    deadline = now + timeouts.total
                if attempts > 0:
                    if not budget.allows(self._active, self._retrying):
                        assert last_error is not None
                        raise last_error
                    await asyncio.sleep(backoff_s(attempts - 1, self._rng, retries.backoff_base,
                                                  retries.backoff_cap))
                    if loop.time() >= deadline:
                        raise UpstreamTimeout("The request deadline passed while retrying.")
                    metrics.retries.labels(model).inc()
                attempts += 1
                record.attempts, record.worker, record.model = attempts, placement.name, model
                tried.add(placement.name)
                if attempts > 1:
                    self._retrying += 1
                try:
                    reply = await self._attempt(request, record, placement, deadline, timeouts.first_byte,
                                                timeouts.idle, client_wants_usage, model == choice.model,
                                                on_stream_end, capture, slot_held)
                except GatewayError as exc:
                    if not is_retryable(exc):
                        raise
                    metrics.upstream_errors.labels(placement.name, exc.error_code or "").inc()
                    if not _is_full(exc) and pool.outlier.record_failure(placement.name, loop.time()):
                        metrics.ejections.labels(placement.name).inc()
                    last_error = exc
                    continue
                finally:
                    if attempts > 1:
                        self._retrying -= 1
                pool.outlier.record_success(placement.name, loop.time())
                record.model = model
                reply.headers.update({"x-gateway-model": model, "x-gateway-route": choice.route,
                                      "x-gateway-worker": placement.name})
                if model != choice.model:
                    record.fallback_from = choice.model
                    metrics.fallbacks.labels(choice.model, model).inc()
                    reply.headers["x-gateway-fallback-from"] = choice.model
                if attempts > 1:
                    reply.headers["x-gateway-attempts"] = str(attempts)
                return reply
        if last_error is not None:
            raise last_error
        if attempts == 0 and choice.model in limited and self._slots.full(pool, choice.model):
            # Every worker with room is taken: wait for a slot, then start over with it (or without, if the
            # freed worker no longer serves the model).
            slot = await self._slots.wait(runtime, choice.model)
            return await self._try_chain(runtime, request, record, choice, client_wants_usage, on_stream_end,
                                         capture, held=slot)
        raise NoWorkerAvailable(f"No worker is serving the model {choice.model!r} right now.")

    async def _attempt(self, request: InferenceRequest, record: RequestRecord, placement: Placement,
                       deadline: float, first_byte: float, idle: float, client_wants_usage: bool, first_choice: bool,
                       on_stream_end: StreamEnd, capture: list[bytes] | None, slot_held: bool = False) -> Reply:
        """`slot_held`: the worker's in-flight count already includes this request (a slot from the queue)."""
        state = placement.state
        ollama = state.spec.kind == "ollama"
        try:
            if ollama:  # Ollama's native API (raises InvalidRequest for what it cannot do)
                path, payload = to_ollama(request.endpoint, request.body, upstream_model=placement.upstream_model,
                                          num_ctx=placement.num_ctx)
            else:
                request.body["model"] = placement.upstream_model
                path, payload = "/" + request.endpoint, _encode(request.body)
        except BaseException:
            if slot_held:
                self._release(state)
            raise
        wait = min(first_byte, deadline - asyncio.get_running_loop().time())
        if not slot_held:
            state.in_flight += 1
        handed_to_stream = False
        began = time.perf_counter()
        try:
            response = await self._client.send(placement.target, path, payload, record.request_id, wait=wait)
            if not request.stream:
                body = await self._client.read_body(response, placement.name, wait)
                if ollama:
                    encoding = request.body.get("encoding_format")
                    body = from_ollama(request.endpoint, body, model=placement.upstream_model,
                                       request_id=record.request_id,
                                       encoding_format=encoding if isinstance(encoding, str) else None,
                                       worker_name=placement.name)
                try:
                    usage = checked_usage(body)
                except ValueError as exc:
                    raise UpstreamError(f"worker {placement.name!r} answered 200 with a body that is not a JSON "
                                        f"object ({exc})", code="invalid_upstream_answer") from None
                return Reply(headers={}, body=body, usage=usage)
            prompt_estimate = request.surface.prompt_tokens_estimate(request.body)

            def finished(outcome: StreamOutcome) -> None:
                self._release(state)
                self._lifecycle.stream_ended(cutoff)
                record.first_token = outcome.first_content_at
                record.client_disconnected = outcome.client_disconnected
                if outcome.error is not None:
                    record.error = outcome.error.error_code
                usage = Usage.from_dict(outcome.usage)
                if usage is None:  # the client left first: what was streamed
                    usage = Usage(prompt_estimate, outcome.content_chunks, prompt_estimate + outcome.content_chunks)
                record.tokens_counted = outcome.usage is None or outcome.usage_counted_by_gateway
                record.prompt_tokens, record.completion_tokens = usage.prompt_tokens, usage.completion_tokens
                on_stream_end(outcome, usage, first_choice)

            if capture is not None:
                capture.clear()  # a retried attempt starts over
            cutoff = self._lifecycle.stream_started()
            if ollama:
                stream = relay_ndjson(response, worker_name=placement.name, idle_timeout=idle, deadline=deadline,
                                      client_wants_usage=client_wants_usage, prompt_tokens_estimate=prompt_estimate,
                                      on_end=finished, capture=capture, model=placement.upstream_model,
                                      endpoint=request.endpoint, request_id=record.request_id, cutoff=cutoff)
            else:
                stream = relay_sse(response, worker_name=placement.name, idle_timeout=idle, deadline=deadline,
                                   client_wants_usage=client_wants_usage, prompt_tokens_estimate=prompt_estimate,
                                   on_end=finished, capture=capture, cutoff=cutoff)
            handed_to_stream = True
            return Reply(headers={}, stream=stream)
        finally:
            record.upstream_s += time.perf_counter() - began
            if not handed_to_stream:
                self._release(state)

    def _release(self, state: WorkerState) -> None:
        if state.spec.max_concurrent is None:
            state.in_flight -= 1
        else:
            self._slots.release(state)  # to the next request in line, if one waits
