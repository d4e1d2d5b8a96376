"""The routing suite's figures: one run's summary, the ratios against the issue's targets, the JSON and
the `routing` section of `benchmarks/RESULTS.md` (its tables: section.py; the why: analysis.py; which
policy for which fleet: recommend.py; the method: README.md)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from benchmarks.harness import files, results_md
from benchmarks.harness.cli import say
from benchmarks.routing.analysis import TARGET_THROUGHPUT, analyse
from benchmarks.routing.client import Outcome
from benchmarks.routing.lookup import find_run
from benchmarks.routing.recommend import recommend
from benchmarks.routing.section import render_section

SECTION = "routing"
TARGET_TTFT = 3.0
TARGET_QUEUE = 2.0


def percentile(values: list[float], q: float) -> float:
    """The `q`-th percentile (0-100) by linear interpolation; NaN for no values."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    rank = (len(ordered) - 1) * q / 100
    low = int(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


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
        "ttft_p90_burst_ms": round(1000 * percentile([o.ttft_s for o in ok if o.ttft_s is not None
                                                      and o.phase == "burst"], 90), 1),
        "per_worker": per_worker,
    }


def compare(report: dict[str, Any]) -> list[dict[str, Any]]:
    """prefix_affinity vs round_robin per workload, each figure with its target and whether it is met."""
    rows: list[dict[str, Any]] = []
    for kind in ("uniform", "skewed"):
        rr, pa = find_run(report, kind, "round_robin"), find_run(report, kind, "prefix_affinity")
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


def verdict_text(report: dict[str, Any]) -> str:
    lines = ["", "prefix_affinity vs round_robin against the issue's targets:"]
    for row in report["comparison"]:
        lines.append(f"  {row['workload']:8} {row['figure']:50} {row['value']:>6.2f}x  target "
                     f"{row['target']:8} {'met' if row['met'] else 'NOT MET'}")
    return "\n".join([*lines, "", *report.get("analysis", []), "", *report.get("recommendation", [])])


def write_reports(report: dict[str, Any], *, write_files: bool) -> str:
    """Add the comparison, write the JSON and the RESULTS.md section (if asked); the verdict as text."""
    report["comparison"] = compare(report)
    report["analysis"] = analyse(report)
    report["recommendation"] = recommend(report)
    if write_files:
        started = datetime.strptime(report["date_utc"], "%Y-%m-%d %H:%M:%S").replace(tzinfo=UTC)
        published = files.publish(files.write_json("routing", started, report))
        section = render_section(report, files.repo_path(published))
        results_md.write(results_md.replace_section(results_md.read(), SECTION, section))
        files.retire_uncited(say)
    return verdict_text(report)
