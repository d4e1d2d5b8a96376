"""One inference request, from decoded body to answer: choose the model, check the caller may use it,
answer from the cache (or wait for an identical request's answer), else admit it under its limits,
forward it (`gateway.inference.forwarder`: worker choice, retries, fallbacks, the worker's protocol), then settle
its tokens and fill the cache.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import AsyncIterator

import msgspec

from gateway.auth.authenticator import Caller
from gateway.cache.answers import CachedAnswer, as_json, as_sse
from gateway.cache.plan import CachePlan, plan_for
from gateway.cache.response_cache import ResponseCache, Role
from gateway.errors import (
    ModelNotFound,
    PermissionDenied,
    RateLimited,
)
from gateway.inference.admission import AdmissionControl
from gateway.inference.forwarder import Forwarder, Reply
from gateway.inference.lifecycle import Lifecycle
from gateway.observability.metrics import GatewayMetrics
from gateway.observability.request_record import RequestRecord
from gateway.surfaces.request import InferenceRequest
from gateway.upstream.client import WorkerClient
from gateway.upstream.sse_relay import StreamOutcome
from gateway.upstream.usage import Usage
from gateway.workers.active_catalog import Runtime, RuntimeHolder
from routing.model_choice import ModelChoice, UnknownModel

__all__ = ["InferencePipeline", "Reply", "choose_model"]  # Reply: re-exported for the endpoints

_encode = msgspec.json.Encoder().encode


def choose_model(runtime: Runtime, request: InferenceRequest) -> ModelChoice:
    try:
        text = request.surface.routing_text(request.body, runtime.chooser.match_on)
        return runtime.chooser.choose(request.requested_model, text)
    except UnknownModel as exc:
        if exc.requested is None:
            raise ModelNotFound("No `model` was given and the catalog has no default model.",
                                param="model") from None
        raise ModelNotFound(f"The model `{exc.requested}` does not exist or you do not have access "
                            "to it.", param="model") from None


class InferencePipeline:
    def __init__(self, runtimes: RuntimeHolder, client: WorkerClient, admission: AdmissionControl,
                 metrics: GatewayMetrics, *, cache: ResponseCache | None = None, jitter_seed: int | None = None,
                 lifecycle: Lifecycle | None = None):
        """`lifecycle`: how the process stops (the drain deadline cuts forwarded calls and streams)."""
        self._runtimes = runtimes
        self._cache = cache
        self._filling: set[asyncio.Task[None]] = set()
        self._admission = admission
        self._metrics = metrics
        self._forwarder = Forwarder(client, metrics, jitter_seed=jitter_seed, lifecycle=lifecycle)

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
            request.surface, request.body, choice.model, choice.cache, caller.tenant, default_ttl=cache.default_ttl,
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
        turn = await cache.consult(plan)
        if turn.role is Role.HIT and turn.answer is not None:
            cache.count("hit")
            return self._replay(turn.answer, request, record, "hit")
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
        if not refresh:
            self._cache.fill(plan, answer)
            return
        task = asyncio.create_task(self._cache.refresh(plan, answer))
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

        def stream_ended(outcome: StreamOutcome, usage: Usage, first_choice: bool) -> None:
            self._admission.settle(ticket, usage.total_tokens)
            if plan is not None:
                whole = outcome.completed and outcome.error is None and first_choice and capture is not None
                self._fill_later(plan, CachedAnswer(request.endpoint, chunks=capture) if whole and capture is not None
                                 else None, refresh)

        try:
            reply = await self._forwarder.forward(runtime, request, record, choice, on_stream_end=stream_ended,
                                                  capture=capture)
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
            usage = reply.usage
            if usage is not None:
                record.prompt_tokens, record.completion_tokens = usage.prompt_tokens, usage.completion_tokens
            self._admission.settle(ticket, usage.total_tokens if usage else 0)
            if plan is not None:
                answered_by_choice = record.model == choice.model
                self._fill_later(plan, CachedAnswer(request.endpoint, body=reply.body) if answered_by_choice
                                 else None, refresh)
        return reply

