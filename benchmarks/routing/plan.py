"""Which runs a routing benchmark makes: (workload, gateway replicas, policy) triples, and about how long
they take. By default every workload under the three default policies behind one gateway and behind 3
replicas, session affinity on the workload whose requests carry a user id, and precise prefix affinity
(from the workers' KV events) where prefixes repeat; `--workloads`, `--policies` and `--replicas` narrow
or widen it."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from benchmarks.routing.ceiling import run_seconds
from benchmarks.routing.fleet import POLICIES, PRECISE, SESSION_POLICY
from benchmarks.routing.fleet_settings import FleetSettings
from benchmarks.routing.workloads import REPLICATED, Workload

REPLICAS = 3
USER_WORKLOADS = ("conversations",)
"""Their requests carry a user id: session affinity has something to key on."""
PRECISE_WORKLOADS = ("uniform", "skewed", "conversations")
"""Where prefixes repeat, so what the workers' caches hold matters: precise prefix affinity runs beside
the approximate one."""
QUICK_REPLICATED = REPLICATED[:1]
"""`--quick` runs only the first of them behind replicas, to stay under 10 minutes."""


@dataclass(frozen=True)
class Pair:
    workload: str
    replicas: int
    policy: str


def default_plan(workloads: Sequence[str], *, quick: bool) -> list[Pair]:
    """Every workload x policy behind one gateway, then behind `REPLICAS` (`--quick`: only the first
    replicated workload); session affinity on the user-id workloads, precise prefix affinity on the
    repeating-prefix ones (not in `--quick`)."""
    replicated = QUICK_REPLICATED if quick else REPLICATED
    layout = [(kind, 1) for kind in workloads] + [(kind, REPLICAS) for kind in workloads if kind in replicated]
    pairs = []
    for kind, replicas in layout:
        policies = list(POLICIES)
        if kind in USER_WORKLOADS:
            policies.append(SESSION_POLICY)
        if kind in PRECISE_WORKLOADS and not quick:
            policies.append(PRECISE)
        pairs += [Pair(kind, replicas, policy) for policy in policies]
    return pairs


def chosen_plan(workloads: Sequence[str], policies: Sequence[str], replicas: Sequence[int]) -> list[Pair]:
    """Exactly the runs asked for: every workload x replicas x policy."""
    return [Pair(kind, count, policy) for kind in workloads for count in replicas for policy in policies]


def plan_minutes(plan: Sequence[Pair], workloads: Mapping[str, Workload], fleet: FleetSettings,
                 concurrency: int) -> float:
    """The plan's duration at worst (every run as slow as one without cache hits)."""
    return sum(run_seconds(workloads[pair.workload], fleet, concurrency) for pair in plan) / 60
