"""Which worker of a model takes a request. The policies live in `routing.policies`; this module
keeps the original import path of `WeightedRoundRobin` (and its `Candidate` protocol) working."""

from routing.policies.balancing import WeightedRoundRobin
from routing.snapshot import Candidate

__all__ = ["Candidate", "WeightedRoundRobin"]
