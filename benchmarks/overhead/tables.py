"""The overhead suite's tables in RESULTS.md: the headline, each target against its goals, the
configurations, and every point (scaling, open loop and profiles: phase_tables.py)."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING

from benchmarks.harness import configs, cpu_share

if TYPE_CHECKING:
    from benchmarks.load.wrk import WrkResult
    from benchmarks.overhead.results import GatewaySummary, TargetResult

ROLES = ("gateway", "upstream", "redis", cpu_share.LOAD_GENERATOR)


def signed_ms(value: float | None) -> str:
    return "-" if value is None else f"{value:+.3f}"


def _errors(run: WrkResult) -> str:
    if run.error_count == 0:
        return "0"
    return ", ".join(f"{kind} {n}" for kind, n in run.errors.items() if n)


def verdict(ok: bool | None) -> str:
    return "-" if ok is None else ("yes" if ok else "**no**")


def cpu_cells(shares: dict[str, float] | None) -> str:
    if not shares:
        return "-"
    return " / ".join(f"{shares[role]:.0f}" if role in shares else "-" for role in ROLES)


def one_process_key(config: str, server: str = "serve") -> str:
    """The key of a configuration's one-process target (`serve`, `uvicorn`... for bare)."""
    return server if config == "bare" else config


def failures(targets: list[TargetResult]) -> str:
    """The targets that could not be measured, and why."""
    lines = [f"- {t.name}: {p.splitlines()[0][:300]}" for t in targets for p in t.problems if p.startswith("failed")]
    return "### Not measured\n\n" + "\n".join(lines) + "\n" if lines else ""


def headline(targets: list[TargetResult], summaries: list[GatewaySummary]) -> str:
    """All features on, against the issue's goals, first thing in the file."""
    summary = next((s for s in summaries if s.key == "all"), None)
    target = next((t for t in targets if t.key == "all"), None)
    if target is not None and not target.runs:
        problems = "; ".join(p.splitlines()[0][:300] for p in target.problems)
        return f"## Headline: all features on\n\nNot measured in this run: {problems or 'no runs'}.\n"
    if summary is None or target is None or summary.goal is None:
        return ""
    goal = summary.goal
    missed = [s for s in summaries if s.missed]
    lines = [
        "## Headline: all features on (auth, Redis limits, cache miss, metrics, request log line)",
        "",
        f"One `llm-gateway serve` process: **{summary.max_requests_per_s:,.0f} requests/s** "
        f"(goal ≥ {goal.min_requests_per_s:,.0f}: {verdict(summary.meets_throughput)}); overhead at "
        f"concurrency 1 **{signed_ms(summary.overhead_c1_p50_ms)} ms p50** (goal ≤ {goal.max_overhead_p50_ms:g}: "
        f"{verdict(summary.meets_overhead)}) and **{signed_ms(summary.overhead_c1_p99_ms)} ms p99** "
        f"(goal ≤ {goal.max_overhead_p99_ms:g}: {verdict(summary.meets_overhead_p99)}); "
        f"{summary.errors} errors{'; ' + '; '.join(target.problems) if target.problems else ''}. "
        "Against LiteLLM and Portkey in one run: the peers section below.",
    ]
    if missed:
        lines += [
            "",
            "Goals missed in this run: "
            + "; ".join(f"`{s.key}` ({', '.join(s.missed)})" for s in missed)
            + ". Where the time goes: *Profiles* below.",
        ]
    return "\n".join(lines) + "\n"


def _strings(value: object) -> list[str]:
    return [str(item) for item in value] if isinstance(value, list) else []


def _list(value: object) -> str:
    return ", ".join(_strings(value)) or "-"


def machine_table(started: datetime, machine: dict[str, object], options: dict[str, object]) -> str:
    packages = machine.get("packages")
    package_text = (
        ", ".join(f"{name} {version}" for name, version in packages.items()) if isinstance(packages, dict) else "-"
    )
    rows = [
        ("date (UTC)", started.strftime("%Y-%m-%d %H:%M:%S")),
        ("cores (nproc)", str(machine.get("nproc"))),
        ("CPU", str(machine.get("cpu_model"))),
        ("kernel", str(machine.get("kernel"))),
        ("Python", str(machine.get("python"))),
        ("packages", package_text),
        ("nginx", str(machine.get("nginx"))),
        ("wrk", str(machine.get("wrk"))),
        *([("redis", str(machine["redis"]))] if "redis" in machine else []),
        ("load average at start", str(machine.get("load_average_at_start"))),
        (
            "run",
            f"{options.get('duration_s')} s per point, {options.get('warmup_s')} s warm-up per target, "
            f"noisy above {options.get('noisy_pct')}% of a core, up to {options.get('retries')} retries, "
            f"up to {options.get('quiet_wait_s')} s wait for quiet",
        ),
        (
            "points",
            f"direct and bare at c={_list(options.get('concurrency'))}; "
            f"{', '.join(c for c in _strings(options.get('configs')) if c != 'bare') or 'no other configuration'} "
            f"at c={_list(options.get('config_concurrency'))}; "
            f"{_list(options.get('scaling_configs'))} with {_list(options.get('workers'))} processes at "
            f"c={_list(options.get('scaling_concurrency'))}; open loop: {_list(options.get('open_loop_configs'))} "
            f"at {options.get('rates')} req/s",
        ),
    ]
    return "\n".join(["| | |", "|---|---|", *(f"| {key} | {value} |" for key, value in rows)])


def results_table(targets: list[TargetResult], noisy_pct: float | None = None) -> str:
    """All points; with `noisy_pct`, points whose interference stayed above it are marked."""
    rows = [
        "| target | connections | requests/s | p50 ms | p90 ms | p99 ms | errors | CPU % gateway / nginx / "
        "Redis / wrk | other CPU % | steal % |",
        "|---|---:|---:|---:|---:|---:|---|---|---:|---:|",
    ]
    for target in targets:
        for run in target.runs:
            noise = target.interference.get(run.concurrency)
            other = "-" if noise is None else f"{noise.other_cpu_pct:.0f}"
            if noise is not None and noisy_pct is not None and noise.other_cpu_pct + noise.steal_pct > noisy_pct:
                other += " (noisy)"
            steal = "-" if noise is None else f"{noise.steal_pct:.0f}"
            rows.append(
                f"| {target.name} | {run.concurrency} | {run.requests_per_s:,.0f} | {run.p50_ms:.3f} "
                f"| {run.p90_ms:.3f} | {run.p99_ms:.3f} | {_errors(run)} "
                f"| {cpu_cells(target.cpu.get(run.concurrency))} | {other} | {steal} |"
            )
    return "\n".join(rows)


def summary_table(targets: list[TargetResult], summaries: list[GatewaySummary]) -> str:
    """The bare configuration under each ASGI server, against the bare goals."""
    names = {target.key: target.name for target in targets}
    summaries = [s for s in summaries if s.config == "bare" and s.workers == 1]
    goal = configs.CONFIGS["bare"].goal
    assert goal is not None
    concurrencies = sorted({c for summary in summaries for c in summary.throughput_ratio})
    ratio_heads = "".join(f" ratio c={c} |" for c in concurrencies)
    rows = [
        f"| gateway | overhead c=1 p50 ms | overhead c=1 p99 ms | max requests/s |{ratio_heads} "
        f"peak RSS MB | ≥ {goal.min_requests_per_s:,.0f} req/s | ≤ {goal.max_overhead_p50_ms} ms |",
        "|---|---:|---:|---:|" + "---:|" * len(concurrencies) + "---:|---|---|",
    ]
    for s in summaries:
        ratios = "".join(
            f" {s.throughput_ratio[c]:.3f} |" if c in s.throughput_ratio else " - |" for c in concurrencies
        )
        rss = "-" if s.peak_rss_mb is None else f"{s.peak_rss_mb:.0f}"
        rows.append(
            f"| {names[s.key]} | {signed_ms(s.overhead_c1_p50_ms)} | {signed_ms(s.overhead_c1_p99_ms)} "
            f"| {s.max_requests_per_s:,.0f} |{ratios} {rss} | {verdict(s.meets_throughput)} "
            f"| {verdict(s.meets_overhead)} |"
        )
    return "\n".join(rows)


def _max_at(target: TargetResult) -> str:
    best = max(target.runs, key=lambda run: run.requests_per_s, default=None)
    return "-" if best is None else f"{best.requests_per_s:,.0f} (c={best.concurrency})"


def _goal_cells(summary: GatewaySummary) -> str:
    goal = summary.goal
    if goal is None:
        return "- | - | - |"
    p50 = (
        "-" if goal.max_overhead_p50_ms is None else f"≤ {goal.max_overhead_p50_ms:g} {verdict(summary.meets_overhead)}"
    )
    p99 = (
        "-"
        if goal.max_overhead_p99_ms is None
        else f"≤ {goal.max_overhead_p99_ms:g} {verdict(summary.meets_overhead_p99)}"
    )
    return f"≥ {goal.min_requests_per_s:,.0f} {verdict(summary.meets_throughput)} | {p50} | {p99} |"


def configs_table(targets: list[TargetResult], summaries: list[GatewaySummary]) -> str:
    """One row per configuration (one `llm-gateway serve` process), each against its own goals."""
    by_key = {target.key: target for target in targets}
    rows_for = [s for s in summaries if by_key[s.key].server == "serve" and s.workers == 1]
    bare = next((s for s in rows_for if s.config == "bare"), None)
    rows = [
        "| configuration | each request | overhead c=1 p50 ms | over bare c=1 p50 ms | overhead c=1 p99 ms "
        "| max requests/s | Redis scripts / request | cache lookups | errors, misfits | goal req/s | goal p50 ms "
        "| goal p99 ms |",
        "|---|---|---:|---:|---:|---:|---:|---|---|---|---|---|",
    ]
    for s in rows_for:
        target = by_key[s.key]
        config = configs.CONFIGS.get(s.config)
        added = None
        if s.config != "bare" and bare is not None and None not in (s.overhead_c1_p50_ms, bare.overhead_c1_p50_ms):
            assert s.overhead_c1_p50_ms is not None and bare.overhead_c1_p50_ms is not None
            added = s.overhead_c1_p50_ms - bare.overhead_c1_p50_ms
        calls = target.redis_scripts_per_request
        lookups = ", ".join(f"{k} {v:,}" for k, v in target.cache_lookups.items()) or "-"
        issues = f"{s.errors}" + "".join(f"; {problem}" for problem in target.problems)
        rows.append(
            f"| `{s.config}` | {config.description if config else '-'} | {signed_ms(s.overhead_c1_p50_ms)} "
            f"| {signed_ms(added)} | {signed_ms(s.overhead_c1_p99_ms)} | {_max_at(target)} "
            f"| {'-' if calls is None else f'{calls:.2f}'} | {lookups} | {issues} | {_goal_cells(s)}"
        )
    return "\n".join(rows)


def configs_section(targets: list[TargetResult], summaries: list[GatewaySummary]) -> str:
    if not any(s.config != "bare" for s in summaries):
        return ""
    return (
        "### Gateway configurations\n\n"
        "`llm-gateway serve`, one process, in each configuration, against that configuration's goals; "
        "*over bare* is the p50 added to the bare gateway's at concurrency 1, the cost of the features "
        "themselves; *cache lookups* are counted by the gateway's `/metrics` during the runs.\n\n"
        f"{configs_table(targets, summaries)}\n"
    )
