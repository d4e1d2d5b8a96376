"""Plots (PNG) of the latest results: throughput and latency per target and configuration, scaling, the
open-loop runs, the peers, streaming and routing; linked from the `plots` section of RESULTS.md.

    .venv/bin/python -m benchmarks.plots

Reads the newest benchmarks/results/{overhead,peers,peers-streaming,routing}-*.json (whichever exist),
writes benchmarks/plots/*.png and the `plots` section of benchmarks/RESULTS.md. Needs matplotlib
(`pip install -e '.[bench]'`).
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

HERE = Path(__file__).resolve().parent
RESULTS_DIR = HERE / "results"
PLOTS_DIR = HERE / "plots"
RESULTS_MD = HERE / "RESULTS.md"
SECTION_START, SECTION_END = "<!-- plots:start -->", "<!-- plots:end -->"

Data = dict[str, Any]


def latest(kind: str) -> Path | None:
    """The newest `<kind>-<UTC time>.json` (not another kind that starts the same)."""
    found = sorted(p for p in RESULTS_DIR.glob(f"{kind}-*.json") if p.stem[len(kind) + 1 :][:1].isdigit())
    return found[-1] if found else None


def _load(path: Path) -> Data:
    data = json.loads(path.read_text())
    if not isinstance(data, dict):
        raise ValueError(f"{path}: not a JSON object")
    return data


def _save(fig: Any, name: str) -> Path:
    PLOTS_DIR.mkdir(exist_ok=True)
    path = PLOTS_DIR / name
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _bars(ax: Any, labels: Sequence[str], series: dict[str, list[float]], *, log: bool = False) -> None:
    """Grouped bars: one group per label, one bar per series."""
    width = 0.8 / max(1, len(series))
    for i, (name, values) in enumerate(series.items()):
        xs = [x + (i - (len(series) - 1) / 2) * width for x in range(len(labels))]
        ax.bar(xs, values, width, label=name)
    ax.set_xticks(range(len(labels)))
    ax.set_xticklabels(labels, rotation=20, ha="right", fontsize=8)
    if log:
        ax.set_yscale("log")
    else:
        ax.margins(y=0.25)  # room for the legend above the bars
    ax.grid(axis="y", alpha=0.3)
    ax.legend(fontsize=7, loc="upper right", framealpha=0.9)


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
    _bars(ax, [_label(t) for t in targets], series)
    goals = {name: cfg.get("goal") for name, cfg in data.get("configs", {}).items()}
    for x, target in enumerate(targets):
        goal = goals.get(target.get("config"))
        if goal:
            ax.hlines(goal["min_requests_per_s"], x - 0.4, x + 0.4, colors="black", linestyles="dashed")
    direct_best = max((r["requests_per_s"] for r in direct.get("runs", [])), default=0.0)
    ax.set_ylabel("requests/s (one process)")
    ax.set_title(f"Gateway throughput per target ({data.get('date')}; direct nginx: {direct_best:,.0f} req/s; "
                 "dashed: goal)", fontsize=9)  # fmt: skip
    return _save(fig, "overhead-throughput.png")


def overhead_latency(data: Data) -> Path:
    summary = {s["key"]: s for s in data.get("summary", []) if s.get("workers", 1) == 1}
    targets = [t for t in _one_process(data.get("targets", [])) if t["key"] in summary]
    p50 = [summary[t["key"]].get("overhead_c1_p50_ms") or 0.0 for t in targets]
    p99 = [summary[t["key"]].get("overhead_c1_p99_ms") or 0.0 for t in targets]
    fig, ax = plt.subplots(figsize=(10, 4.5))
    _bars(ax, [_label(t) for t in targets], {"p50": p50, "p99": p99})
    for x, target in enumerate(targets):
        goal = summary[target["key"]].get("goal") or {}
        for limit in (goal.get("max_overhead_p50_ms"), goal.get("max_overhead_p99_ms")):
            if limit is not None:
                ax.hlines(limit, x - 0.4, x + 0.4, colors="black", linestyles="dashed")
    ax.set_ylabel("ms over direct, concurrency 1")
    ax.set_title(f"Overhead per request at concurrency 1 ({data.get('date')}; dashed: goal)", fontsize=9)
    return _save(fig, "overhead-latency.png")


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
    return _save(fig, "overhead-scaling.png")


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
    return _save(fig, "overhead-open-loop.png")


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
    _bars(ax, [t["name"] for t in targets], series, log=True)
    ax.set_ylabel("requests/s (log)")
    ax.set_title(f"This gateway beside LiteLLM and Portkey, same nginx upstream ({data.get('started')})", fontsize=9)
    return _save(fig, "peers-throughput.png")


def peers_latency(data: Data) -> Path:
    targets = [t for t in _peer_targets(data) if any(r["concurrency"] == 1 for r in t["runs"])]
    at1 = [next(r for r in t["runs"] if r["concurrency"] == 1) for t in targets]
    fig, ax = plt.subplots(figsize=(10, 4.5))
    _bars(ax, [t["name"] for t in targets], {"p50": [r["p50_ms"] for r in at1], "p99": [r["p99_ms"] for r in at1]},
          log=True)  # fmt: skip
    ax.set_ylabel("ms at concurrency 1 (log)")
    ax.set_title(f"Latency per request, concurrency 1 ({data.get('started')})", fontsize=9)
    return _save(fig, "peers-latency.png")


def streaming(data: Data) -> Path | None:
    rows = []
    for target in data.get("targets", []):
        level = next((lv for lv in target.get("levels", []) if lv.get("concurrency") == 1), None)
        if level is not None:
            rows.append((target["name"], level))
    if not rows:
        return None
    fig, ax = plt.subplots(figsize=(9, 4))
    _bars(ax, [name for name, _ in rows], {"TTFT p50": [lv["ttft_p50_ms"] for _, lv in rows],
                                           "TTFT p99": [lv["ttft_p99_ms"] for _, lv in rows]})  # fmt: skip
    ax.set_ylabel("ms to the first content chunk, concurrency 1")
    ax.set_title(f"Streaming: time to first token ({data.get('started')}; chunks 20 ms apart)", fontsize=9)
    return _save(fig, "peers-streaming.png")


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
        _bars(ax, workloads, series)
        ax.set_title(label, fontsize=9)
    fig.suptitle(f"Routing policies on a simulated fleet ({data.get('date_utc')})", fontsize=9)
    return _save(fig, "routing.png")


PLOTTERS: dict[str, list[tuple[str, Callable[[Data], Path | None]]]] = {
    "overhead": [
        ("Throughput per target and configuration", overhead_throughput),
        ("Overhead per request at concurrency 1", overhead_latency),
        ("Scaling with server processes", overhead_scaling),
        ("Open loop: latency at fixed rates", overhead_open_loop),
    ],
    "peers": [("Throughput beside LiteLLM and Portkey", peers_throughput), ("Latency beside the peers", peers_latency)],
    "peers-streaming": [("Streaming: time to first token", streaming)],
    "routing": [("Routing policies compared", routing)],
}


def write_section(lines: list[str]) -> None:
    """Replace (or append) the `plots` section of RESULTS.md."""
    old = RESULTS_MD.read_text() if RESULTS_MD.exists() else ""
    section = "\n".join([SECTION_START, "## Plots", "", *lines, SECTION_END])
    start, end = old.find(SECTION_START), old.find(SECTION_END)
    if start != -1 and end > start:
        text = old[:start] + section + old[end + len(SECTION_END) :]
    else:
        text = old.rstrip("\n") + "\n\n" + section + "\n"
    RESULTS_MD.write_text(text)


def make_all() -> list[str]:
    """Every plot the latest results allow; the markdown lines that link them."""
    lines = [
        "Generated by `python -m benchmarks.plots` (`make bench` runs it last) from the newest JSON of each "
        "benchmark in `benchmarks/results/`.",
        "",
    ]
    for kind, plotters in PLOTTERS.items():
        source = latest(kind)
        if source is None:
            lines.append(f"- {kind}: no results yet")
            continue
        data = _load(source)
        for title, plot in plotters:
            try:
                path = plot(data)
            except (KeyError, TypeError, ValueError) as exc:  # an older JSON without the fields
                print(f"{kind}: {title}: not plotted ({type(exc).__name__}: {exc})", file=sys.stderr)
                continue
            if path is not None:
                rel = path.relative_to(HERE) if path.is_relative_to(HERE) else path
                lines += [f"### {title}", "", f"![{title}]({rel}) (from `results/{source.name}`)", ""]
                print(f"wrote {path}", file=sys.stderr)
    return lines


def main(argv: Sequence[str] | None = None) -> int:
    if argv:
        print(__doc__, file=sys.stderr)
        return 2
    write_section(make_all())
    print(f"updated the plots section of {RESULTS_MD}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
