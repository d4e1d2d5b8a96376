"""One inference request, from decoded body to the worker's answer: check the caller may use the
model, admit it under its limits, choose a worker, rewrite `model` to the worker's own id, forward,
and relay the answer (whole or streamed); then settle its tokens.

Retries happen only before the first byte reaches the client, each on another worker, with jittered
backoff, inside the request's deadline and the retry budget; then the model's fallbacks are tried.
A full worker (503, 429) is retried elsewhere without counting as a failure of that worker.
"""

from __future__ import annotations

import asyncio
import dataclasses
import random
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass

import msgspec

from gateway.admission import AdmissionControl, Ticket
from gateway.authentication import Caller
from gateway.cache.answers import CachedAnswer, as_json, as_sse
from gateway.cache.plan import CachePlan, plan_for
from gateway.cache.response_cache import ResponseCache, Role
from gateway.errors import (
    GatewayError,
    ModelNotFound,
    NoWorkerAvailable,
    PermissionDenied,
    RateLimited,
    UpstreamTimeout,
    WorkerRejected,
    is_retryable,
)
from gateway.inference_request import InferenceRequest
from gateway.observability.metrics import GatewayMetrics
from gateway.observability.request_record import RequestRecord
from gateway.runtime import Runtime, RuntimeHolder
from gateway.upstream.ndjson_relay import relay_ndjson
from gateway.upstream.ollama_translation import from_ollama, to_ollama
from gateway.upstream.openai_compatible import OpenAICompatibleClient
from gateway.upstream.sse_relay import StreamOutcome, relay_sse
from gateway.usage import Usage, usage_in_body
from gateway.worker_pool import Placement
from routing.model_choice import ModelChoice, UnknownModel
from routing.retry_budget import RetryBudget, backoff_s
from routing.snapshot import RequestKey

_encode = msgspec.json.Encoder().encode


@dataclass(slots=True)
class Reply:
    """The answer to send: a whole JSON body, or a stream of SSE bytes."""

    headers: dict[str, str]
    body: bytes = b""
    stream: AsyncIterator[bytes] | None = None


def choose_model(runtime: Runtime, request: InferenceRequest) -> ModelChoice:
    try:
        return runtime.chooser.choose(request.requested_model, request.routing_text(runtime.chooser.match_on))
    except UnknownModel as exc:
        if exc.requested is None:
            raise ModelNotFound("No `model` was given and the catalog has no default model.",
                                param="model") from None
        raise ModelNotFound(f"The model `{exc.requested}` does not exist or you do not have access "
                            "to it.", param="model") from None


def request_key(request: InferenceRequest, model: str) -> RequestKey:
    return RequestKey(model=model, prompt=request.conversation(), session=request.session_key())


@dataclass(frozen=True, slots=True)
class _StreamCache:
    """What a stream's end needs to fill the cache: the plan, and the chunks captured on the way."""

    plan: CachePlan | None
    refresh: bool
    capture: list[bytes] | None
    model: str


def _is_full(error: GatewayError) -> bool:
    return isinstance(error, WorkerRejected) and error.status_code() in (429, 503)


class InferencePipeline:
    def __init__(self, runtimes: RuntimeHolder, client: OpenAICompatibleClient, admission: AdmissionControl,
                 metrics: GatewayMetrics, *, cache: ResponseCache | None = None, seed: int | None = None):
        self._runtimes = runtimes
        self._cache = cache
        self._filling: set[asyncio.Task[None]] = set()
        self._client = client
        self._admission = admission
        self._metrics = metrics
        self._rng = random.Random(seed)  # noqa: S311 (backoff jitter, not a secret)
        self._active = 0
        self._retrying = 0

    async def forward(self, request: InferenceRequest, record: RequestRecord, caller: Caller,
                      cache_control: str | None = None) -> Reply:
        """Check, answer from the cache or admit, route, forward. The reply carries the routing, cache
        and rate-limit headers. Cached answers cost no worker and are not charged to limits."""
        runtime = self._runtimes.current
        choice = choose_model(runtime, request)
        record.model, record.route, record.stream = choice.model, choice.route, request.stream
        if not caller.may_use(choice.model):
            raise PermissionDenied(f"This API key may not use the model `{choice.model}`.", param="model",
                                   code="model_not_allowed")
        allowed = tuple(m for m in choice.fallbacks if caller.may_use(m))
        if allowed != choice.fallbacks:
            choice = dataclasses.replace(choice, fallbacks=allowed)
        cache = self._cache
        plan = None if cache is None else plan_for(
            request, choice.model, choice.cache, caller.tenant, default_ttl=cache.default_ttl,
            cache_control=cache_control, may_bypass=caller.may_bypass_cache)
        if cache is None or plan is None:
            if cache is not None:
                cache.count("bypass")
                record.cache = "bypass"
            return await self._admitted(runtime, request, record, caller, choice, None)
        if not plan.lookup:  # Cache-Control: no-cache: a fresh answer, which then replaces the entry
            cache.count("bypass")
            record.cache = "bypass"
            return await self._admitted(runtime, request, record, caller, choice, plan, refresh=True)
        answer = await cache.lookup(plan)
        if answer is not None:
            cache.count("hit")
            return self._replay(answer, request, record, "hit")
        turn = await cache.turn(plan)
        if turn.role is Role.FOLLOWER_SERVED and turn.answer is not None:
            cache.count("coalesced")
            return self._replay(turn.answer, request, record, "coalesced")
        cache.count("miss")
        record.cache = "miss"
        return await self._admitted(runtime, request, record, caller, choice, plan)

    def _replay(self, answer: CachedAnswer, request: InferenceRequest, record: RequestRecord, result: str) -> Reply:
        record.cache = result
        headers = {"x-gateway-cache": result, "x-gateway-model": record.model or "",
                   "x-gateway-route": record.route or ""}
        if not request.stream:
            return Reply(headers=headers, body=as_json(answer))
        events = as_sse(answer, include_usage=request.wants_usage)

        async def replay() -> AsyncIterator[bytes]:
            for event in events:
                yield event

        return Reply(headers=headers, stream=replay())

    def _fill_later(self, plan: CachePlan, answer: CachedAnswer | None, refresh: bool) -> None:
        assert self._cache is not None
        task = asyncio.create_task(self._cache.refresh(plan, answer) if refresh else self._cache.fill(plan, answer))
        self._filling.add(task)
        task.add_done_callback(self._filling.discard)

    async def _admitted(self, runtime: Runtime, request: InferenceRequest, record: RequestRecord, caller: Caller,
                        choice: ModelChoice, plan: CachePlan | None, *, refresh: bool = False) -> Reply:
        try:
            ticket = await self._admission.admit(caller, request)
        except RateLimited as exc:
            self._metrics.rate_limited.labels(exc.error_code or "").inc()
            if plan is not None and not refresh:
                self._fill_later(plan, None, refresh)  # let waiting requests go
            raise
        capture: list[bytes] | None = [] if plan is not None and request.stream else None
        try:
            reply = await self._forward(runtime, request, record, choice, ticket, plan, refresh, capture)
        except BaseException:
            self._admission.settle(ticket, 0)  # nothing was used
            if plan is not None and not refresh:
                self._fill_later(plan, None, refresh)
            raise
        if ticket is not None:
            reply.headers.update(ticket.headers)
        if record.cache is not None:
            reply.headers["x-gateway-cache"] = record.cache
        if reply.stream is None:
            usage = usage_in_body(reply.body)
            if usage is not None:
                record.prompt_tokens, record.completion_tokens = usage.prompt_tokens, usage.completion_tokens
            self._admission.settle(ticket, usage.total_tokens if usage else 0)
            if plan is not None:
                answered_by_choice = record.model == choice.model
                self._fill_later(plan, CachedAnswer(request.endpoint, body=reply.body) if answered_by_choice
                                 else None, refresh)
        return reply

    async def _forward(self, runtime: Runtime, request: InferenceRequest, record: RequestRecord,
                       choice: ModelChoice, ticket: Ticket | None, plan: CachePlan | None, refresh: bool,
                       capture: list[bytes] | None) -> Reply:
        client_wants_usage = request.wants_usage
        if request.stream:
            # Always ask for usage, so accounting never depends on the client's choice.
            options = request.body.get("stream_options")
            request.body["stream_options"] = {**options, "include_usage": True} if isinstance(options, dict) \
                else {"include_usage": True}
        self._active += 1
        try:
            return await self._try_chain(runtime, request, record, choice, client_wants_usage, ticket,
                                         _StreamCache(plan, refresh, capture, choice.model))
        finally:
            self._active -= 1

    async def _try_chain(self, runtime: Runtime, request: InferenceRequest, record: RequestRecord,
                         choice: ModelChoice, client_wants_usage: bool, ticket: Ticket | None,
                         stream_cache: _StreamCache) -> Reply:
        loop = asyncio.get_running_loop()
        pool, retries, metrics = runtime.pool, runtime.catalog.retries, self._metrics
        budget = RetryBudget(ratio=retries.budget_ratio, minimum=retries.budget_minimum)
        tried: set[str] = set()
        last_error: GatewayError | None = None
        deadline: float | None = None
        attempts = 0
        for model in (choice.model, *choice.fallbacks):
            key = request_key(request, model)
            while attempts < retries.max_attempts:
                now = loop.time()
                placement = pool.pick(model, key, now, exclude=tried, sticky=request.session is not None)
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
                                                timeouts.idle, client_wants_usage, ticket, stream_cache)
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
        raise NoWorkerAvailable(f"No worker is serving the model {choice.model!r} right now.")

    async def _attempt(self, request: InferenceRequest, record: RequestRecord, placement: Placement,
                       deadline: float, first_byte: float, idle: float, client_wants_usage: bool,
                       ticket: Ticket | None, stream_cache: _StreamCache) -> Reply:
        state = placement.state
        ollama = state.spec.kind == "ollama"
        if ollama:  # Ollama's native API (raises InvalidRequest for what it cannot do)
            path, payload = to_ollama(request.endpoint, request.body, upstream_model=placement.upstream_model,
                                      num_ctx=placement.num_ctx)
        else:
            request.body["model"] = placement.upstream_model
            path, payload = "/" + request.endpoint, _encode(request.body)
        wait = min(first_byte, deadline - asyncio.get_running_loop().time())
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
                return Reply(headers={}, body=body)
            prompt_estimate = request.prompt_tokens_estimate()

            def finished(outcome: StreamOutcome) -> None:
                state.in_flight -= 1
                record.first_token = outcome.first_content_at
                record.client_disconnected = outcome.client_disconnected
                if outcome.error is not None:
                    record.error = outcome.error.error_code
                usage = Usage.from_dict(outcome.usage)
                if usage is None:  # the client left first: what was streamed
                    usage = Usage(prompt_estimate, outcome.content_chunks, prompt_estimate + outcome.content_chunks)
                record.tokens_counted = outcome.usage is None or outcome.usage_counted_by_gateway
                record.prompt_tokens, record.completion_tokens = usage.prompt_tokens, usage.completion_tokens
                self._admission.settle(ticket, usage.total_tokens)
                plan, capture = stream_cache.plan, stream_cache.capture
                if plan is not None:
                    whole = outcome.completed and outcome.error is None and capture is not None \
                        and placement_model == stream_cache.model
                    answer = CachedAnswer(request.endpoint, chunks=capture) if whole and capture is not None else None
                    self._fill_later(plan, answer, stream_cache.refresh)

            placement_model = record.model
            if stream_cache.capture is not None:
                stream_cache.capture.clear()  # a retried attempt starts over
            if ollama:
                stream = relay_ndjson(response, worker_name=placement.name, idle_timeout=idle, deadline=deadline,
                                      client_wants_usage=client_wants_usage, prompt_tokens_estimate=prompt_estimate,
                                      on_end=finished, capture=stream_cache.capture, model=placement.upstream_model,
                                      endpoint=request.endpoint, request_id=record.request_id)
            else:
                stream = relay_sse(response, worker_name=placement.name, idle_timeout=idle, deadline=deadline,
                                   client_wants_usage=client_wants_usage, prompt_tokens_estimate=prompt_estimate,
                                   on_end=finished, capture=stream_cache.capture)
            handed_to_stream = True
            return Reply(headers={}, stream=stream)
        finally:
            record.upstream_s += time.perf_counter() - began
            if not handed_to_stream:
                state.in_flight -= 1
