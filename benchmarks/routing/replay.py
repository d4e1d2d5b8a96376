"""Why requests missed the prefix cache, from one run's outcomes.

Each request's cached prompt tokens come from the worker itself (`usage.prompt_tokens_details`, the
simulators run with `--enable-prompt-tokens-details`). A request that reused no block is either its
group's first visit to that worker (a new group placed there, or a group spread to one more worker)
or an eviction (the group had been there before and its blocks were gone).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from benchmarks.routing.client import Outcome


def classify_misses(outcomes: Sequence[Outcome]) -> dict[str, Any]:
    """Requests that reused no cached block, by cause, and how many groups each worker saw."""
    ordered = sorted((o for o in outcomes if o.error is None), key=lambda o: o.sent_at)
    visited: set[tuple[str, int]] = set()
    first_visits = evicted = unknown = 0
    for outcome in ordered:
        if outcome.cached_tokens is None:
            unknown += 1
        elif outcome.cached_tokens == 0:
            if (outcome.worker, outcome.group) in visited:
                evicted += 1
            else:
                first_visits += 1
        visited.add((outcome.worker, outcome.group))
    workers = {o.worker for o in ordered}
    return {"requests": len(ordered), "missed_requests": first_visits + evicted, "missed_first_visit": first_visits,
            "missed_evicted": evicted, "unknown": unknown,
            "groups_per_worker": round(len(visited) / max(len(workers), 1), 2)}
