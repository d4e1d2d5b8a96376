"""Overload protection: a worker with `max_concurrent` gets at most that many requests from this process at
once. When every worker of a model (and of its fallbacks) is full, a request waits in the model's bounded
queue, first come first served; past `queue.max_waiting` it is refused at once, and after `queue.max_wait`
it gives up: 503 (`queue_full`, `queue_timeout`) with `Retry-After`, never a wait without end.

A worker's slots are its in-flight count. A slot freed while requests wait passes straight to the oldest
of them (the count never drops), so a request arriving meanwhile cannot overtake the queue. The lines
themselves are pure bookkeeping (`routing.wait_queue`); this module does the waiting.
"""

from __future__ import annotations

import asyncio

from gateway.errors import Overloaded
from gateway.observability.metrics import GatewayMetrics
from gateway.workers.active_catalog import ActiveCatalog
from gateway.workers.pool import Placement, WorkerPool, WorkerState
from routing.wait_queue import QueueLimits, WaitingLines, queue_limits

Waiter = asyncio.Future[WorkerState]


def _got_slot(waiter: Waiter) -> bool:
    return waiter.done() and not waiter.cancelled()


class WorkerSlots:
    """The waiting lines of one gateway process (all catalogs: a slot freed by a request of an older
    catalog still goes to the next in line)."""

    def __init__(self, metrics: GatewayMetrics) -> None:
        self._metrics = metrics
        self._lines: WaitingLines[Waiter] = WaitingLines()
        self._runtime: ActiveCatalog | None = None
        self._limited: frozenset[str] = frozenset()

    def limited_models(self, runtime: ActiveCatalog) -> frozenset[str]:
        """The models served by at least one worker with `max_concurrent` (empty: nothing is limited, and
        requests pay nothing for this module)."""
        if runtime is not self._runtime:
            self._runtime = runtime
            self._limited = frozenset(served.name for worker in runtime.catalog.workers
                                      if worker.max_concurrent is not None for served in worker.served())
        return self._limited

    @staticmethod
    def full(pool: WorkerPool, model: str) -> set[str]:
        """The names of `model`'s workers that are at their `max_concurrent`."""
        return {p.name for p in pool.placements(model)
                if (limit := p.state.spec.max_concurrent) is not None and p.state.in_flight >= limit}

    def release(self, state: WorkerState) -> None:
        """A request on `state` is over: its slot goes to the oldest request waiting for a model the worker
        serves, else it is freed."""
        if state.spec.max_concurrent is not None:
            models = [served.name for served in state.spec.served()]
            while (turn := self._lines.next_for(models)) is not None:
                model, waiter = turn
                self._metrics.queue_depth.labels(model).set(self._lines.depth(model))
                if not waiter.done():
                    waiter.set_result(state)  # the slot changes hands: in_flight stays
                    return
        state.in_flight -= 1

    async def wait(self, runtime: ActiveCatalog, model: str) -> Placement | None:
        """Wait in `model`'s line for a slot on one of its workers; the slot is held (in its in-flight
        count) when this returns. None: the freed worker no longer serves the model in this request's
        catalog (a reload replaced it), so the slot was passed on and the request starts over.
        Raises `Overloaded` when the line is full or the wait runs out."""
        pool = runtime.pool
        spec = runtime.catalog.model(model)
        capacity = sum(p.state.spec.max_concurrent or 0 for p in pool.placements(model))
        limits = queue_limits(spec.queue if spec is not None else None, capacity)
        waiter: Waiter = asyncio.get_running_loop().create_future()
        if not self._lines.join(model, waiter, limits.max_waiting):
            raise self._refuse(model, "queue_full", limits,
                               f"Every worker of the model `{model}` is busy and {limits.max_waiting} requests "
                               "are already waiting; retry later.")
        self._metrics.queue_depth.labels(model).set(self._lines.depth(model))
        try:
            async with asyncio.timeout(limits.max_wait_s):
                state = await waiter
        except TimeoutError:
            if not _got_slot(waiter):  # else the slot came just as the wait ran out: take it
                self._leave(model, waiter)
                raise self._refuse(model, "queue_timeout", limits,
                                   f"Every worker of the model `{model}` stayed busy for {limits.max_wait_s:g} s "
                                   "while this request waited; retry later.") from None
            state = waiter.result()
        except BaseException:  # cancelled: the client left, or the gateway is stopping
            if _got_slot(waiter):
                self.release(waiter.result())
            else:
                self._leave(model, waiter)
            raise
        placement = next((p for p in pool.placements(model) if p.state is state), None)
        if placement is None:
            self.release(state)
        return placement

    def _leave(self, model: str, waiter: Waiter) -> None:
        if self._lines.leave(model, waiter):
            self._metrics.queue_depth.labels(model).set(self._lines.depth(model))

    def _refuse(self, model: str, reason: str, limits: QueueLimits, message: str) -> Overloaded:
        self._metrics.overloaded.labels(model, reason).inc()
        return Overloaded(message, code=reason, retry_after_s=limits.retry_after_s)
