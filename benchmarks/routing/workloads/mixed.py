"""Mixed long and short prompts with no shared prefix beyond chance: a share of long documents (several
thousand tokens) among many short questions, each prompt distinct from its first block. The cache cannot
help; what a policy can do is keep the long prefills from piling up on one worker ahead of short ones."""

from __future__ import annotations

import random
from dataclasses import dataclass

from benchmarks.routing.workloads.requests import CHARS_PER_TOKEN, ChatRequest, Workload, filler, singles


@dataclass(frozen=True)
class MixedSpec:
    long_share: float = 0.2
    long_tokens: tuple[int, int] = (2_000, 6_000)
    """A long document to summarize or question; below the simulator's 8,192-token context with the reply."""
    short_tokens: tuple[int, int] = (50, 300)


def mixed(requests: int, seed: int, spec: MixedSpec | None = None) -> Workload:
    """`requests` single-message prompts, `long_share` of them long, in a fixed shuffled order."""
    spec = spec or MixedSpec()
    longs = round(requests * spec.long_share)
    is_long = [True] * longs + [False] * (requests - longs)
    rng = random.Random(f"{seed}:mixed")  # noqa: S311 -- a fixed, reproducible order and text
    rng.shuffle(is_long)
    made = []
    for index, long in enumerate(is_long):
        tokens = rng.randint(*(spec.long_tokens if long else spec.short_tokens))
        head = f"Request {index} ({'document' if long else 'question'}): "
        made.append(ChatRequest(index, [{"role": "user", "content": filler(head, tokens * CHARS_PER_TOKEN, rng)}]))
    description = (f"{spec.long_share:.0%} long prompts of {spec.long_tokens[0]:,}-{spec.long_tokens[1]:,} tokens, "
                   f"the rest {spec.short_tokens[0]}-{spec.short_tokens[1]} tokens; no shared prefix")
    return Workload("mixed", description, singles(made))
