"""Shared system prompts, after SGLang's `generated-shared-prefix` and llm-d's prefix benchmarks: `groups`
groups, each a long deterministic system prompt and many short questions; `uniform` over the groups,
`skewed` towards one hot group, `long-outputs` uniform with replies of hundreds of tokens (decode-bound).
The order is shuffled with a fixed seed, so every policy gets the same sequence."""

from __future__ import annotations

import random
from dataclasses import asdict, dataclass
from typing import Any

from benchmarks.routing.workloads.requests import ChatRequest, Workload, question, singles, system_prompt


@dataclass(frozen=True)
class WorkloadSpec:
    """What the shared-prefix requests look like; the same spec gives the same requests on any machine."""

    groups: int = 64
    min_prompt_chars: int = 2_000
    max_prompt_chars: int = 6_000
    hot_share: float = 0.5
    seed: int = 20_261_122
    max_tokens: int = 256
    long_reply_tokens: tuple[int, int] = (200, 400)
    """`long-outputs`' replies: a chat answer of a few paragraphs, 10-25x the default 8-24 tokens."""
    long_max_tokens: int = 512

    def prompt_chars(self, group: int) -> int:
        if self.groups == 1:
            return self.max_prompt_chars
        span = self.max_prompt_chars - self.min_prompt_chars
        return self.min_prompt_chars + round(group * span / (self.groups - 1))

    @property
    def hot_group(self) -> int:
        return self.groups // 2

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "hot_group": self.hot_group}


def shared_prefix_requests(groups: list[int], spec: WorkloadSpec, order_key: str,
                           first_question: int = 0) -> list[ChatRequest]:
    """One request per entry of `groups` (its group's system prompt and a distinct question), shuffled
    with a fixed seed."""
    prompts = {g: system_prompt(g, spec.prompt_chars(g % spec.groups), spec.seed) for g in set(groups)}
    order = list(groups)
    rng = random.Random(f"{spec.seed}:{order_key}")  # noqa: S311 -- a fixed, reproducible order
    rng.shuffle(order)
    return [ChatRequest(g, [{"role": "system", "content": prompts[g]},
                            {"role": "user", "content": question(first_question + i, rng)}])
            for i, g in enumerate(order)]


def uniform(requests: int, spec: WorkloadSpec) -> Workload:
    groups = [i % spec.groups for i in range(requests)]
    return Workload("uniform", _describe(spec, "spread evenly over the groups"),
                    singles(shared_prefix_requests(groups, spec, "uniform")), max_tokens=spec.max_tokens)


def skewed(requests: int, spec: WorkloadSpec) -> Workload:
    hot = round(requests * spec.hot_share)
    cold = [g for g in range(spec.groups) if g != spec.hot_group]
    groups = [spec.hot_group] * hot + [cold[i % len(cold)] for i in range(requests - hot)]
    return Workload("skewed", _describe(spec, f"{spec.hot_share:.0%} to group {spec.hot_group}, the rest evenly"),
                    singles(shared_prefix_requests(groups, spec, "skewed")), max_tokens=spec.max_tokens)


def long_outputs(requests: int, spec: WorkloadSpec) -> Workload:
    low, high = spec.long_reply_tokens
    groups = [i % spec.groups for i in range(requests)]
    return Workload("long-outputs", _describe(spec, f"spread evenly, replies of {low}-{high} tokens (decode-bound)"),
                    singles(shared_prefix_requests(groups, spec, "long-outputs")),
                    max_tokens=spec.long_max_tokens, reply_tokens=spec.long_reply_tokens)


def _describe(spec: WorkloadSpec, how: str) -> str:
    return (f"{spec.groups} groups, each a system prompt of {spec.min_prompt_chars:,}-{spec.max_prompt_chars:,} "
            f"characters + a distinct ~80-200-character question; {how}")
