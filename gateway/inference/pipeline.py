"""The stages between a decoded, authorized request and its answer, in the order they run:

    choose model    `ModelSelection.choose`    the catalog's model, within what the caller's key allows
    cache           `CacheStage.consult`       a stored (or coalesced) answer ends the request here
    admit           `AdmissionControl.admit`   the caller's limits reserve the request's estimate
    forward         `Forwarder.forward`        a worker of the model answers (retries, fallbacks, protocol)
    settle, fill    `Settlement.settle`        the tokens used are settled, the cache entry filled

Authorizing the caller, decoding the request and capturing the interaction are the handler's
(`gateway.inference.handler`), around this. Each stage is an object built once with the app; a request
passes its parts from one to the next, so a stage is tested on its own (tests/unit/test_pipeline_stages.py).
"""

from __future__ import annotations

from gateway.auth.authenticator import Caller
from gateway.cache.answers import CachedAnswer
from gateway.cache.plan import CachePlan
from gateway.cache.response_cache import ResponseCache
from gateway.errors import RateLimited
from gateway.inference.admission import AdmissionControl
from gateway.inference.cache_stage import CacheStage
from gateway.inference.forwarder import Forwarder, Reply
from gateway.inference.lifecycle import Lifecycle
from gateway.inference.model_selection import ModelSelection
from gateway.inference.settlement import Settlement
from gateway.observability.metrics import GatewayMetrics
from gateway.observability.request_record import RequestRecord
from gateway.surfaces.request import InferenceRequest
from gateway.upstream.client import WorkerClient
from gateway.upstream.sse_relay import StreamOutcome
from gateway.upstream.token_usage import Usage
from gateway.workers.active_catalog import CatalogHolder


class InferencePipeline:
    def __init__(self, runtimes: CatalogHolder, client: WorkerClient, admission: AdmissionControl,
                 metrics: GatewayMetrics, *, cache: ResponseCache | None = None, jitter_seed: int | None = None,
                 lifecycle: Lifecycle | None = None):
        """`cache`: None when the response cache is off. `lifecycle`: how the process stops (the drain
        deadline cuts forwarded calls and streams)."""
        self._runtimes = runtimes
        self._selection = ModelSelection()
        self._cache = None if cache is None else CacheStage(cache)
        self._admission = admission
        self._forwarder = Forwarder(client, metrics, jitter_seed=jitter_seed, lifecycle=lifecycle)
        self._settlement = Settlement(admission, cache)

    async def answer(self, request: InferenceRequest, record: RequestRecord, caller: Caller,
                     cache_control: str | None = None) -> Reply:
        """The reply, carrying the routing, cache and rate-limit headers. Cached answers cost no worker and
        are not charged to limits."""
        runtime = self._runtimes.current
        choice = self._selection.choose(runtime, request, caller, record)
        plan: CachePlan | None = None
        trace = record.trace
        if self._cache is not None:
            consulting = self._cache.consult(request, choice, caller, cache_control, record)
            consulted = await (consulting if trace is None else trace.traced(
                "cache lookup", consulting, lambda: {"gateway.cache.result": record.cache or ""}))
            if isinstance(consulted, Reply):
                return consulted
            plan = consulted
        settle = self._settlement.settle
        try:
            ticket = None
            if caller.limited:
                admitting = self._admission.admit(caller, request)
                ticket = await (admitting if trace is None else trace.traced("admission", admitting))
        except RateLimited:
            settle(None, plan, 0, None)  # the requests waiting on this one's answer go on their own
            raise
        chunks: list[bytes] | None = [] if plan is not None and request.stream else None

        endpoint = request.endpoint  # (not the request: its body would be kept for as long as the stream lasts)

        def stream_ended(outcome: StreamOutcome, usage: Usage, first_choice: bool) -> None:
            whole = (chunks is not None and first_choice and outcome.completed and outcome.error is None
                     and not outcome.native)
            settle(ticket, plan, usage.total_tokens, CachedAnswer(endpoint, chunks=chunks) if whole else None)

        try:
            reply = await self._forwarder.forward(runtime, request, record, choice, on_stream_end=stream_ended,
                                                  capture=chunks)
        except BaseException:
            settle(ticket, plan, 0, None)  # nothing was used
            raise
        if ticket is not None:
            reply.headers.update(ticket.headers)
        if record.cache is not None:
            reply.headers["x-gateway-cache"] = record.cache
        if reply.stream is None:
            usage = reply.usage
            if usage is not None:
                record.prompt_tokens, record.completion_tokens = usage.prompt_tokens, usage.completion_tokens
            answered_by_choice = plan is not None and record.model == choice.model and not reply.native
            settle(ticket, plan, usage.total_tokens if usage else 0,
                   CachedAnswer(request.endpoint, body=reply.body) if answered_by_choice else None)
        return reply
