"""How much the forwarder may retry, and what a failed try counts as.

A retry waits a jittered backoff (`routing.retry_budget.backoff_s`), and only starts when the process's
retry budget allows it (Envoy's: a share of the requests in flight, at least a few) and the request's
deadline has not passed meanwhile. A failed try counts against its worker for outlier ejection, unless
the worker was only full (429, 503: busy, not broken).
"""

from __future__ import annotations

import asyncio
import random

from gateway.errors import GatewayError, UpstreamTimeout, WorkerRejected
from gateway.inference.attempt import Call
from gateway.observability.metrics import GatewayMetrics
from gateway.workers.pool import WorkerPool
from routing.retry_budget import RetryBudget, backoff_s


def is_full(error: GatewayError) -> bool:
    """A worker that refused for lack of room (429, 503) rather than failed."""
    return isinstance(error, WorkerRejected) and error.status_code() in (429, 503)


class Retries:
    """The retry accounting of one gateway process: requests forwarded and retries in flight (the budget is
    a share of the one in the other), and the backoff's jitter."""

    def __init__(self, metrics: GatewayMetrics, *, jitter_seed: int | None = None) -> None:
        self.active = 0
        """Requests being forwarded now, retries included."""
        self.retrying = 0
        """Tries beyond a request's first in flight now."""
        self._metrics = metrics
        self._rng = random.Random(jitter_seed)  # noqa: S311 (backoff jitter, not a secret)

    async def before_retry(self, call: Call, model: str) -> None:
        """Wait for the turn of `call`'s next try (on `model`). Raises the call's last error when the budget
        allows no retry now, and `UpstreamTimeout` when the deadline passed during the backoff."""
        spec = call.runtime.catalog.retries
        if not RetryBudget(ratio=spec.budget_ratio, minimum=spec.budget_minimum).allows(self.active, self.retrying):
            assert call.last_error is not None
            raise call.last_error
        await asyncio.sleep(backoff_s(call.attempts - 1, self._rng, spec.backoff_base, spec.backoff_cap))
        assert call.deadline is not None
        if asyncio.get_running_loop().time() >= call.deadline:
            raise UpstreamTimeout("The request deadline passed while retrying.")
        self._metrics.retries.labels(model).inc()

    def count_failure(self, pool: WorkerPool, worker: str, error: GatewayError) -> None:
        """A try on `worker` failed with a retryable `error`: count it, and against the worker's health
        unless it was only full (which may eject it)."""
        metrics = self._metrics
        metrics.upstream_errors.labels(worker, error.error_code or "").inc()
        if not is_full(error) and pool.outlier.record_failure(worker, asyncio.get_running_loop().time()):
            metrics.ejections.labels(worker).inc()
