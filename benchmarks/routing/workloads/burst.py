"""A burst of new prefixes: steady shared-prefix traffic over a few known groups (the fleet's caches warm
up on them), then, halfway through, a burst of requests whose system prompts were never seen, sent all
at once on top of the steady clients. It tests how a policy places prefixes it knows nothing about
while its load figures lag: herding them onto the workers that look idlest, or piling a new group's
simultaneous requests onto one worker."""

from __future__ import annotations

from dataclasses import dataclass

from benchmarks.routing.workloads.requests import ChatRequest, Workload, singles
from benchmarks.routing.workloads.shared_prefix import WorkloadSpec, shared_prefix_requests

NEW_GROUPS_ROUND = 16
"""The burst's groups are numbered from `16 * groups` on: their system prompts differ from every known one
(a group's prompt length follows its number modulo `groups`)."""


@dataclass(frozen=True)
class BurstSpec:
    known_groups: int = 16
    """Two per worker: the steady traffic's prefixes fit in the fleet's caches."""
    new_groups: int = 8
    burst_share: float = 0.2
    """The burst's share of all requests, sent at once: at 300+ requests, more than the concurrency."""
    at: float = 0.5
    """The burst starts when this share of the steady requests has been started."""


def burst(requests: int, spec: WorkloadSpec, burst_spec: BurstSpec | None = None) -> Workload:
    shape = burst_spec or BurstSpec()
    size = min(max(shape.new_groups, round(requests * shape.burst_share)), max(requests - 1, 0))
    steady_count = requests - size
    known = _spread(shape.known_groups, spec.groups, 0)
    new_groups = _spread(shape.new_groups, spec.groups, NEW_GROUPS_ROUND)
    steady = shared_prefix_requests([known[i % len(known)] for i in range(steady_count)], spec, "burst-steady")
    new = [new_groups[i % len(new_groups)] for i in range(size)]
    burst_requests = [ChatRequest(r.group, r.messages, phase="burst")
                      for r in shared_prefix_requests(new, spec, "burst-new", first_question=steady_count)]
    description = (f"steady: {shape.known_groups} groups' system prompts ({spec.min_prompt_chars:,}-"
                   f"{spec.max_prompt_chars:,} characters) + a question; after {shape.at:.0%} of them, "
                   f"{size} requests over {shape.new_groups} never-seen system prompts, all at once")
    return Workload("burst", description, singles(steady), max_tokens=spec.max_tokens, burst=burst_requests,
                    burst_after=round(steady_count * shape.at))


def _spread(count: int, groups: int, round_: int) -> list[int]:
    """`count` group numbers from `round_ * groups` on whose prompts' lengths span the spec's range evenly."""
    step = max(groups // count, 1)
    return [round_ * groups + k * step for k in range(count)]
