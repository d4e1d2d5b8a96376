"""The routing suite's workloads by name, how many requests each sends by default, and which of them also
run behind several gateway replicas in the default plan."""

from __future__ import annotations

from collections.abc import Callable

from benchmarks.routing.workloads.burst import burst
from benchmarks.routing.workloads.conversations import conversations
from benchmarks.routing.workloads.mixed import mixed
from benchmarks.routing.workloads.requests import Workload
from benchmarks.routing.workloads.shared_prefix import WorkloadSpec, long_outputs, skewed, uniform

_BUILDERS: dict[str, Callable[[int, WorkloadSpec], Workload]] = {
    "uniform": uniform,
    "skewed": skewed,
    "conversations": lambda n, spec: conversations(n, spec.seed, with_user=True),
    "conversations-anonymous": lambda n, spec: conversations(n, spec.seed, with_user=False),
    "mixed": lambda n, spec: mixed(n, spec.seed),
    "long-outputs": long_outputs,
    "burst": burst,
}
WORKLOADS = tuple(_BUILDERS)

DEFAULT_REQUESTS = {"uniform": 800, "skewed": 800, "conversations": 600, "conversations-anonymous": 600,
                    "mixed": 600, "long-outputs": 160, "burst": 700}
"""Per run, so that the full plan takes about an hour on the x8-slowed fleet (round robin, the slowest,
takes ~1.5 minutes a run; `plan_minutes` estimates it): enough for every group to be visited ~12 times
and for each conversation to run its turns, few enough to share a 2-core box."""
QUICK_DIVISOR = 16
"""`--quick` sends a sixteenth of each (about one wave of the concurrency): a smoke run of its plan in under
10 minutes, most of it starting and stopping fleets."""
REPLICATED = WORKLOADS
"""Also run behind 3 gateway replicas in the default plan: every workload (the default policy must hold
wherever replicas route independently, not only where what one replica learns of the caches matters)."""


def build(kind: str, requests: int, spec: WorkloadSpec) -> Workload:
    """The `kind` workload with `requests` requests (its burst included)."""
    return _BUILDERS[kind](requests, spec)


def default_requests(kind: str, *, quick: bool) -> int:
    return max(DEFAULT_REQUESTS[kind] // (QUICK_DIVISOR if quick else 1), 24)
