"""Stage 6 of the pipeline: once a request's outcome is known, settle what it reserved and fill the cache.

One verb for every outcome: a whole answer, a stream's end (called from the relay's last breath, so it
never awaits), a refusal by the limits and a failure. The reservation is settled with the tokens used
(0 when nothing was); the cache entry this request leads is filled with its answer, or released with
None so that identical requests waiting on it go to a worker of their own. A `Cache-Control: no-cache`
request holds no lock: its answer replaces the entry in the background, and a failure leaves it alone.
"""

from __future__ import annotations

import asyncio

from gateway.cache.answers import CachedAnswer
from gateway.cache.plan import CachePlan
from gateway.cache.response_cache import ResponseCache
from gateway.inference.admission import AdmissionControl, Ticket


class Settlement:
    def __init__(self, admission: AdmissionControl, cache: ResponseCache | None) -> None:
        self._admission = admission
        self._cache = cache
        self._refreshing: set[asyncio.Task[None]] = set()

    def settle(self, ticket: Ticket | None, plan: CachePlan | None, tokens: int, answer: CachedAnswer | None) -> None:
        """`ticket`: the admission to settle with `tokens` (None: the caller has no limits, or was refused).
        `plan`: the cache entry to fill with `answer` (None: the request is not cached; `answer` None:
        nothing may be stored)."""
        self._admission.settle(ticket, tokens)
        if plan is None:
            return
        cache = self._cache
        assert cache is not None  # a plan comes from the cache stage
        if plan.lookup:
            cache.fill(plan, answer)
        elif answer is not None:
            task = asyncio.create_task(cache.refresh(plan, answer))
            self._refreshing.add(task)
            task.add_done_callback(self._refreshing.discard)
