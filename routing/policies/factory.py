"""Build a worker policy from its configured name and options."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from routing.policies.balancing import RoundRobin, WeightedRoundRobin, WorkerPolicy
from routing.policies.least_load import LeastOutstanding, Residency
from routing.policies.precise_prefix import PrecisePrefixAffinity
from routing.policies.prefix_affinity import PrefixAffinity
from routing.policies.session_affinity import SessionAffinity

DEFAULT_POLICY = "least_outstanding"

POLICIES: dict[str, Callable[..., WorkerPolicy]] = {
    "round_robin": RoundRobin,
    "weighted": WeightedRoundRobin,
    "least_outstanding": LeastOutstanding,
    "session_affinity": SessionAffinity,
    "prefix_affinity": PrefixAffinity,
    "prefix_affinity_precise": PrecisePrefixAffinity,
    "residency": Residency,
}


def make_policy(name: str, **options: Any) -> WorkerPolicy:
    """A new policy by name, with its keyword options (e.g. `prefix_affinity`, `balance_abs=4`).

    Raises ValueError for an unknown name (listing the valid ones) or options the policy refuses."""
    factory = POLICIES.get(name)
    if factory is None:
        raise ValueError(f"unknown worker policy {name!r}; valid: {', '.join(sorted(POLICIES))}")
    try:
        return factory(**options)
    except TypeError as exc:
        raise ValueError(f"worker policy {name!r}: {exc}") from None
