"""The peers run's figures: ratios against direct and this gateway, the table, the goal against the peers,
and the `peers` section of RESULTS.md (a short method paragraph; the method: benchmarks/peers/README.md)."""

from __future__ import annotations

from dataclasses import asdict
from datetime import datetime
from pathlib import Path

from benchmarks.harness import files, machine, nginx, results_md
from benchmarks.harness.cli import say
from benchmarks.load import wrk
from benchmarks.peers import gateway_rows
from benchmarks.peers.measure import Run, Target
from benchmarks.peers.run import Options

SECTION = "peers"


def machine_info() -> dict[str, object]:
    """The machine, with node's, nginx's and wrk's versions."""
    tools = {"node": ["node", "--version"], "nginx": [nginx.nginx_binary(), "-v"], "wrk": [wrk.wrk_binary(), "-v"]}
    return machine.machine_info(tools=tools)


def _fmt(value: float | None, digits: int = 2) -> str:
    return "-" if value is None else f"{value:,.{digits}f}"


def _ratio(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None or b == 0 else round(a / b, 3)


def _get(run: Run | None, name: str) -> float | None:
    if run is None:
        return None
    value: float = getattr(run, name)
    return value


def ratios(targets: list[Target], concurrency: list[int]) -> dict[str, dict[str, dict[str, float | None]]]:
    """Per target and concurrency: requests/s ÷ direct's, ÷ this gateway's (open mode, all features on);
    p50 ÷ this gateway's (open mode)."""
    by_key = {t.key: t for t in targets}
    out: dict[str, dict[str, dict[str, float | None]]] = {}
    for target in targets:
        if target.key == "direct" or not target.runs:
            continue
        per: dict[str, dict[str, float | None]] = {}
        for c in concurrency:
            run = target.run_at(c)
            direct = by_key["direct"].run_at(c)
            gw = by_key["gateway"].run_at(c) if "gateway" in by_key else None
            gw_all = by_key["gateway-all"].run_at(c) if "gateway-all" in by_key else None
            per[str(c)] = {
                "rps_vs_direct": _ratio(_get(run, "requests_per_s"), _get(direct, "requests_per_s")),
                "rps_vs_gateway": _ratio(_get(run, "requests_per_s"), _get(gw, "requests_per_s")),
                "rps_vs_gateway_all": _ratio(_get(run, "requests_per_s"), _get(gw_all, "requests_per_s")),
                "p50_vs_gateway": _ratio(_get(run, "p50_ms"), _get(gw, "p50_ms")),
                "p50_overhead_ms": None if run is None or direct is None else round(run.p50_ms - direct.p50_ms, 3),
            }
        out[target.key] = per
    return out


def tables(targets: list[Target], concurrency: list[int]) -> str:
    rat = ratios(targets, concurrency)
    lines = [
        "| target | version | c | requests/s | p50 ms | p90 ms | p99 ms | errors | ÷ direct (req/s) "
        "| ÷ this gateway, open (req/s) | ÷ this gateway, all features (req/s) | p50 - direct | peak RSS |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for t in targets:
        if not t.runs:
            lines.append(f"| {t.name} | {t.version or '-'} | - | {t.status.splitlines()[0][:160]} |" + " |" * 9)
            continue
        for i, run in enumerate(t.runs):
            r = rat.get(t.key, {}).get(str(run.concurrency), {})
            name = f"{t.name}{' (noisy)' if t.noisy else ''}" if i == 0 else ""
            rss = f"{t.peak_rss_mb:.0f} MB" if i == 0 and t.peak_rss_mb is not None else ""
            lines.append(
                f"| {name} | {t.version if i == 0 else ''} | {run.concurrency} | {run.requests_per_s:,.0f} "
                f"| {run.p50_ms:.3f} | {run.p90_ms:.3f} | {run.p99_ms:.3f} | {run.error_count} "
                f"| {_fmt(r.get('rps_vs_direct'), 3)} | {_fmt(r.get('rps_vs_gateway'), 2)} "
                f"| {_fmt(r.get('rps_vs_gateway_all'), 2)} | {_fmt(r.get('p50_overhead_ms'), 3)} | {rss} |"
            )
    return "\n".join(lines)


def max_rps(targets: list[Target]) -> dict[str, float]:
    return {t.key: max(run.requests_per_s for run in t.runs) for t in targets if t.runs}


def goals_text(targets: list[Target]) -> str:
    """The issue's goal: all features on, at least 2x Portkey's and 20x LiteLLM's requests/s."""
    parts = []
    for goal in gateway_rows.peer_goals(max_rps(targets)):
        ratio, met = goal["ratio"], goal["met"]
        verdict = "not measured" if met is None else ("met" if met else "**missed**")
        parts.append(f"≥ {goal['goal_times']:g}x {goal['peer']}: {'-' if ratio is None else f'{ratio}x'} ({verdict})")
    return (
        "Goal (issue 11), best requests/s of this gateway with all features on over each peer's, in this run: "
        + "; ".join(parts)
        + "."
    )


def markdown(
    started: datetime, machine_data: dict[str, object], options: Options, targets: list[Target], json_path: Path
) -> str:
    versions = ", ".join(f"{t.key} {t.version or '-'}" for t in targets if t.key != "direct")
    failed = [f"- {t.key}: {t.status}" for t in targets if t.status != "ok"]
    notes = [f"- {t.key}: {note}" for t in targets for note in t.notes]
    noisy = [t.key for t in targets if t.noisy]
    load = machine_data.get("load_average_at_start")
    parts = [
        "## Peers: this gateway beside LiteLLM and Portkey",
        "",
        f"Generated by `python -m benchmarks.peers` on {started:%Y-%m-%d %H:%M} UTC "
        f"({machine_data.get('nproc')} cores, {machine_data.get('cpu_model')}, load at start {load}); "
        f"raw figures in `{files.repo_path(json_path)}`. Versions: {versions}.",
        "",
        goals_text(targets),
        "",
        "Method: one run, same box, same nginx upstream, each target alone in turn, one process; "
        f"`wrk -t1 -cN -d{options.duration_s}s` after a warm-up. This gateway runs open (`bare`) and with all "
        "features on (`all`: key, Redis limits, a cache miss in Redis, metrics, the log line); the peers have "
        "no cache, limits or keys, so they do less per request than `all`. Ratios are requests/s over "
        "direct's and over this gateway's at the same concurrency; p50 - direct at c=1 is the per-request "
        "overhead. The full method: [peers/README.md](peers/README.md)"
        + (
            f". Figures of {', '.join(noisy)} are noisy: the machine stayed busy (other test suites and "
            "benchmarks, load above 1) through the wait, see `quiet` and `other_cpu_pct` in the JSON."
            if noisy
            else "."
        ),
        "",
        tables(targets, options.concurrency),
    ]
    if failed:
        parts += ["", "Not measured:", *failed]
    if notes:
        parts += ["", "Notes:", *notes]
    return "\n".join(parts)


def write(started: datetime, machine_data: dict[str, object], options: Options, targets: list[Target]) -> Path:
    """The run's JSON (runs folder and a published copy) and the `peers` section; the published JSON."""
    data: dict[str, object] = {
        "benchmark": "peers",
        "started": started.isoformat(),
        "machine": machine_data,
        "options": asdict(options),
        "targets": [asdict(t) for t in targets],
        "ratios": ratios(targets, options.concurrency),
        "goals": gateway_rows.peer_goals(max_rps(targets)),
    }
    published = files.publish(files.write_json("peers", started, data))
    text = markdown(started, machine_data, options, targets, published)
    results_md.write(results_md.replace_section(results_md.read(), SECTION, text))
    files.retire_uncited(say)
    return published
