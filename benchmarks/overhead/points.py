"""Measuring one target: wrk at each concurrency (noisy points measured again), open-loop runs at fixed
rates, each with the CPU every role used."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from benchmarks.harness import cpu_share, interference
from benchmarks.harness.cli import say
from benchmarks.harness.quiet import wait_for_quiet_second
from benchmarks.load import open_loop_process, workloads, wrk
from benchmarks.overhead.results import TargetResult


@dataclass(frozen=True, slots=True)
class PointOptions:
    duration_s: int
    warmup_s: int
    retries: int
    quiet_wait_s: float
    noisy_pct: float


def _noise(noise: interference.Interference) -> float:
    return noise.other_cpu_pct + noise.steal_pct


async def wait_for_quiet(options: PointOptions) -> None:
    """Wait (up to `quiet_wait_s`) for a second in which the rest of the machine is quiet."""
    await wait_for_quiet_second(options.quiet_wait_s, options.noisy_pct, say)


async def wrk_run(target: TargetResult, script: Path, concurrency: int, duration_s: int) -> wrk.WrkResult:
    """One wrk run of the target's script (a fresh nonce: miss-workload bodies never repeat across runs)."""
    return await wrk.run(target.url, concurrency, duration_s, script=script, script_args=[workloads.new_nonce()])


async def measure(
    target: TargetResult,
    options: PointOptions,
    concurrencies: list[int],
    roles: cpu_share.Roots,
    script: Path = wrk.SCRIPT,
) -> None:
    """wrk at each concurrency after a warm-up; noisy points again, keeping the quietest; CPU by role."""
    if options.warmup_s:
        warmup = await wrk_run(target, script, max(concurrencies), options.warmup_s)
        target.requests_sent += warmup.requests
        if warmup.error_count:
            say(f"  {target.name} warm-up: errors {warmup.errors}")
    for concurrency in concurrencies:
        best: tuple[wrk.WrkResult, interference.Interference, dict[str, float]] | None = None
        for attempt in range(1, options.retries + 2):
            await wait_for_quiet(options)
            before = await asyncio.to_thread(interference.snapshot)
            cpu_before = await asyncio.to_thread(cpu_share.read, roles)
            run = await wrk_run(target, script, concurrency, options.duration_s)
            cpu = cpu_share.between(cpu_before, await asyncio.to_thread(cpu_share.read, roles))
            target.requests_sent += run.requests
            noise = interference.between(before, await asyncio.to_thread(interference.snapshot))
            errors = f", errors {run.errors}" if run.error_count else ""
            say(
                f"  {target.name} c={concurrency}: {run.requests_per_s:,.0f} req/s, p50 {run.p50_ms:.3f} ms, "
                f"p90 {run.p90_ms:.3f} ms, p99 {run.p99_ms:.3f} ms{errors} (CPU % {_shares(cpu)}; "
                f"other CPU {noise.other_cpu_pct:.0f}%, steal {noise.steal_pct:.0f}%)"
            )
            if best is None or _noise(noise) < _noise(best[1]):
                best = (run, noise, cpu)
            target.attempts[concurrency] = attempt
            if _noise(noise) <= options.noisy_pct:
                break
            if attempt <= options.retries:
                say(f"    noisy (more than {options.noisy_pct:.0f}% of a core ran beside it): measuring again")
        assert best is not None
        target.runs.append(best[0])
        target.interference[concurrency] = best[1]
        target.cpu[concurrency] = best[2]


def _shares(cpu: Mapping[str, float]) -> str:
    return ", ".join(f"{role} {pct:.0f}" for role, pct in cpu.items())


async def measure_open_loop(
    target: TargetResult,
    options: PointOptions,
    rates: list[float],
    roles: cpu_share.Roots,
    workload: str,
) -> None:
    """The open-loop generator at each rate (1 s warm-up at the rate, not counted)."""
    for rate in rates:
        await wait_for_quiet(options)
        cpu_before = await asyncio.to_thread(cpu_share.read, roles)
        result = await open_loop_process.run(target.url, rate, options.duration_s, warmup_s=1.0, workload=workload)
        cpu = cpu_share.between(cpu_before, await asyncio.to_thread(cpu_share.read, roles))
        row: dict[str, object] = {**result.as_dict(), "kept_up": result.keeps_up, "cpu": cpu}
        target.open_loop.append(row)
        say(
            f"  {target.name} open loop {rate:,.0f} req/s: answered {result.achieved_rate:,.0f}/s, "
            f"p50 {result.p50_ms} ms, p99 {result.p99_ms} ms, p99.9 {result.latency_ms.get('p99.9')} ms, "
            f"send lag p99 {result.send_lag_ms.get('p99')} ms, errors {result.error_count}"
            f"{'' if result.keeps_up else ' (did not keep up)'} (CPU % {_shares(cpu)})"
        )
