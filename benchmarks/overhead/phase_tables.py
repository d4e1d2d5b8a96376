"""The overhead suite's tables for the phases after the closed-loop points: scaling with server
processes, the open-loop runs at fixed rates, and the profiles of what missed a goal."""

from __future__ import annotations

from typing import TYPE_CHECKING

from benchmarks.overhead.tables import cpu_cells, one_process_key, verdict

if TYPE_CHECKING:
    from benchmarks.overhead.results import GatewaySummary, TargetResult


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
                    f"| {cpu_cells(shares)} | {per_core} |"
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
                f"| {cpu_cells(cpu if isinstance(cpu, dict) else None)} |"
            )
    return "\n".join(rows)


def open_loop_section(targets: list[TargetResult]) -> str:
    if not any(t.open_loop for t in targets):
        return ""
    return (
        "### Open loop: latency at fixed rates below saturation\n\n"
        "Requests sent on a fixed schedule whatever the answers do, latency from when each was due "
        "(coordinated-omission free, `benchmarks/load/open_loop.py`); direct-to-nginx at the same rate is the "
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
