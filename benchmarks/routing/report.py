"""The routing suite's figures: one run's summary, the ratios against the issue's targets, the JSON and
the `routing` section of `benchmarks/RESULTS.md` (the why: analysis.py; the method: README.md)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from benchmarks.harness import files, results_md
from benchmarks.harness.cli import say
from benchmarks.routing.analysis import TARGET_THROUGHPUT, analyse
from benchmarks.routing.client import Outcome
from benchmarks.routing.workload import percentile

SECTION = "routing"
TARGET_TTFT = 3.0
TARGET_QUEUE = 2.0


def _imbalance(values: Sequence[float]) -> float:
    mean = sum(values) / len(values) if values else 0.0
    return max(values) / mean if mean > 0 else float("nan")


def summarize_run(kind: str, policy: str, outcomes: list[Outcome], wall_s: float,
                  load: dict[str, dict[str, float]], names: list[str],
                  counters: list[dict[str, float]]) -> dict[str, Any]:
    """One (workload, policy) run: throughput, client TTFT, simulators' cache hits, load per worker."""
    ok = [o for o in outcomes if o.error is None]
    ttfts = [o.ttft_s for o in ok if o.ttft_s is not None]
    tokens = sum(o.completion_tokens for o in ok)
    hits = sum(c["hits"] for c in counters)
    queries = sum(c["queries"] for c in counters)
    per_worker = {}
    for name, counter in zip(names, counters, strict=True):
        per_worker[name] = {
            "requests": sum(1 for o in ok if o.worker == name),
            "finished_on_simulator": int(counter["finished"]),
            "cache_hit_rate": round(counter["hits"] / counter["queries"], 4) if counter["queries"] else None,
            "mean_outstanding": round(load[name]["mean"], 3),
            "peak_outstanding": int(load[name]["peak"]),
        }
    errors = [o.error for o in outcomes if o.error is not None]
    spread: dict[int, set[str]] = {}
    for outcome in ok:
        spread.setdefault(outcome.group, set()).add(outcome.worker)
    return {
        "workload": kind, "policy": policy, "requests": len(outcomes), "errors": len(errors),
        "first_errors": errors[:3], "wall_s": round(wall_s, 3), "output_tokens": tokens,
        "output_tokens_per_s": round(tokens / wall_s, 1),
        "ttft_p50_ms": round(1000 * percentile(ttfts, 50), 1), "ttft_p90_ms": round(1000 * percentile(ttfts, 90), 1),
        "ttft_p99_ms": round(1000 * percentile(ttfts, 99), 1),
        "ttft_p90_hits_ms": round(1000 * percentile([o.ttft_s for o in ok if o.ttft_s is not None
                                                     and o.cached_tokens], 90), 1),
        "ttft_p90_misses_ms": round(1000 * percentile([o.ttft_s for o in ok if o.ttft_s is not None
                                                       and o.cached_tokens == 0], 90), 1),
        "cache_hit_rate": round(hits / queries, 4) if queries else 0.0,
        "workers_per_group": round(sum(len(w) for w in spread.values()) / len(spread), 2) if spread else 0.0,
        "workers_per_group_max": max((len(w) for w in spread.values()), default=0),
        "queue_imbalance": round(_imbalance([load[name]["mean"] for name in names]), 3),
        "peak_queue_imbalance": round(_imbalance([load[name]["peak"] for name in names]), 3),
        "per_worker": per_worker,
    }


def _run(report: dict[str, Any], kind: str, policy: str) -> dict[str, Any] | None:
    return next((r for r in report["runs"] if r["workload"] == kind and r["policy"] == policy), None)


def compare(report: dict[str, Any]) -> list[dict[str, Any]]:
    """prefix_affinity vs round_robin per workload, each figure with its target and whether it is met."""
    rows: list[dict[str, Any]] = []
    for kind in ("uniform", "skewed"):
        rr, pa = _run(report, kind, "round_robin"), _run(report, kind, "prefix_affinity")
        if rr is None or pa is None:
            continue
        clean = rr["errors"] == 0 and pa["errors"] == 0
        throughput = pa["output_tokens_per_s"] / rr["output_tokens_per_s"]
        ttft = rr["ttft_p90_ms"] / pa["ttft_p90_ms"]
        rows.append({"workload": kind, "figure": "output tokens/s, prefix_affinity / round_robin",
                     "value": round(throughput, 2), "target": f">= {TARGET_THROUGHPUT}x",
                     "met": clean and throughput >= TARGET_THROUGHPUT})
        rows.append({"workload": kind, "figure": "p90 TTFT, round_robin / prefix_affinity",
                     "value": round(ttft, 2), "target": f">= {TARGET_TTFT}x", "met": clean and ttft >= TARGET_TTFT})
        if kind == "skewed":
            for key, label in (("queue_imbalance", "time-averaged"), ("peak_queue_imbalance", "peak")):
                rows.append({"workload": kind, "figure": f"prefix_affinity max / mean worker queue ({label})",
                             "value": pa[key], "target": f"<= {TARGET_QUEUE}x", "met": pa[key] <= TARGET_QUEUE})
    return rows


def _fmt_ratio(value: float) -> str:
    return f"{value:.2f}x"


def _table(report: dict[str, Any], kind: str) -> list[str]:
    lines = ["| policy | output tok/s | TTFT p50 ms | TTFT p90 ms | cache hit rate | requests with no hit | "
             "workers per group | requests per worker (min-max) | queue max/mean (time avg) | "
             "queue max/mean (peak) | peak queue | errors | CPU busy (gateway) |",
             "|---|---:|---:|---:|---:|---:|---:|---|---:|---:|---:|---:|---:|"]
    for run in report["runs"]:
        if run["workload"] != kind:
            continue
        workers = run["per_worker"].values()
        counts = [w["requests"] for w in workers]
        peaks = [w["peak_outstanding"] for w in workers]
        lines.append(f"| {run['policy']} | {run['output_tokens_per_s']:,.0f} | {run['ttft_p50_ms']:,.0f} | "
                     f"{run['ttft_p90_ms']:,.0f} | {run['cache_hit_rate']:.1%} | "
                     f"{run['misses']['missed_requests'] / max(run['misses']['requests'], 1):.0%} | "
                     f"{run['workers_per_group']:.1f} | {min(counts)}-{max(counts)} | "
                     f"{run['queue_imbalance']:.2f} | {run['peak_queue_imbalance']:.2f} | {max(peaks)} | "
                     f"{run['errors']} | {run['cpu']['machine_busy']:.0%} ({run['cpu']['gateway_core_share']:.0%}) |")
    return lines


def render_section(report: dict[str, Any], json_path: str | None) -> str:
    fleet, work, machine = report["fleet"], report["workload"], report["machine"]
    ideal = report.get("ideal", {})
    lines = [
        "## Routing benchmark: prefix affinity vs round robin", "",
        "Generated by `python -m benchmarks.routing`; only this section, between the routing markers, is",
        "rewritten by it. The method: [routing/README.md](routing/README.md).", "",
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
        f"tokens; **time x {fleet['time_scale']:g}** (every figure below is in wall time: divide durations, "
        f"multiply tok/s by {fleet['time_scale']:g} for the modelled GPU) |",
        f"| workload | {work['groups']} groups, system prompts {work['min_prompt_chars']:,}-"
        f"{work['max_prompt_chars']:,} characters + a distinct ~80-200-character question; "
        f"{work['requests_per_run']:,} streamed requests per run at concurrency {work['concurrency']}; "
        f"skewed: group {work['hot_group']} gets {work['hot_share']:.0%} |",
        f"| gateway | one `llm-gateway serve` per run, health/scrape every {report['health_interval_s']} s; "
        f"prefix_affinity options `{json.dumps(report['prefix_affinity_options'])}`; simulators restarted "
        "(empty KV caches) per run |",
    ]
    for kind, limit in ideal.items():
        lines.append(f"| ceiling ({kind}) | every system prompt cached vs none, in the step model: "
                     f"{limit['throughput']:.2f}x tokens/s on saturated workers (GPU time per request "
                     f"{limit['gpu_ms_per_request_cold']:.0f} vs {limit['gpu_ms_per_request_warm']:.0f} ms), "
                     f"{limit['ttft']:.1f}x TTFT on an idle worker; at most {limit['max_hit_rate']:.0%} of prompt "
                     "tokens can hit (the questions are never cached) |")
    for kind, title in (("uniform", "Uniform workload"), ("skewed", "Skewed workload (one hot group)")):
        lines += ["", f"### {title}", "", *_table(report, kind)]
    lines += ["", "### Against the targets", "", "| workload | figure | value | target | met |",
              "|---|---|---:|---|---|"]
    for row in report["comparison"]:
        met = "yes" if row["met"] else "**no**"
        lines.append(f"| {row['workload']} | {row['figure']} | {_fmt_ratio(row['value'])} | {row['target']} | {met} |")
    noisy = [f"{r['workload']}/{r['policy']}" for r in report["runs"] if r.get("overhead_benchmark_running")]
    if noisy:
        lines += ["", f"**Noisy**: `benchmarks.overhead` ran on the same 2 cores during {', '.join(noisy)}."]
    lines += ["", *report.get("analysis", [])]
    if json_path:
        lines += ["", f"Raw figures: `{json_path}`."]
    return "\n".join(lines) + "\n"


def verdict_text(report: dict[str, Any]) -> str:
    lines = ["", "prefix_affinity vs round_robin against the issue's targets:"]
    for row in report["comparison"]:
        lines.append(f"  {row['workload']:8} {row['figure']:50} {_fmt_ratio(row['value']):>7}  target "
                     f"{row['target']:8} {'met' if row['met'] else 'NOT MET'}")
    return "\n".join([*lines, "", *report.get("analysis", [])])


def write_reports(report: dict[str, Any], *, write_files: bool) -> str:
    """Add the comparison, write the JSON and the RESULTS.md section (if asked); the verdict as text."""
    report["comparison"] = compare(report)
    report["analysis"] = analyse(report)
    if write_files:
        started = datetime.strptime(report["date_utc"], "%Y-%m-%d %H:%M:%S").replace(tzinfo=UTC)
        published = files.publish(files.write_json("routing", started, report))
        section = render_section(report, files.repo_path(published))
        results_md.write(results_md.replace_section(results_md.read(), SECTION, section))
        files.retire_uncited(say)
    return verdict_text(report)
