"""The overhead suite's charts: throughput and overhead per target and configuration, scaling with server
processes, and the open-loop latencies."""

from __future__ import annotations

from pathlib import Path

from benchmarks.plots.drawing import Data, bars, plt, save


def _one_process(targets: list[Data]) -> list[Data]:
    return [t for t in targets if t.get("key") != "direct" and t.get("workers", 1) == 1 and t.get("runs")]


def _label(target: Data) -> str:
    """`bare (serve)`, `bare (uvicorn)`, `auth`, `all`... (the configuration; the server for bare)."""
    config = str(target.get("config", target.get("key")))
    return f"bare ({target.get('server')})" if config == "bare" else config


def overhead_throughput(data: Data) -> Path:
    targets = _one_process(data.get("targets", []))
    direct: Data = next((t for t in data.get("targets", []) if t.get("key") == "direct"), {})
    levels = sorted({run["concurrency"] for t in targets for run in t["runs"]})
    series = {
        f"c={c}": [next((r["requests_per_s"] for r in t["runs"] if r["concurrency"] == c), 0.0) for t in targets]
        for c in levels
    }
    fig, ax = plt.subplots(figsize=(10, 4.5))
    bars(ax, [_label(t) for t in targets], series)
    goals = {name: cfg.get("goal") for name, cfg in data.get("configs", {}).items()}
    for x, target in enumerate(targets):
        goal = goals.get(target.get("config"))
        if goal:
            ax.hlines(goal["min_requests_per_s"], x - 0.4, x + 0.4, colors="black", linestyles="dashed")
    direct_best = max((r["requests_per_s"] for r in direct.get("runs", [])), default=0.0)
    ax.set_ylabel("requests/s (one process)")
    ax.set_title(f"Gateway throughput per target ({data.get('date')}; direct nginx: {direct_best:,.0f} req/s; "
                 "dashed: goal)", fontsize=9)  # fmt: skip
    return save(fig, "overhead-throughput.png")


def overhead_latency(data: Data) -> Path:
    summary = {s["key"]: s for s in data.get("summary", []) if s.get("workers", 1) == 1}
    targets = [t for t in _one_process(data.get("targets", [])) if t["key"] in summary]
    p50 = [summary[t["key"]].get("overhead_c1_p50_ms") or 0.0 for t in targets]
    p99 = [summary[t["key"]].get("overhead_c1_p99_ms") or 0.0 for t in targets]
    fig, ax = plt.subplots(figsize=(10, 4.5))
    bars(ax, [_label(t) for t in targets], {"p50": p50, "p99": p99})
    for x, target in enumerate(targets):
        goal = summary[target["key"]].get("goal") or {}
        for limit in (goal.get("max_overhead_p50_ms"), goal.get("max_overhead_p99_ms")):
            if limit is not None:
                ax.hlines(limit, x - 0.4, x + 0.4, colors="black", linestyles="dashed")
    ax.set_ylabel("ms over direct, concurrency 1")
    ax.set_title(f"Overhead per request at concurrency 1 ({data.get('date')}; dashed: goal)", fontsize=9)
    return save(fig, "overhead-latency.png")


def overhead_scaling(data: Data) -> Path | None:
    targets = data.get("targets", [])
    scaled = [t for t in targets if t.get("workers", 1) > 1 and t.get("runs")]
    if not scaled:
        return None
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 4))
    for config in sorted({t["config"] for t in scaled}):
        key = "serve" if config == "bare" else config
        group = [t for t in targets if (t.get("key") == key or (t.get("config") == config and t.get("workers", 1) > 1))]
        group = sorted((t for t in group if t.get("runs")), key=lambda t: t.get("workers", 1))
        workers = [t.get("workers", 1) for t in group]
        best = [max(r["requests_per_s"] for r in t["runs"]) for t in group]
        per_core = []
        for t in group:
            run = max(t["runs"], key=lambda r: r["requests_per_s"])
            share = t.get("cpu", {}).get(str(run["concurrency"]), {}).get("gateway", 0.0)
            per_core.append(run["requests_per_s"] / (share / 100) if share else 0.0)
        line = left.plot(workers, best, marker="o", label=config)
        if best:
            left.plot(workers, [best[0] * n / workers[0] for n in workers], linestyle=":",
                      color=line[0].get_color(), label=f"{config}, linear")  # fmt: skip
        right.plot(workers, per_core, marker="o", label=config)
        for ax in (left, right):
            ax.set_xticks(workers)
    left.set(xlabel="server processes", ylabel="best requests/s", title="Throughput")
    right.set(xlabel="server processes", ylabel="requests/s per gateway core", title="Per core the gateway got")
    for ax in (left, right):
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
        ax.set_ylim(bottom=0)
    fig.suptitle(f"Scaling with GATEWAY_WORKERS ({data.get('date')}, 2 cores shared with wrk and nginx)", fontsize=9)
    return save(fig, "overhead-scaling.png")


def overhead_open_loop(data: Data) -> Path | None:
    targets = [t for t in data.get("targets", []) if t.get("open_loop")]
    if not targets:
        return None
    fig, ax = plt.subplots(figsize=(9, 4.5))
    for target in targets:
        runs = sorted(target["open_loop"], key=lambda r: r["rate"])
        rates = [r["rate"] for r in runs]
        line = ax.plot(rates, [r["latency_ms"].get("p50", 0) for r in runs], marker="o", label=f"{target['name']} p50")
        ax.plot(rates, [r["latency_ms"].get("p99", 0) for r in runs], marker="s", linestyle="--",
                color=line[0].get_color(), label=f"{target['name']} p99")  # fmt: skip
    ax.set_yscale("log")
    ax.set(xlabel="fixed rate, requests/s", ylabel="latency from due time, ms (log)")
    ax.set_title(f"Open loop: latency at fixed rates ({data.get('date')})", fontsize=9)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    return save(fig, "overhead-open-loop.png")


