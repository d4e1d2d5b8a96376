"""The routing suite's fleet and workload: the simulated vLLM workers' settings, and the shared-prefix
chat requests (`groups` groups, each a long deterministic system prompt and many short questions;
`uniform` or `skewed` towards one hot group; shuffled with a fixed seed, so every policy gets the same
sequence). Nothing here starts a process or opens a socket; why these figures: README.md.
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
    """The simulated vLLM workers, in the simulator's step model (`simulator/scheduler.py`): one
    Llama-3.1-8B (bf16) on an A100-80GB each, slowed down `time_scale` times. See `simulator/config.py`
    for each field and docs/operations.md for where the figures come from."""

    workers: int = 8
    kv_blocks: int = 1024
    """16-token blocks shared by running requests and cached prefixes: 16,384 tokens, room for the
    prefixes of about 16 of the 64 groups once ~6 running requests hold theirs. A real A100-80GB holds
    ~25x more; the workload's working set is scaled down with it (one worker cannot cache every group,
    the fleet can), as in SGLang's and llm-d's shared-prefix benchmarks."""
    block_tokens: int = 16
    max_num_batched_tokens: int = 2048
    """vLLM's default token budget per step for the API server on an A100 (engine/arg_utils.py)."""
    step_overhead_s: float = 0.010
    """A forward pass reads the 16 GB of weights: ~8 ms at the A100-80GB's 2.0 TB/s, ~10 ms measured."""
    step_s_per_token: float = 0.0001
    """~16 GFLOP per token (2 x 8B parameters) at ~50% of the A100's 312 bf16 TFLOPS: ~10,000 prefill
    tokens/s, so a 1,000-token prompt takes ~110 ms to its first token."""
    max_running: int = 256
    """vLLM's default max_num_seqs."""
    time_scale: float = 8.0
    """Every simulated duration x 8: the fleet's token rate stays within what the gateway and the
    clients relay on 2 shared cores, so the box's CPU does not become the bottleneck of any policy.
    Wall-clock figures are 8x the modelled GPU's."""
    reply_tokens: tuple[int, int] = (8, 24)
    """The simulator's default reply lengths (the client's max_tokens does not cut them)."""

    def simulate_args(self) -> list[str]:
        """Options of `llm-gateway simulate --kind vllm` for one worker (port and model not included)."""
        return [
            "--kv-blocks", str(self.kv_blocks), "--block-tokens", str(self.block_tokens),
            "--max-num-batched-tokens", str(self.max_num_batched_tokens),
            "--step-overhead", str(self.step_overhead_s), "--step-per-token", str(self.step_s_per_token),
            "--time-scale", str(self.time_scale), "--max-running", str(self.max_running),
            "--reply-tokens", str(self.reply_tokens[0]), str(self.reply_tokens[1]),
            "--enable-prompt-tokens-details",
        ]  # fmt: skip

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class WorkloadSpec:
    """What the requests look like; the same spec gives the same requests on any machine."""

    groups: int = 64
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


def ideal_ratios(requests: list[ChatRequest], fleet: FleetSettings, concurrency: int) -> dict[str, float]:
    """What a perfect prefix cache could gain at most in the step model: every request's system-prompt
    blocks cached vs none.

    `throughput`: GPU time per request without the cache / with it, on a saturated worker running
    `concurrency / workers` requests at once (a request computes its uncached prompt tokens and its
    completion tokens at `step_s_per_token` each, and shares each of its steps' overhead with the
    others); `ttft`: an idle worker's time to first token without the cache / with it. The prompt is
    counted as the simulator serializes it (`<|role|>\\n{content}\\n`, 4 characters a token).
    """
    batch = max(concurrency / fleet.workers, 1.0)
    completion = sum(fleet.reply_tokens) / 2
    cold = warm = cold_ttft = warm_ttft = 0.0
    all_tokens = cached_tokens = 0
    block_chars = fleet.block_tokens * 4
    for request in requests:
        text = "".join(f"<|{m['role']}|>\n{m['content']}\n" for m in request.messages)
        tokens = -(-len(text) // 4)
        shared = len(f"<|system|>\n{request.messages[0]['content']}\n")
        cached = min(shared // block_chars, (tokens - 1) // fleet.block_tokens) * fleet.block_tokens
        all_tokens += tokens
        cached_tokens += cached
        decode = completion * fleet.step_s_per_token + completion * fleet.step_overhead_s / batch
        cold += tokens * fleet.step_s_per_token + decode
        warm += (tokens - cached) * fleet.step_s_per_token + decode
        cold_ttft += fleet.step_overhead_s + tokens * fleet.step_s_per_token
        warm_ttft += fleet.step_overhead_s + (tokens - cached) * fleet.step_s_per_token
    n = len(requests)
    return {"throughput": cold / warm, "ttft": cold_ttft / warm_ttft,
            "gpu_ms_per_request_cold": 1000 * cold / n, "gpu_ms_per_request_warm": 1000 * warm / n,
            "max_hit_rate": cached_tokens / all_tokens}
