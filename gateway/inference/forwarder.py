"""Sending one admitted request to a worker of its model and handing back its answer, whole or as a relay
of its stream: the chain of tries along the chosen model and its fallbacks.

Retries happen only before the first byte reaches the client, each on another worker, with jittered
backoff, inside the request's deadline and the retry budget (`gateway.inference.retries`); then the
model's fallbacks are tried. A full worker (503, 429) is retried elsewhere without counting as a failure
of that worker. Each try speaks its worker's protocol (`gateway.protocols`), looked up by the worker's
kind; one try is `gateway.inference.attempt` (`gateway.inference.upload_attempt` for a body streamed
from the client, which can be retried only while the gateway still holds what it sent).

Workers with `max_concurrent` are skipped while full; when every worker of the model and of its fallbacks
is full, the request waits in the model's queue for the next freed slot (`gateway.inference.worker_slots`). At the drain
deadline, a request still waiting for its answer gets 503 `shutting_down` and open streams are cut
(`gateway.inference.lifecycle`).
"""

from __future__ import annotations

import asyncio

from gateway.errors import GatewayError, InvalidRequest, NoWorkerAvailable, is_retryable
from gateway.inference.attempt import Attempt, AttemptRunner, Call, Reply, StreamEnd
from gateway.inference.lifecycle import Lifecycle
from gateway.inference.retries import Retries
from gateway.inference.upload_attempt import UploadAttempts
from gateway.inference.worker_slots import WorkerSlots
from gateway.observability.metrics import GatewayMetrics
from gateway.observability.request_record import RequestRecord
from gateway.protocols.registry import protocols_by_kind
from gateway.surfaces.request import InferenceRequest
from gateway.upstream.client import WorkerClient
from gateway.workers.active_catalog import ActiveCatalog
from gateway.workers.pool import Placement
from routing.model_choice import ModelChoice
from routing.snapshot import RequestKey

__all__ = ["Forwarder", "Reply", "StreamEnd", "request_key"]  # Reply, StreamEnd: re-exported for the pipeline


def request_key(request: InferenceRequest, model: str) -> RequestKey:
    return RequestKey(model=model, prompt=request.surface.conversation(request.body), session=request.session_key(),
                      body=request.body)


class Forwarder:
    def __init__(self, client: WorkerClient, metrics: GatewayMetrics, *, jitter_seed: int | None = None,
                 lifecycle: Lifecycle | None = None) -> None:
        self._metrics = metrics
        self._lifecycle = lifecycle or Lifecycle()
        self._slots = WorkerSlots(metrics)
        self._retries = Retries(metrics, jitter_seed=jitter_seed)
        self._attempts = AttemptRunner(client, self._lifecycle, self._slots, metrics)
        self._uploads = UploadAttempts(client, self._attempts, self._lifecycle)
        self._protocols = protocols_by_kind()
        self._served_by_all = frozenset.intersection(*(p.capabilities.surfaces for p in self._protocols.values()))
        """The surfaces every protocol serves: for them no worker is left out (the common case, no work)."""

    async def forward(self, runtime: ActiveCatalog, request: InferenceRequest, record: RequestRecord,
                      choice: ModelChoice, *, on_stream_end: StreamEnd, capture: list[bytes] | None) -> Reply:
        """`capture`: a stream's data payloads are collected in it (for the cache)."""
        call = Call(runtime, request, record, choice, request.wants_usage, on_stream_end, capture)
        if request.endpoint not in self._served_by_all or request.surface.native_capable:
            call.unable, call.incapable = self._unable(call)
        if request.stream:
            # Always ask for usage, so accounting never depends on the client's choice.
            options = request.body.get("stream_options")
            request.body["stream_options"] = {**options, "include_usage": True} if isinstance(options, dict) \
                else {"include_usage": True}
        lifecycle, retries = self._lifecycle, self._retries
        task = lifecycle.call_started()
        retries.active += 1
        try:
            return await self._try_chain(call)
        except asyncio.CancelledError:
            if (stopped := lifecycle.was_stopped(task)) is not None:
                raise stopped from None
            raise
        finally:
            retries.active -= 1
            lifecycle.call_ended(task)

    async def _try_chain(self, call: Call, held: Placement | None = None) -> Reply:
        """Try the chosen model's workers, then its fallbacks', until one answers or the tries run out.
        `held`: a slot of the chosen model's that the request waited for, taken by the first try."""
        loop = asyncio.get_running_loop()
        limited = self._slots.limited_models(call.runtime)
        max_attempts = call.runtime.catalog.retries.max_attempts
        choice = call.choice
        for model in (choice.model, *choice.fallbacks):
            key = request_key(call.request, model)
            while call.attempts < max_attempts:
                now = loop.time()
                if held is None:
                    placement, slot_held = self._pick(call, model, key, now, limited), False
                else:
                    placement, held, slot_held = held, None, True
                if placement is None:
                    break
                attempt = self._plan(call, model, placement, slot_held, now)
                if call.attempts > 0:
                    await self._retries.before_retry(call, model)
                retry = call.start(attempt)
                if retry:
                    self._retries.retrying += 1
                try:
                    reply = await (self._attempts.run(attempt) if call.request.upload is None
                                   else self._uploads.run(attempt))
                except GatewayError as exc:
                    if not is_retryable(exc):
                        raise
                    self._retries.count_failure(call.runtime.pool, placement.name, exc)
                    call.last_error = exc
                    continue
                finally:
                    if retry:
                        self._retries.retrying -= 1
                return self._answered(attempt, reply)
        return await self._none_answered(call, limited)

    def _unable(self, call: Call) -> tuple[frozenset[str], frozenset[str]]:
        """The workers of the request's models not to try first, and those never to try. Never: those whose
        protocol does not serve the request's surface (InvalidRequest when that is all of them: the model
        cannot answer this surface anywhere). Not first, for a translating surface: those that would need
        the translation, when the model has workers that serve the surface natively (never, for a request the
        translation cannot carry: its 400 when the model has no such worker)."""
        pool, request, choice = call.runtime.pool, call.request, call.choice
        placements = [p for model in (choice.model, *choice.fallbacks) for p in pool.placements(model)]
        incapable = frozenset(p.name for p in placements if not self._serves(p, request.endpoint))
        if placements and len(incapable) == len({p.name for p in placements}):
            raise InvalidRequest(f"The model `{choice.model}` has no worker that serves {request.surface.title} "
                                 f"(its workers' kinds: {', '.join(sorted({p.state.spec.kind for p in placements}))}).",
                                 param="model", code="unsupported_by_model")
        if not request.surface.native_capable:
            return incapable, incapable
        native = {p.name for p in placements if self._serves(p, request.surface.name)}
        if not native:
            if request.untranslatable is not None:  # it must be translated, and cannot be
                raise request.untranslatable
            return incapable, incapable
        translating = frozenset(p.name for p in placements if p.name not in native)
        if request.untranslatable is not None:  # only the native workers can take it
            never = translating | incapable
            return never, never
        return translating, incapable

    def _serves(self, placement: Placement, surface: str) -> bool:
        return self._protocols[placement.state.spec.kind].capabilities.serves(surface)

    def _pick(self, call: Call, model: str, key: RequestKey, now: float, limited: frozenset[str]
              ) -> Placement | None:
        """The next worker for `model` by its policy: not one tried already, nor one whose protocol does not
        serve the surface, nor (with `max_concurrent`) a full one; for a translating surface, one that
        serves it natively if the model has one left, else one it is translated for."""
        pool, tried = call.runtime.pool, call.tried
        busy = tried if model not in limited else tried | self._slots.full(pool, model)
        sticky = call.request.session is not None
        if not call.unable:
            return pool.pick(model, key, now, exclude=busy, sticky=sticky)
        placement = pool.pick(model, key, now, exclude=busy | call.unable, sticky=sticky)
        if placement is None and call.unable is not call.incapable:
            placement = pool.pick(model, key, now, exclude=busy | call.incapable, sticky=sticky)
        return placement

    def _plan(self, call: Call, model: str, placement: Placement, slot_held: bool, now: float) -> Attempt:
        """The next try: on `placement`, in its worker's protocol, within the model's (else the worker's)
        timeouts; the first try sets the request's deadline."""
        spec = placement.state.spec
        timeouts = call.runtime.timeouts_for(model, spec.timeouts)
        if call.deadline is None:
            call.deadline = now + timeouts.total
        protocol, surface = self._protocols[spec.kind], call.request.surface
        native = surface.native_capable and protocol.capabilities.serves(surface.name)
        return Attempt(call, model, placement, protocol, call.deadline, timeouts.first_byte, timeouts.idle,
                       slot_held, native)

    def _answered(self, attempt: Attempt, reply: Reply) -> Reply:
        """A try answered: its worker did well, and the reply says who answered, by which route, after how
        many tries, and instead of which model."""
        call, model, worker = attempt.call, attempt.model, attempt.placement.name
        call.runtime.pool.outlier.record_success(worker, asyncio.get_running_loop().time())
        chosen, record, headers = call.choice.model, call.record, reply.headers
        record.model = model
        headers["x-gateway-model"] = model
        headers["x-gateway-route"] = call.choice.route
        headers["x-gateway-worker"] = worker
        if model != chosen:
            record.fallback_from = chosen
            self._metrics.fallbacks.labels(chosen, model).inc()
            headers["x-gateway-fallback-from"] = chosen
        if call.attempts > 1:
            headers["x-gateway-attempts"] = str(call.attempts)
        return reply

    async def _none_answered(self, call: Call, limited: frozenset[str]) -> Reply:
        """No try answered: the last failure, or (every worker with room taken) a wait for a slot, after which
        the chain starts over with it (or without, if the freed worker no longer serves the model)."""
        if call.last_error is not None:
            raise call.last_error
        model, pool = call.choice.model, call.runtime.pool
        if call.attempts == 0 and model in limited and self._slots.full(pool, model):
            slot = await self._slots.wait(call.runtime, model)
            return await self._try_chain(call, held=slot)
        raise NoWorkerAvailable(f"No worker is serving the model {model!r} right now.")
