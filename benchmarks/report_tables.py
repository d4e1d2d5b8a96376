"""The overhead benchmark's tables in RESULTS.md: the headline, each target against its goals, the
configurations, scaling with processes, the open-loop runs, the profiles, and every point."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING

from benchmarks import cpu_share, gateway_configs

if TYPE_CHECKING:
    from benchmarks.report import GatewaySummary, TargetResult
    from benchmarks.wrk import WrkResult

ROLES = ("gateway", "upstream", "redis", cpu_share.LOAD_GENERATOR)


def _signed_ms(value: float | None) -> str:
    return "-" if value is None else f"{value:+.3f}"


def _errors(run: WrkResult) -> str:
    if run.error_count == 0:
        return "0"
    return ", ".join(f"{kind} {n}" for kind, n in run.errors.items() if n)


def verdict(ok: bool | None) -> str:
    return "-" if ok is None else ("yes" if ok else "**no**")


def _cpu(shares: dict[str, float] | None) -> str:
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
        f"concurrency 1 **{_signed_ms(summary.overhead_c1_p50_ms)} ms p50** (goal ≤ {goal.max_overhead_p50_ms:g}: "
        f"{verdict(summary.meets_overhead)}) and **{_signed_ms(summary.overhead_c1_p99_ms)} ms p99** "
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
                f"| {run.p90_ms:.3f} | {run.p99_ms:.3f} | {_errors(run)} | {_cpu(target.cpu.get(run.concurrency))} "
                f"| {other} | {steal} |"
            )
    return "\n".join(rows)


def summary_table(targets: list[TargetResult], summaries: list[GatewaySummary]) -> str:
    """The bare configuration under each ASGI server, against the bare goals."""
    names = {target.key: target.name for target in targets}
    summaries = [s for s in summaries if s.config == "bare" and s.workers == 1]
    goal = gateway_configs.CONFIGS["bare"].goal
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
            f"| {names[s.key]} | {_signed_ms(s.overhead_c1_p50_ms)} | {_signed_ms(s.overhead_c1_p99_ms)} "
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
        config = gateway_configs.CONFIGS.get(s.config)
        added = None
        if s.config != "bare" and bare is not None and None not in (s.overhead_c1_p50_ms, bare.overhead_c1_p50_ms):
            assert s.overhead_c1_p50_ms is not None and bare.overhead_c1_p50_ms is not None
            added = s.overhead_c1_p50_ms - bare.overhead_c1_p50_ms
        calls = target.redis_scripts_per_request
        lookups = ", ".join(f"{k} {v:,}" for k, v in target.cache_lookups.items()) or "-"
        issues = f"{s.errors}" + "".join(f"; {problem}" for problem in target.problems)
        rows.append(
            f"| `{s.config}` | {config.description if config else '-'} | {_signed_ms(s.overhead_c1_p50_ms)} "
            f"| {_signed_ms(added)} | {_signed_ms(s.overhead_c1_p99_ms)} | {_max_at(target)} "
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


def scaling_table(targets: list[TargetResult]) -> str:
    by_key = {target.key: target for target in targets}
    scaled = [t for t in targets if t.workers > 1]
    rows = [
        "| configuration | processes | c | requests/s | x 1 process (same c) | CPU % gateway / nginx / Redis / wrk "
        "| req/s per gateway core |",
        "|---|---:|---:|---:|---:|---|---:|",
    ]
    done: set[str] = set()
    for target in scaled:
        base = by_key.get(one_process_key(target.config))
        group = [base] if base is not None and base.key not in done else []
        if base is not None:
            done.add(base.key)
        for member in [*group, target]:
            for run in member.runs:
                ref = base.run_at(run.concurrency) if base is not None and member is not base else None
                ratio = (
                    "-" if ref is None or not ref.requests_per_s else f"{run.requests_per_s / ref.requests_per_s:.2f}"
                )
                shares = member.cpu.get(run.concurrency, {})
                gateway_pct = shares.get("gateway", 0.0)
                per_core = f"{run.requests_per_s / (gateway_pct / 100):,.0f}" if gateway_pct > 0 else "-"
                rows.append(
                    f"| `{member.config}` | {member.workers} | {run.concurrency} | {run.requests_per_s:,.0f} | {ratio} "
                    f"| {_cpu(shares)} | {per_core} |"
                )
        if base is not None and base.max_requests_per_s:
            rows.append(
                f"| `{target.config}` | {target.workers} | best | {target.max_requests_per_s:,.0f} "
                f"| **{target.max_requests_per_s / base.max_requests_per_s:.2f}** (over 1 process's best "
                f"{base.max_requests_per_s:,.0f}) | | |"
            )
    return "\n".join(rows)


LINEAR_PER_CORE = 0.9
"""Near-linear scaling: N processes keep at least this share of one process's requests/s per core."""


def per_core(target: TargetResult) -> float | None:
    """Requests/s per core the gateway used, at its best point."""
    best = max(target.runs, key=lambda run: run.requests_per_s, default=None)
    share = target.cpu.get(best.concurrency, {}).get("gateway", 0.0) if best is not None else 0.0
    return None if best is None or share <= 0 else best.requests_per_s / (share / 100)


def scaling_verdicts(targets: list[TargetResult]) -> list[str]:
    by_key = {target.key: target for target in targets}
    lines = []
    for target in (t for t in targets if t.workers > 1):
        base = by_key.get(one_process_key(target.config))
        if base is None or not base.max_requests_per_s:
            continue
        ratio = target.max_requests_per_s / base.max_requests_per_s
        own, one = per_core(target), per_core(base)
        kept = None if own is None or one is None else own / one
        verdict_text = "-" if kept is None else verdict(kept >= LINEAR_PER_CORE)
        lines.append(
            f"- `{target.config}`, {target.workers} processes: {ratio:.2f}x one process's requests/s on this box; "
            f"per gateway core {'-' if kept is None else f'{kept:.2f}x'} one process's (near-linear, "
            f"≥ {LINEAR_PER_CORE:g}x: {verdict_text})"
        )
    return lines


def scaling_section(targets: list[TargetResult]) -> str:
    if not any(t.workers > 1 for t in targets):
        return ""
    return (
        "### Scaling with server processes\n\n"
        "`GATEWAY_WORKERS=N`; wrk, nginx and Redis share the same 2 cores, so the box cannot give two "
        "gateway processes two whole cores: *req/s per gateway core* staying level from 1 to N processes "
        "means the gateway scales linearly with the CPU it gets; the ratio is what this box gives.\n\n"
        + "\n".join(scaling_verdicts(targets))
        + f"\n\n{scaling_table(targets)}\n"
    )


def _ms(values: object, key: str) -> float | None:
    if isinstance(values, dict):
        value = values.get(key)
        if isinstance(value, int | float):
            return float(value)
    return None


def _fmt(value: float | None, signed: bool = False) -> str:
    if value is None:
        return "-"
    return f"{value:+.3f}" if signed else f"{value:.3f}"


def open_loop_table(targets: list[TargetResult]) -> str:
    direct = next((t for t in targets if t.key == "direct"), None)
    floor = {float(str(run.get("rate"))): run for run in (direct.open_loop if direct else [])}
    rows = [
        "| target | rate req/s | answered req/s | p50 ms | p90 ms | p99 ms | p99.9 ms | max ms | p50 over direct "
        "| p99 over direct | send lag p99 ms | errors | kept up | CPU % gateway / nginx / Redis / generator |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|---|",
    ]
    for target in targets:
        for run in target.open_loop:
            latency, lag = run.get("latency_ms"), run.get("send_lag_ms")
            base = floor.get(float(str(run.get("rate")))) if target is not direct else None
            over50 = over99 = None
            if base is not None:
                b50, b99 = _ms(base.get("latency_ms"), "p50"), _ms(base.get("latency_ms"), "p99")
                o50, o99 = _ms(latency, "p50"), _ms(latency, "p99")
                over50 = None if b50 is None or o50 is None else o50 - b50
                over99 = None if b99 is None or o99 is None else o99 - b99
            errors = run.get("errors")
            error_count = sum(int(v) for v in errors.values()) if isinstance(errors, dict) else 0
            cpu = run.get("cpu")
            rows.append(
                f"| {target.name} | {float(str(run.get('rate'))):,.0f} | {float(str(run.get('achieved_rate'))):,.0f} "
                f"| {_fmt(_ms(latency, 'p50'))} | {_fmt(_ms(latency, 'p90'))} | {_fmt(_ms(latency, 'p99'))} "
                f"| {_fmt(_ms(latency, 'p99.9'))} | {_fmt(_ms(latency, 'p100'))} | {_fmt(over50, True)} "
                f"| {_fmt(over99, True)} | {_fmt(_ms(lag, 'p99'))} | {error_count} "
                f"| {verdict(bool(run.get('kept_up')))} "
                f"| {_cpu(cpu if isinstance(cpu, dict) else None)} |"
            )
    return "\n".join(rows)


def open_loop_section(targets: list[TargetResult]) -> str:
    if not any(t.open_loop for t in targets):
        return ""
    return (
        "### Open loop: latency at fixed rates below saturation\n\n"
        "Requests sent on a fixed schedule whatever the answers do, latency from when each was due "
        "(coordinated-omission free, `benchmarks/open_loop.py`); direct-to-nginx at the same rate is the "
        "floor (the generator's own lag and loopback) that every other row includes, so *over direct* is "
        "the gateway's share. *Kept up*: answered everything it was sent at the rate asked.\n\n"
        f"{open_loop_table(targets)}\n"
    )


def profiles_section(targets: list[TargetResult], summaries: list[GatewaySummary]) -> str:
    missed = {s.key: s.missed for s in summaries}
    lines = []
    for target in targets:
        profile = target.profile
        if not profile:
            continue
        why = "; ".join(missed.get(target.key, [])) or "asked for"
        if profile.get("error"):
            lines.append(f"- `{target.key}` ({why}): not profiled: {profile['error']}")
            continue
        packages = profile.get("package_self_pct")
        top = ", ".join(f"{name} {pct:.0f} %" for name, pct in packages[:6]) if isinstance(packages, list) else ""
        lines.append(
            f"- `{target.key}` ({why}): flame graph [`{profile.get('svg')}`]({profile.get('svg')}), "
            f"top functions [`{profile.get('markdown')}`]({profile.get('markdown')}); CPU by package: {top}; "
            f"{profile.get('samples')} samples, {float(str(profile.get('requests_per_s'))):,.0f} req/s while "
            "profiled (py-spy slows it)."
        )
    if not lines:
        return ""
    return "### Profiles: where the time goes\n\n" + "\n".join(lines) + "\n"
