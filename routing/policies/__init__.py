"""Worker selection policies: which worker of a model takes a request, from plain snapshots."""

from routing.policies.balancing import DEFAULT_FADE_S, Rotation, RoundRobin, WeightedRoundRobin, WorkerPolicy
from routing.policies.explanation import CandidateFigures, Explanation
from routing.policies.factory import DEFAULT_POLICY, POLICIES, make_policy
from routing.policies.least_load import LeastOutstanding, Residency
from routing.policies.precise_prefix import PrecisePrefixAffinity, WorkerTokens
from routing.policies.prefix_affinity import PrefixAffinity
from routing.policies.prefix_index import BlockLRU, block_hashes
from routing.policies.session_affinity import SessionAffinity

__all__ = [
    "DEFAULT_FADE_S",
    "DEFAULT_POLICY",
    "POLICIES",
    "BlockLRU",
    "CandidateFigures",
    "Explanation",
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
