"""The routing suite's section of `benchmarks/RESULTS.md`: the setup, each workload's ceiling, one table
per workload and gateway replica count (every policy, with its gap to the ceiling), the targets, the
why and the recommendation (both computed elsewhere from the figures)."""

from __future__ import annotations

import json
from typing import Any

from benchmarks.routing.lookup import layouts, policies

DECODE_BOUND = 0.5
"""Above this share of GPU time decoding (without the cache), a workload's ceiling is about batching."""


def ceiling_text(limit: dict[str, float]) -> str:
    text = (f"{limit['tokens_per_s']:,.0f} output tok/s with a perfect prefix cache and even batches "
            f"({limit['throughput']:.2f}x no cache's {limit['tokens_per_s_no_cache']:,.0f}); TTFT p50/p90 "
            f"{limit['ttft_p50_ms']:,.0f}/{limit['ttft_p90_ms']:,.0f} ms on an idle worker; at most "
            f"{limit['max_hit_rate']:.0%} of prompt tokens can hit")
    if limit["decode_share"] > DECODE_BOUND:
        text += (f"; decode-bound ({limit['decode_share']:.0%} of GPU time decoding without the cache): the "
                 "ceiling is about batching (an even spread of the requests), the cache adds at most "
                 f"{limit['throughput'] - 1:.0%}")
    return text


def _gap(run: dict[str, Any], limit: dict[str, float] | None) -> tuple[str, str]:
    """The run's tokens/s as a share of the ceiling's, and its p90 TTFT as a multiple of the ceiling's."""
    if not limit:
        return "-", "-"
    return (f"{run['output_tokens_per_s'] / limit['tokens_per_s']:.0%}",
            f"{run['ttft_p90_ms'] / limit['ttft_p90_ms']:.1f}x")


def _table(report: dict[str, Any], kind: str, replicas: int) -> list[str]:
    limit = report.get("ideal", {}).get(kind)
    burst = kind == "burst"
    lines = ["| policy | output tok/s | of ceiling | TTFT p50 ms | TTFT p90 ms | p90 / ceiling's | cache hit rate | "
             f"{'burst p90 TTFT ms | ' if burst else ''}requests with no hit | workers per group | "
             "requests per worker (min-max) | queue max/mean (time avg) | queue max/mean (peak) | errors | "
             "CPU busy (gateways) |",
             f"|---|---:|---:|---:|---:|---:|---:|{'---:|' if burst else ''}---:|---:|---|---:|---:|---:|---:|"]
    for run in policies(report, kind, replicas):
        counts = [w["requests"] for w in run["per_worker"].values()]
        share, times = _gap(run, limit)
        misses = run["misses"]
        burst_cell = f"{run.get('ttft_p90_burst_ms', float('nan')):,.0f} | " if burst else ""
        cpu = run["cpu"]
        lines.append(f"| {run['policy']} | {run['output_tokens_per_s']:,.0f} | {share} | {run['ttft_p50_ms']:,.0f} | "
                     f"{run['ttft_p90_ms']:,.0f} | {times} | {run['cache_hit_rate']:.1%} | {burst_cell}"
                     f"{misses['missed_requests'] / max(misses['requests'], 1):.0%} | {run['workers_per_group']:.1f} | "
                     f"{min(counts)}-{max(counts)} | {run['queue_imbalance']:.2f} | "
                     f"{run['peak_queue_imbalance']:.2f} | {run['errors']} | {cpu['machine_busy']:.0%} "
                     f"({cpu['gateway_core_share']:.0%}) |")
    return lines


def _setup(report: dict[str, Any]) -> list[str]:
    fleet, machine = report["fleet"], report["machine"]
    lines = [
        "| | |", "|---|---|",
        f"| date (UTC) | {report['date_utc']} ({report['duration_s']:.0f} s{', --quick' if report['quick'] else ''}) |",
        f"| machine | {machine['nproc']} cores, {machine['cpu_model']}, Linux {machine['kernel']}, "
        f"{machine['python']} |",
        f"| fleet | {fleet['workers']} simulated vLLM workers (subprocesses) in the step model (vLLM's "
        f"chunked-prefill scheduler, `simulator/scheduler.py`): a Llama-3.1-8B on an A100-80GB each, a step "
        f"(forward pass) lasts {fleet['step_overhead_s'] * 1000:.0f} ms + {fleet['step_s_per_token'] * 1e6:.0f} us "
        f"per token in it, max_num_batched_tokens {fleet['max_num_batched_tokens']}, max_num_seqs "
        f"{fleet['max_running']}, KV cache {fleet['kv_blocks']} x {fleet['block_tokens']}-token blocks shared by "
        f"running requests and cached prefixes, replies {fleet['reply_tokens'][0]}-{fleet['reply_tokens'][1]} "
        f"tokens unless said; **time x {fleet['time_scale']:g}** (every figure below is in wall time: divide "
        f"durations, multiply tok/s by {fleet['time_scale']:g} for the modelled GPU) |",
        f"| gateway | one `llm-gateway serve` per run, or independent replicas (no shared state) that the clients "
        f"take in turn; health/scrape every {report['health_interval_s']} s; prefix_affinity options "
        f"`{json.dumps(report['prefix_affinity_options'])}`; simulators restarted (empty KV caches) per run; "
        f"clients in a closed loop at concurrency {report['workload']['concurrency']} |",
    ]
    for kind, work in report.get("workloads", {}).items():
        lines.append(f"| {kind} | {work['description']}; {work['requests']:,} streamed requests per run, max_tokens "
                     f"{work['max_tokens']} |")
    for kind, limit in report.get("ideal", {}).items():
        if limit:
            lines.append(f"| ceiling ({kind}) | {ceiling_text(limit)} |")
    return lines


def render_section(report: dict[str, Any], json_path: str | None) -> str:
    lines = [
        "## Routing benchmark: every policy on every workload, against the step model's ceiling", "",
        "Generated by `python -m benchmarks.routing`; only this section, between the routing markers, is",
        "rewritten by it. The method: [routing/README.md](routing/README.md). *Of ceiling*: output tokens/s",
        "as a share of the ceiling's; *p90 / ceiling's*: p90 TTFT as a multiple of an idle worker's with a",
        "perfect cache.", "", *_setup(report),
    ]
    for kind, replicas in layouts(report):
        behind = "one gateway" if replicas == 1 else f"{replicas} gateway replicas"
        lines += ["", f"### {kind}, {behind}", "", *_table(report, kind, replicas)]
    lines += ["", "### Against the targets", "", "| workload | figure | value | target | met |",
              "|---|---|---:|---|---|"]
    for row in report["comparison"]:
        lines.append(f"| {row['workload']} | {row['figure']} | {row['value']:.2f}x | {row['target']} | "
                     f"{'yes' if row['met'] else '**no**'} |")
    noisy = [f"{r['workload']}/{r['policy']}" for r in report["runs"] if r.get("overhead_benchmark_running")]
    if noisy:
        lines += ["", f"**Noisy**: `benchmarks.overhead` ran on the same 2 cores during {', '.join(noisy)}."]
    lines += ["", *report.get("analysis", []), "", *report.get("recommendation", [])]
    if json_path:
        lines += ["", f"Raw figures: `{json_path}`."]
    return "\n".join(lines) + "\n"
