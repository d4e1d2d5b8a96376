"""The routing benchmark's fleet and workload: simulated vLLM settings and shared-prefix chat requests.

Used by `benchmarks.routing_bench` (run `.venv/bin/python -m benchmarks.routing_bench`); nothing here
starts a process or opens a socket.

The workload follows SGLang's `generated-shared-prefix` and llm-d's prefix benchmarks: `groups`
groups, each with a long deterministic system prompt (2,000 to 6,000 characters, spread evenly over
the groups), and many requests per group that differ only in a short user question. `uniform`
spreads the requests evenly over the groups; `skewed` sends `hot_share` of them to one hot group
(the group in the middle, whose prompt has the median length) and the rest evenly to the others.
The order is shuffled with a fixed seed, so every policy gets exactly the same request sequence.
"""

from __future__ import annotations

import random
from dataclasses import asdict, dataclass
from typing import Any, Literal

WorkloadKind = Literal["uniform", "skewed"]

_WORDS = (
    "coach", "goal", "habit", "week", "plan", "focus", "energy", "sleep", "team", "review", "client",
    "progress", "session", "reflect", "values", "purpose", "career", "balance", "stress", "growth",
    "feedback", "listen", "commit", "routine", "morning", "evening", "journal", "metric", "milestone",
    "support", "challenge", "strength", "practice", "question", "answer", "always", "never", "gently",
)  # fmt: skip
_TOPICS = ("sleep", "a hard conversation", "my manager", "running", "saving money", "a career change",
           "procrastination", "public speaking", "my morning routine", "a new team")


@dataclass(frozen=True)
class FleetSettings:
    """The simulated vLLM workers (see `simulator/config.py` for each field's meaning)."""

    workers: int = 8
    kv_blocks: int = 160
    """16-token blocks: 2,560 tokens, about 2.5 system prompts of the mean length (4,000 characters)."""
    block_tokens: int = 16
    ttft_overhead_s: float = 0.020
    prefill_s_per_token: float = 0.00025
    """An uncached 2,000-6,000-character prompt (500-1,500 tokens) takes 145-395 ms to the first token."""
    itl_s: float = 0.015
    concurrency_slowdown: float = 0.05
    max_running: int = 4
    """A busy GPU: 4 sequences at a time, the rest wait (8 workers: 32 slots)."""
    reply_tokens: tuple[int, int] = (8, 24)
    """The simulator's default reply lengths (the client's max_tokens does not cut them)."""

    def simulate_args(self) -> list[str]:
        """Options of `llm-gateway simulate --kind vllm` for one worker (port and model not included)."""
        return [
            "--kv-blocks", str(self.kv_blocks), "--block-tokens", str(self.block_tokens),
            "--ttft", str(self.ttft_overhead_s), "--prefill-per-token", str(self.prefill_s_per_token),
            "--itl", str(self.itl_s), "--concurrency-slowdown", str(self.concurrency_slowdown),
            "--max-running", str(self.max_running),
            "--reply-tokens", str(self.reply_tokens[0]), str(self.reply_tokens[1]),
        ]  # fmt: skip

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class WorkloadSpec:
    """What the requests look like; the same spec gives the same requests on any machine."""

    groups: int = 16
    min_prompt_chars: int = 2_000
    max_prompt_chars: int = 6_000
    hot_share: float = 0.5
    seed: int = 20_261_122
    max_tokens: int = 256

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


@dataclass(frozen=True)
class ChatRequest:
    group: int
    messages: list[dict[str, str]]


def system_prompt(group: int, chars: int, seed: int) -> str:
    """A deterministic system prompt of exactly `chars` characters, distinct per group from its start."""
    rng = random.Random(f"{seed}:system:{group}")  # noqa: S311 -- a fixed, reproducible text
    text = f"You are coach #{group}. Follow the playbook of team {group} below.\n"
    while len(text) < chars:
        sentence = " ".join(rng.choice(_WORDS) for _ in range(rng.randint(6, 14)))
        text += sentence.capitalize() + ". "
    return text[:chars]


def question(index: int, rng: random.Random) -> str:
    """A short user question (about 80-200 characters), distinct per request."""
    topic = rng.choice(_TOPICS)
    detail = " ".join(rng.choice(_WORDS) for _ in range(rng.randint(4, 18)))
    return f"Request {index}: how should I approach {topic} this week? Context: {detail}."


def build_workload(kind: WorkloadKind, requests: int, spec: WorkloadSpec) -> list[ChatRequest]:
    """`requests` chat requests of the `kind` workload, in a fixed shuffled order."""
    prompts = [system_prompt(g, spec.prompt_chars(g), spec.seed) for g in range(spec.groups)]
    if kind == "uniform":
        groups = [i % spec.groups for i in range(requests)]
    else:
        hot = round(requests * spec.hot_share)
        cold = [g for g in range(spec.groups) if g != spec.hot_group]
        groups = [spec.hot_group] * hot + [cold[i % len(cold)] for i in range(requests - hot)]
    rng = random.Random(f"{spec.seed}:{kind}")  # noqa: S311 -- a fixed, reproducible order
    rng.shuffle(groups)
    return [
        ChatRequest(g, [{"role": "system", "content": prompts[g]}, {"role": "user", "content": question(i, rng)}])
        for i, g in enumerate(groups)
    ]


def percentile(values: list[float], q: float) -> float:
    """The `q`-th percentile (0-100) by linear interpolation; NaN for no values."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    rank = (len(ordered) - 1) * q / 100
    low = int(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def ideal_ratios(requests: list[ChatRequest], fleet: FleetSettings) -> dict[str, float]:
    """What a perfect prefix cache could gain at most under the simulator's latency model: every
    request's system-prompt blocks cached vs none, with `max_running` requests generating at once.

    `throughput`: mean service time without the cache / with it (at a fixed concurrency, tokens/s
    scale with its inverse); `ttft`: mean time to first token without the cache / with it. The
    prompt is counted as the simulator serializes it (`<|role|>\\n{content}\\n`, 4 characters a token).
    """
    slowdown = 1 + fleet.concurrency_slowdown * (fleet.max_running - 1)
    decode = (sum(fleet.reply_tokens) / 2 - 1) * fleet.itl_s
    block_chars = fleet.block_tokens * 4
    cold = warm = cold_ttft = warm_ttft = 0.0
    all_tokens = cached_tokens = 0
    for request in requests:
        text = "".join(f"<|{m['role']}|>\n{m['content']}\n" for m in request.messages)
        tokens = -(-len(text) // 4)
        shared = len(f"<|system|>\n{request.messages[0]['content']}\n")
        cached = min(shared // block_chars, (tokens - 1) // fleet.block_tokens) * fleet.block_tokens
        all_tokens += tokens
        cached_tokens += cached
        ttft_cold = fleet.ttft_overhead_s + tokens * fleet.prefill_s_per_token
        ttft_warm = fleet.ttft_overhead_s + (tokens - cached) * fleet.prefill_s_per_token
        cold_ttft += ttft_cold * slowdown
        warm_ttft += ttft_warm * slowdown
        cold += (ttft_cold + decode) * slowdown
        warm += (ttft_warm + decode) * slowdown
    return {"throughput": cold / warm, "ttft": cold_ttft / warm_ttft,
            "mean_uncached_ttft_ms": 1000 * cold_ttft / len(requests),
            "mean_decode_ms": 1000 * decode * slowdown, "overhead_ms": 1000 * fleet.ttft_overhead_s * slowdown,
            "max_hit_rate": cached_tokens / all_tokens}
