"""The routing suite's fleet: the simulated vLLM workers' settings in the simulator's step model (why these
figures: README.md). Nothing here starts a process."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any


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
