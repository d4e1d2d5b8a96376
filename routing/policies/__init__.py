"""Worker selection policies: which worker of a model takes a request, from plain snapshots."""

from routing.policies.balancing import (
    LeastOutstanding,
    Residency,
    Rotation,
    RoundRobin,
    WeightedRoundRobin,
    WorkerPolicy,
)
from routing.policies.factory import DEFAULT_POLICY, POLICIES, make_policy
from routing.policies.precise_prefix import PrecisePrefixAffinity, WorkerTokens
from routing.policies.prefix_affinity import BlockLRU, PrefixAffinity, block_hashes
from routing.policies.session_affinity import SessionAffinity

__all__ = [
    "DEFAULT_POLICY",
    "POLICIES",
    "BlockLRU",
    "LeastOutstanding",
    "PrecisePrefixAffinity",
    "PrefixAffinity",
    "Residency",
    "Rotation",
    "RoundRobin",
    "SessionAffinity",
    "WeightedRoundRobin",
    "WorkerPolicy",
    "WorkerTokens",
    "block_hashes",
    "make_policy",
]
