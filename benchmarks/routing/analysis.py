"""The routing suite's explanation of its own figures: why each target is met or not, in sentences
computed from the run (the `### Why` part of its section of RESULTS.md)."""

from __future__ import annotations

from typing import Any

from benchmarks.routing.lookup import find_run

TARGET_THROUGHPUT = 1.8
BUSY_MACHINE = 0.85
"""Above this share of both cores busy, every process waits for a core and TTFT shows it."""


def gpu_ms(ideal: dict[str, float], hit_rate: float) -> float:
    """GPU time per request on a saturated worker at a token hit rate (linear between no hit and every
    system prompt cached)."""
    cold, warm = ideal["gpu_ms_per_request_cold"], ideal["gpu_ms_per_request_warm"]
    return cold - (cold - warm) * min(hit_rate / ideal["max_hit_rate"], 1.0)


def _throughput(report: dict[str, Any], kind: str, rr: dict[str, Any], pa: dict[str, Any]) -> str:
    ideal = report["ideal"][kind]
    ratio = pa["output_tokens_per_s"] / rr["output_tokens_per_s"]
    rr_ms, pa_ms = gpu_ms(ideal, rr["cache_hit_rate"]), gpu_ms(ideal, pa["cache_hit_rate"])
    return (f"- **Throughput ({kind})**: {ratio:.2f}x. In the step model a request's uncached prompt tokens take "
            "the whole worker's compute (every request on the worker waits for that step), so a worker's "
            "throughput follows its GPU time per request: at round_robin's "
            f"{rr['cache_hit_rate']:.0%} token hit rate that is ~{rr_ms:.0f} ms, at prefix_affinity's "
            f"{pa['cache_hit_rate']:.0%} ~{pa_ms:.0f} ms (ceiling {ideal['gpu_ms_per_request_warm']:.0f} ms), "
            f"which predicts {rr_ms / pa_ms:.2f}x when every worker is kept busy. The measured ratio also "
            "pays for uneven load: a worker with more than its share of requests finishes them later.")


def _ttft(kind: str, rr: dict[str, Any], pa: dict[str, Any]) -> str:
    misses = pa["misses"]
    miss_share = misses["missed_requests"] / max(misses["requests"], 1)
    return (f"- **TTFT ({kind})**: p90 {rr['ttft_p90_ms']:,.0f} ms (round_robin) vs {pa['ttft_p90_ms']:,.0f} ms "
            f"({rr['ttft_p90_ms'] / pa['ttft_p90_ms']:.2f}x lower), p50 {rr['ttft_p50_ms']:,.0f} vs "
            f"{pa['ttft_p50_ms']:,.0f} ms. A first token waits for the prefill chunks scheduled before and with "
            "it on its worker, so round_robin's misses delay its hits too (p90 of its hits "
            f"{rr['ttft_p90_hits_ms']:,.0f} ms, of its misses {rr['ttft_p90_misses_ms']:,.0f} ms); "
            f"prefix_affinity's {miss_share:.0%} of requests that missed (p90 {pa['ttft_p90_misses_ms']:,.0f} ms: "
            "most were the first request of a group, while the fleet was cold and every worker prefilled at "
            f"once) sit above its p90, which its hits set (p90 {pa['ttft_p90_hits_ms']:,.0f} ms).")


def _misses(kind: str, pa: dict[str, Any]) -> str:
    misses = pa["misses"]
    missed = misses["missed_requests"]
    return (f"- **Cache misses ({kind})**: {missed} of prefix_affinity's {misses['requests']} requests "
            f"({missed / max(misses['requests'], 1):.0%}) reused no block (as the workers reported in "
            f"`prompt_tokens_details`): {misses['missed_first_visit']} were their group's first request on "
            f"that worker (each worker saw {misses['groups_per_worker']:.1f} groups over the run), "
            f"{misses['missed_evicted']} found their group evicted.")


def _cpu(report: dict[str, Any]) -> str:
    busy = [r["cpu"]["machine_busy"] for r in report["runs"] if "cpu" in r]
    ours = [r["cpu"]["gateway_core_share"] + r["cpu"]["simulators_core_share"] + r["cpu"]["client_core_share"]
            for r in report["runs"] if "cpu" in r]
    gateway = [r["cpu"]["gateway_core_share"] for r in report["runs"] if "cpu" in r]
    if not busy:
        return "- **CPU**: not measured."
    verdict = ("below saturation" if max(busy) < BUSY_MACHINE
               else "near saturation in some runs, mostly from other work on the box (their TTFT includes some "
                    "waiting for a core)")
    return (f"- **CPU**: the machine's 2 cores were {min(busy):.0%}-{max(busy):.0%} busy during the runs "
            f"(every process, other engineers' included): {verdict}. This benchmark's own processes used "
            f"{min(ours):.0%}-{max(ours):.0%} of one core (the gateway {min(gateway):.0%}-{max(gateway):.0%}), "
            f"because the simulated GPUs run x{report['fleet']['time_scale']:g} slower than real ones. In "
            "development runs at x4 on the same busy box (100% busy), prefix_affinity's p90 TTFT came out "
            "1.6-3x higher in modelled time than at x8: every millisecond a process waits for a core weighs "
            "twice as much against the modelled GPU at x4.")


def _scope(report: dict[str, Any]) -> str | None:
    """What the figures depend on: the replies' length against the prompts', and the batch size."""
    ideal = report["ideal"].get("uniform")
    if not ideal:
        return None
    fleet, work = report["fleet"], report["workload"]
    batch = max(float(work["concurrency"]) / float(fleet["workers"]), 1.0)

    def decode_ms(tokens: float) -> float:
        return 1000 * tokens * (float(fleet["step_s_per_token"]) + float(fleet["step_overhead_s"]) / batch)

    mean_reply = sum(fleet["reply_tokens"]) / 2
    cold = ideal["gpu_ms_per_request_cold"] - decode_ms(mean_reply)
    warm = ideal["gpu_ms_per_request_warm"] - decode_ms(mean_reply)
    long_reply = (cold + decode_ms(256)) / (warm + decode_ms(256))
    return (f"- **Scope**: these gains hold for this workload: replies of {fleet['reply_tokens'][0]}-"
            f"{fleet['reply_tokens'][1]} tokens after 500-1,500-token shared prompts, ~{batch:.0f} requests per "
            "worker, a closed loop (each client sends its next request when one ends), and a KV cache scaled down "
            "with the number of prompts. Prefill is then most of a worker's work, which is what prefix affinity "
            "saves. With 256-token replies (SGLang's generated-shared-prefix default) at the same concurrency, "
            f"decode would dominate and the ceiling above would fall to {long_reply:.2f}x; a larger batch "
            "amortizes each step's overhead and raises it again. The same simulator, settings and request "
            "sequence serve every policy.")


def analyse(report: dict[str, Any]) -> list[str]:
    """Markdown bullet points explaining the run's figures against the targets."""
    lines = ["### Why", ""]
    for kind in ("uniform", "skewed"):
        rr, pa = find_run(report, kind, "round_robin"), find_run(report, kind, "prefix_affinity")
        if rr is None or pa is None or kind not in report["ideal"]:
            continue
        lines += [_throughput(report, kind, rr, pa), _ttft(kind, rr, pa), _misses(kind, pa)]
        if kind == "skewed":
            lines.append(f"- **Queues (skewed)**: prefix_affinity's busiest worker held {pa['queue_imbalance']:.2f}x "
                         f"the mean outstanding requests on average and {pa['peak_queue_imbalance']:.2f}x the mean "
                         f"peak; a group reached {pa['workers_per_group']:.1f} workers on average (the hot group "
                         "spills over to more workers whenever its owners are loaded past the guard).")
    lines.append(_cpu(report))
    scope = _scope(report)
    if scope is not None:
        lines.append(scope)
    return lines
