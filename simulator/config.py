"""The simulator's settings: one frozen dataclass that fully describes a simulated worker.

Every behaviour of a simulated vLLM or Ollama worker (its models, latency, KV cache, queue limits,
faults) is read from a `SimulatorConfig`; nothing is global, so a test may run many simulators with
different settings side by side.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from simulator.faults import parse_fault

SimulatorKind = Literal["vllm", "ollama"]
"""Which server the simulator imitates."""


@dataclass(frozen=True, kw_only=True)
class SimulatorConfig:
    """How one simulated worker behaves. Defaults keep tests fast: no latency unless asked for."""

    kind: SimulatorKind = "vllm"
    """`vllm` serves the OpenAI-compatible API of vLLM; `ollama` serves Ollama's native API."""

    models: tuple[str, ...] = ("sim-model",)
    """Models the worker serves (vLLM: served model names; Ollama: models on disk, as in /api/tags)."""

    host: str = "127.0.0.1"
    """Address to bind."""

    port: int = 0
    """Port to bind; 0 picks a free port (read it back from the running simulator's `url`)."""

    seed: int = 0
    """Seed of the deterministic reply text: same (seed, model, prompt) gives the same reply."""

    response_text: str | None = None
    """A fixed reply for every request instead of the generated words (still cut by max_tokens)."""

    reply_tokens: tuple[int, int] = (8, 24)
    """Inclusive range of a generated reply's natural length in tokens (picked per prompt)."""

    default_max_tokens: int = 16
    """Completion limit when the request sets none (`max_tokens`, `num_predict`)."""

    ttft_overhead_s: float = 0.0
    """Fixed part of the time to first token, in seconds."""

    prefill_s_per_token: float = 0.0
    """Prefill time per prompt token not found in the KV cache, in seconds."""

    itl_s: float = 0.0
    """Inter-token latency, in seconds."""

    concurrency_slowdown: float = 0.0
    """Latencies are multiplied by (1 + concurrency_slowdown * (running - 1))."""

    slow_itl_s: float = 0.2
    """Inter-token latency under the `slow` fault."""

    max_num_batched_tokens: int | None = None
    """vLLM: None keeps the per-request latency model above (`ttft_overhead_s`, `prefill_s_per_token`,
    `itl_s`, `concurrency_slowdown`). A number switches to the step model of `simulator.scheduler`:
    vLLM V1's scheduler with chunked prefill, where every forward pass (step) shares this token budget
    between decodes and prefill chunks, `max_running` is max_num_seqs, and `kv_blocks` is the whole
    KV cache (running requests and cached prefixes). vLLM's default on an A100 is 2048."""

    step_overhead_s: float = 0.010
    """Step model: time of a forward pass besides its tokens (reading the weights; memory-bound)."""

    step_s_per_token: float = 0.0001
    """Step model: compute time per token scheduled in a step, prefill or decode."""

    time_scale: float = 1.0
    """Every simulated delay is multiplied by this (e.g. 8: a GPU 8 times slower), so a benchmark on
    a small machine can keep the fleet's token rate below what the gateway and clients can relay."""

    kv_blocks: int = 1024
    """KV-cache capacity in blocks (vLLM's num_gpu_blocks); cached prefixes are evicted LRU."""

    block_tokens: int = 16
    """Tokens per KV-cache block (vLLM's block_size)."""

    kv_events_endpoint: str | None = None
    """Step model: publish KV-cache events on this ZMQ endpoint as vLLM's `--kv-events-config` does
    (`simulator.kv_events`), e.g. `tcp://*:5557`, or `tcp://127.0.0.1:*` for any free port (the
    simulator's `kv_events_endpoint` then says which). None: no events."""

    kv_events_topic: str = ""
    """The topic of the KV-event messages (vLLM's `topic`, empty by default)."""

    max_model_len: int = 8192
    """Context length advertised by vLLM's /v1/models."""

    embedding_dim: int = 32
    """Length of the deterministic embedding vectors."""

    fault: str | None = None
    """A fault applied to every request (see `simulator.faults.Fault`); the model name may also be one."""

    keepalive_comments: bool = False
    """vLLM: send `: keep-alive` SSE comment lines between chunks."""

    api_key: str | None = None
    """vLLM: require `Authorization: Bearer <api_key>` on /v1/* (else 401 `{"error": "Unauthorized"}`)."""

    max_running: int = 256
    """vLLM: requests generated concurrently (max_num_seqs); the rest wait in the queue."""

    max_queued: int | None = None
    """vLLM: waiting requests allowed (max_num_queued_reqs); past running + queued → 503. None: no limit."""

    prompt_tokens_details: bool = False
    """vLLM: include `usage.prompt_tokens_details.cached_tokens` (--enable-prompt-tokens-details)."""

    version: str = "0.33.0"
    """Version reported by /version (vLLM) and /api/version (Ollama)."""

    num_parallel: int = 1
    """Ollama: requests served at once per model (OLLAMA_NUM_PARALLEL)."""

    max_queue: int = 512
    """Ollama: requests allowed to wait per model before 503 (OLLAMA_MAX_QUEUE)."""

    cold_load_seconds: float = 0.0
    """Ollama: time to load a model that is not in memory, paid before its first token."""

    max_loaded_models: int = 3
    """Ollama: models kept in memory at once; the least recently used is unloaded."""

    preloaded: bool = False
    """Ollama: start with the first `max_loaded_models` models already loaded."""

    keep_alive_s: float = 300.0
    """Ollama: how long a loaded model stays in memory (drives `expires_at` in /api/ps)."""

    num_ctx: int = 4096
    """Ollama: default context length; longer prompts are silently truncated to it."""

    pull_step_s: float = 0.0
    """Ollama: pause between /api/pull progress lines."""

    max_records: int = 100_000
    """Request records kept (the oldest are dropped past this, so long benchmarks stay bounded)."""

    shutdown_timeout_s: float = 0.25
    """How long stopping the server waits for open requests before cancelling them."""

    def __post_init__(self) -> None:
        if self.kind not in ("vllm", "ollama"):
            raise ValueError(f"kind must be 'vllm' or 'ollama', not {self.kind!r}")
        if not self.models:
            raise ValueError("models must name at least one model")
        if self.fault is not None:
            parse_fault(self.fault)  # raises ValueError on an unknown fault name
        low, high = self.reply_tokens
        if not 0 <= low <= high:
            raise ValueError(f"reply_tokens must be a range (low, high) with 0 <= low <= high, not {self.reply_tokens}")
        positive = {
            "kv_blocks": self.kv_blocks,
            "block_tokens": self.block_tokens,
            "max_running": self.max_running,
            "num_parallel": self.num_parallel,
            "max_loaded_models": self.max_loaded_models,
            "embedding_dim": self.embedding_dim,
            "max_records": self.max_records,
        }
        for name, value in positive.items():
            if value < 1:
                raise ValueError(f"{name} must be at least 1, not {value}")
        if self.max_queued is not None and self.max_queued < 0:
            raise ValueError(f"max_queued must be >= 0 or None, not {self.max_queued}")
        if self.max_queue < 0:
            raise ValueError(f"max_queue must be >= 0, not {self.max_queue}")
        if self.time_scale <= 0 or self.step_overhead_s < 0 or self.step_s_per_token < 0:
            raise ValueError("time_scale must be > 0, step_overhead_s and step_s_per_token >= 0")
        if self.kv_events_endpoint is not None and self.max_num_batched_tokens is None:
            raise ValueError("kv_events_endpoint needs the step model (max_num_batched_tokens)")
        if self.max_num_batched_tokens is not None:
            if self.kind != "vllm" or self.max_num_batched_tokens < 1:
                raise ValueError("max_num_batched_tokens (the step model) needs kind 'vllm' and a value >= 1")
            if self.kv_blocks * self.block_tokens < self.max_model_len:
                raise ValueError(  # vLLM refuses to start the same way
                    f"max_model_len {self.max_model_len} is larger than the KV cache "
                    f"({self.kv_blocks} blocks of {self.block_tokens} tokens)"
                )
