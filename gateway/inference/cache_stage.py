"""Stage 3 of the pipeline: answer from the response cache, or say how to fill it once answered.

A request the cache may serve (`gateway.cache.plan`: deterministic, or opted in by its rule or model) is
looked up; an entry (or the answer of an identical request already on its way, `coalesced`) is replayed
in the shape asked for, whole or as a stream, at no worker's cost and not charged to the caller's limits.
Otherwise the plan goes on with the request, and `Settlement` fills the entry (or lets the identical
requests waiting on this one go) once the answer is known.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

from gateway.auth.authenticator import Caller
from gateway.cache.answers import CachedAnswer, as_json, as_sse
from gateway.cache.plan import CachePlan, plan_for
from gateway.cache.response_cache import ResponseCache, Role
from gateway.inference.forwarder import Reply
from gateway.observability.request_record import RequestRecord
from gateway.surfaces.request import InferenceRequest
from routing.model_choice import ModelChoice


class CacheStage:
    def __init__(self, cache: ResponseCache) -> None:
        self._cache = cache

    async def consult(self, request: InferenceRequest, choice: ModelChoice, caller: Caller,
                      cache_control: str | None, record: RequestRecord) -> Reply | CachePlan | None:
        """The cached answer as a `Reply`; else the plan to fill once the worker answered (a miss, or
        `Cache-Control: no-cache`: a fresh answer replaces the entry); else None (not cacheable). The
        outcome is counted and written in `record.cache`."""
        cache = self._cache
        # A request translated without fields it has (only a native worker may answer it) is never looked up.
        plan = None if request.untranslatable is not None else plan_for(
            request.surface, request.body, choice.model, choice.cache, caller.tenant, default_ttl=cache.default_ttl,
            cache_control=cache_control, may_bypass=caller.may_bypass_cache)
        if plan is None or not plan.lookup:
            cache.count("bypass")
            record.cache = "bypass"
            return plan
        turn = await cache.consult(plan)
        if turn.role is Role.HIT and turn.answer is not None:
            cache.count("hit")
            return _replay(turn.answer, request, record, "hit")
        if turn.role is Role.FOLLOWER_SERVED and turn.answer is not None:
            cache.count("coalesced")
            return _replay(turn.answer, request, record, "coalesced")
        cache.count("miss")
        record.cache = "miss"
        return plan


def _replay(answer: CachedAnswer, request: InferenceRequest, record: RequestRecord, result: str) -> Reply:
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
