"""The other suites' charts: the peers' throughput and latency, streaming time to first token, the
routing policies, and streaming at scale."""

from __future__ import annotations

from pathlib import Path

from benchmarks.plots.drawing import Data, bars, plt, save
from benchmarks.streaming_scale.report import GOAL_TTFT_MS


def _peer_targets(data: Data) -> list[Data]:
    return [t for t in data.get("targets", []) if t.get("runs")]


def peers_throughput(data: Data) -> Path:
    targets = _peer_targets(data)
    levels = sorted({run["concurrency"] for t in targets for run in t["runs"]})
    series = {
        f"c={c}": [next((r["requests_per_s"] for r in t["runs"] if r["concurrency"] == c), 0.0) for t in targets]
        for c in levels
    }
    fig, ax = plt.subplots(figsize=(10, 4.5))
    bars(ax, [t["name"] for t in targets], series, log=True)
    ax.set_ylabel("requests/s (log)")
    ax.set_title(f"This gateway beside LiteLLM and Portkey, same nginx upstream ({data.get('started')})", fontsize=9)
    return save(fig, "peers-throughput.png")


def peers_latency(data: Data) -> Path:
    targets = [t for t in _peer_targets(data) if any(r["concurrency"] == 1 for r in t["runs"])]
    at1 = [next(r for r in t["runs"] if r["concurrency"] == 1) for t in targets]
    fig, ax = plt.subplots(figsize=(10, 4.5))
    bars(ax, [t["name"] for t in targets], {"p50": [r["p50_ms"] for r in at1], "p99": [r["p99_ms"] for r in at1]},
          log=True)  # fmt: skip
    ax.set_ylabel("ms at concurrency 1 (log)")
    ax.set_title(f"Latency per request, concurrency 1 ({data.get('started')})", fontsize=9)
    return save(fig, "peers-latency.png")


def streaming(data: Data) -> Path | None:
    rows = []
    for target in data.get("targets", []):
        level = next((lv for lv in target.get("levels", []) if lv.get("concurrency") == 1), None)
        if level is not None:
            rows.append((target["name"], level))
    if not rows:
        return None
    fig, ax = plt.subplots(figsize=(9, 4))
    bars(ax, [name for name, _ in rows], {"TTFT p50": [lv["ttft_p50_ms"] for _, lv in rows],
                                           "TTFT p99": [lv["ttft_p99_ms"] for _, lv in rows]})  # fmt: skip
    ax.set_ylabel("ms to the first content chunk, concurrency 1")
    ax.set_title(f"Streaming: time to first token ({data.get('started')}; chunks 20 ms apart)", fontsize=9)
    return save(fig, "peers-streaming.png")


def routing(data: Data) -> Path | None:
    runs = [r for r in data.get("runs", []) if {"workload", "policy", "output_tokens_per_s"} <= set(r)]
    if not runs:
        return None
    workloads = sorted({r["workload"] for r in runs})
    policies = list(dict.fromkeys(r["policy"] for r in runs))
    figures = (("output_tokens_per_s", "output tokens/s"), ("ttft_p90_ms", "TTFT p90 ms"),
               ("cache_hit_rate", "prefix cache hit rate"))  # fmt: skip
    fig, axes = plt.subplots(1, len(figures), figsize=(12, 4))
    for ax, (field, label) in zip(axes, figures, strict=True):
        series = {
            policy: [
                float(next((r.get(field) or 0.0 for r in runs if r["workload"] == w and r["policy"] == policy), 0.0))
                for w in workloads
            ]
            for policy in policies
        }
        bars(ax, workloads, series)
        ax.set_title(label, fontsize=9)
    fig.suptitle(f"Routing policies on a simulated fleet ({data.get('date_utc')})", fontsize=9)
    return save(fig, "routing.png")


def _scale_series(target: Data, field: str) -> tuple[list[int], list[float]]:
    """(streams, value) of a target's points that have the figure; only positive values, for a log axis
    (an added TTFT at or under zero is within the goal anyway)."""
    pairs = [(p["streams"], p.get(field)) for p in target["points"]]
    kept = [(n, float(v)) for n, v in sorted(pairs) if v is not None and v > 0]
    return [n for n, _ in kept], [v for _, v in kept]


def streaming_scale(data: Data) -> Path | None:
    """Added p99 TTFT (against issue 23's goal) and gateway CPU per chunk as streams grow, one line per target:
    where each target leaves the goal and what a relayed chunk costs it."""
    targets = [t for t in data.get("targets", []) if t.get("key") != "direct"]
    measured = [t for t in targets if t.get("status") == "ok" and t.get("points")]
    if not measured:
        return None
    fig, (ttft, cpu) = plt.subplots(1, 2, figsize=(12, 4.5))
    for target in measured:
        line = ttft.plot(*_scale_series(target, "ttft_p99_over_direct_ms"), marker="o", label=target["name"])
        cpu.plot(*_scale_series(target, "gateway_ms_per_1k_chunks"), marker="o", color=line[0].get_color(),
                 label=target["name"])  # fmt: skip
    for target in targets:
        if target not in measured:  # a failed peer: in the legend, with no line
            ttft.plot([], [], marker="x", linestyle="none", color="gray", label=f"{target['name']}: failed")
    ttft.axhline(GOAL_TTFT_MS, color="black", linestyle="--", label=f"goal: {GOAL_TTFT_MS:g} ms")
    ttft.set(ylabel="added p99 TTFT over direct, ms (log)", title="Time to first token over direct, p99")
    cpu.set(ylabel="gateway CPU ms per 1,000 chunks (log)", title="Gateway CPU per 1,000 relayed chunks")
    levels = sorted({p["streams"] for t in measured for p in t["points"]})
    for ax in (ttft, cpu):
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xticks(levels, [str(n) for n in levels])
        ax.set_xticks([], minor=True)
        ax.set_xlabel("concurrent streams (log)")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    pace = data.get("options", {}).get("pace_s", 0.0) * 1000
    cores = data.get("machine", {}).get("nproc", "?")
    fig.suptitle(f"Streaming at scale ({data.get('started')}; a chunk every {pace:g} ms; {cores} cores shared with "
                 "the pacer and the clients)", fontsize=9)  # fmt: skip
    return save(fig, "streaming-scale.png")
