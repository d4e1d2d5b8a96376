"""What the step model allows at most on a workload: the *ceiling* every policy's figures are measured
against, and how long a run of it takes.

The perfect prefix cache: every request finds cached every full prompt block that any earlier request
(in the workload's order) computed, on whichever worker it runs, never evicted; the first request of
a prefix still computes it. The perfect spread: the closed loop's `concurrency` requests (fewer when
there are fewer sessions) evenly over the workers, each batch sharing every step's overhead (with fixed
prefill work per request, a worker's tokens per step grow with its batch but less than in proportion,
so an even spread gives the most tokens/s); a burst's requests count as the loop's (they lift the
concurrency only while they run, which lets a run beat this ceiling a little). The prompt is counted
as the simulator serializes and hashes it.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass

from benchmarks.routing.fleet_settings import FleetSettings
from benchmarks.routing.workloads import Workload
from simulator.latency import chained_block_hashes
from simulator.text import CHARS_PER_TOKEN, count_tokens, serialize_messages

RUN_OVERHEAD_S = 13.0
"""Starting and stopping a fleet and a gateway around each run: 11-13 s measured on the 2-core box."""


@dataclass(frozen=True)
class Prompt:
    tokens: int
    reusable: int
    """Leading tokens a perfect prefix cache holds for it (whole blocks computed by earlier requests)."""


def prompts(workload: Workload, block_tokens: int) -> Iterator[Prompt]:
    """Each request's prompt tokens and what a perfect cache could give it, in the workload's order."""
    seen: set[bytes] = set()
    for request in workload.ordered():
        text = serialize_messages(request.messages)
        tokens = count_tokens(text)
        hashes = chained_block_hashes("bench", text, block_tokens * CHARS_PER_TOKEN)
        hits = next((i for i, block in enumerate(hashes) if block not in seen), len(hashes))
        # vLLM always computes the last prompt token (as the simulator's scheduler does).
        yield Prompt(tokens, min(hits, max(tokens - 1, 0) // block_tokens) * block_tokens)
        seen.update(hashes)


def _prefill_s(tokens: int, fleet: FleetSettings) -> float:
    """An idle worker's time to first token for `tokens` uncached prompt tokens (chunked by the budget)."""
    steps = max(math.ceil(tokens / fleet.max_num_batched_tokens), 1)
    return steps * fleet.step_overhead_s + max(tokens, 1) * fleet.step_s_per_token


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(int(len(ordered) * q / 100), len(ordered) - 1)] if ordered else math.nan


def ceiling(workload: Workload, fleet: FleetSettings, concurrency: int) -> dict[str, float]:
    """The step model's best case for `workload` (GPU times in modelled ms; tokens/s and TTFT in wall
    time, x `time_scale`): `throughput` and `ttft` are what the perfect cache gains over none;
    `tokens_per_s` the fleet's output tokens/s with the perfect cache and spread; `ttft_p50_ms` and
    `ttft_p90_ms` an idle worker's with the perfect cache; `decode_share` the share of GPU time spent
    decoding without it (above one half the workload is decode-bound: its ceiling is about batching,
    not the cache)."""
    low, high = workload.reply_tokens or fleet.reply_tokens
    completion = min((low + high) / 2, workload.max_tokens)
    batch = min(max(min(concurrency, len(workload.sessions)) / fleet.workers, 1.0), fleet.max_running)
    decode_s = completion * (fleet.step_s_per_token + fleet.step_overhead_s / batch)
    listed = list(prompts(workload, fleet.block_tokens))
    if not listed:
        return {}
    n, scale = len(listed), fleet.time_scale
    cold = sum(p.tokens for p in listed) * fleet.step_s_per_token / n + decode_s
    warm = sum(p.tokens - p.reusable for p in listed) * fleet.step_s_per_token / n + decode_s
    warm_ttfts = [_prefill_s(p.tokens - p.reusable, fleet) for p in listed]
    cold_ttft = sum(_prefill_s(p.tokens, fleet) for p in listed) / n
    return {
        "throughput": cold / warm, "ttft": cold_ttft / (sum(warm_ttfts) / n),
        "gpu_ms_per_request_cold": 1000 * cold, "gpu_ms_per_request_warm": 1000 * warm,
        "max_hit_rate": sum(p.reusable for p in listed) / sum(p.tokens for p in listed),
        "tokens_per_s": fleet.workers * completion / (warm * scale),
        "tokens_per_s_no_cache": fleet.workers * completion / (cold * scale),
        "ttft_p50_ms": 1000 * scale * _percentile(warm_ttfts, 50),
        "ttft_p90_ms": 1000 * scale * _percentile(warm_ttfts, 90),
        "decode_share": decode_s / cold,
    }


def run_seconds(workload: Workload, fleet: FleetSettings, concurrency: int) -> float:
    """About how long one run of `workload` takes at worst (no cache hit, as round robin mostly gets),
    its fleet and gateway's start and stop included."""
    limit = ceiling(workload, fleet, concurrency)
    if not limit:
        return RUN_OVERHEAD_S
    gpu_s = limit["gpu_ms_per_request_cold"] / 1000 * fleet.time_scale
    return RUN_OVERHEAD_S + len(workload) * gpu_s / fleet.workers
