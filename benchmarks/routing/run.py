"""One routing run: for each (workload, replicas, policy) of the plan, a fresh fleet and gateway replicas
(fleet.py), the same requests through them at a fixed concurrency (client.py), and what the run
measured, summarized against the workload's ceiling (report.py, ceiling.py)."""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import os
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks.harness import cpu_share, machine
from benchmarks.harness.quiet import QuietBudget, busy_processes
from benchmarks.routing.ceiling import ceiling
from benchmarks.routing.client import OutstandingTracker, run_load
from benchmarks.routing.fleet import HEALTH_INTERVAL_S, fleet, routing_gateways, simulator_counters
from benchmarks.routing.fleet import catalog_text as fleet_catalog
from benchmarks.routing.fleet_settings import FleetSettings
from benchmarks.routing.plan import Pair, plan_minutes
from benchmarks.routing.replay import classify_misses
from benchmarks.routing.report import summarize_run, write_reports
from benchmarks.routing.workloads import Workload, WorkloadSpec, build

OVERHEAD_RUN = r"benchmarks\.overhead"
"""A running overhead suite shares the 2 cores: the routing run waits for it to end."""


def _say(text: str) -> None:
    print(text, flush=True)


def cpu_figures(before: cpu_share.Reading, after: cpu_share.Reading) -> dict[str, float]:
    """How busy the machine was (0-1, of all cores) and, as shares of one core, the gateway's, the
    simulators' and this client's CPU."""
    shares = cpu_share.between(before, after)
    return {
        "machine_busy": round(cpu_share.machine_busy(before, after), 3),
        "load_average": round(os.getloadavg()[0], 2),
        "client_core_share": round(cpu_share.runner_share(before, after), 3),
        "gateway_core_share": round(shares["gateway"] / 100, 3),
        "simulators_core_share": round(shares["simulators"] / 100, 3),
    }


def fleet_for(workload: Workload, settings: FleetSettings) -> FleetSettings:
    """The fleet's settings with the workload's reply lengths, if it has its own."""
    if workload.reply_tokens is None:
        return settings
    return dataclasses.replace(settings, reply_tokens=workload.reply_tokens)


async def one_run(pair: Pair, workload: Workload, args: argparse.Namespace, settings: FleetSettings,
                  workdir: Path, budget: QuietBudget) -> dict[str, Any]:
    settings = fleet_for(workload, settings)
    logdir = workdir / f"{pair.workload}-{pair.replicas}-{pair.policy}"
    logdir.mkdir()
    quiet = await budget.wait()
    load_before = os.getloadavg()[0]
    async with fleet(settings, logdir) as (ports, sim_pids), \
            routing_gateways(fleet_catalog(pair.policy, args.options, ports, logdir), logdir, settings.workers,
                             pair.replicas) as (urls, gateway_pids):
        tracker = OutstandingTracker()
        roots: cpu_share.Roots = {"gateway": gateway_pids, "simulators": sim_pids}
        before = await asyncio.to_thread(cpu_share.read, roots)
        outcomes, wall = await run_load(urls, workload, args.concurrency, tracker, timeout_s=args.run_timeout)
        cpu = cpu_figures(before, await asyncio.to_thread(cpu_share.read, roots))
        names = [f"sim-{i}" for i in range(settings.workers)]
        load = tracker.summary(names, tracker.started + wall)
        counters = await simulator_counters(ports)
    run = summarize_run(pair.workload, pair.policy, outcomes, wall, load, names, counters)
    run["replicas"] = pair.replicas
    run["reply_tokens"] = list(settings.reply_tokens)
    run["load_average_before"] = load_before
    run["cpu"] = cpu
    run["overhead_benchmark_running"] = not quiet.quiet or bool(await asyncio.to_thread(busy_processes, OVERHEAD_RUN))
    run["misses"] = classify_misses(outcomes)
    return run


def _print_run(run: dict[str, Any], limit: dict[str, float]) -> None:
    cpu = run["cpu"]
    _say(f"{run['workload']:23} x{run['replicas']} {run['policy']:18} {run['output_tokens_per_s']:6.0f} tok/s  "
         f"TTFT p50 {run['ttft_p50_ms']:4.0f} p90 {run['ttft_p90_ms']:4.0f} ms (hits {run['ttft_p90_hits_ms']:4.0f}, "
         "misses "
         f"{run['ttft_p90_misses_ms']:4.0f})  hit {run['cache_hit_rate']:5.1%}  cpu {cpu['machine_busy']:4.0%} (gw "
         f"{cpu['gateway_core_share']:4.0%} sims {cpu['simulators_core_share']:4.0%} client "
         f"{cpu['client_core_share']:4.0%})  workers/group {run['workers_per_group']:4.1f}  queue max/mean "
         f"{run['queue_imbalance']:.2f} (peak {run['peak_queue_imbalance']:.2f})  errors {run['errors']}  "
         f"[{run['wall_s']:.0f} s]")
    if limit:
        _say(f"  of the ceiling: {run['output_tokens_per_s'] / limit['tokens_per_s']:.0%} of its "
             f"{limit['tokens_per_s']:.0f} tok/s, p90 TTFT {run['ttft_p90_ms'] / limit['ttft_p90_ms']:.1f}x its "
             f"{limit['ttft_p90_ms']:.0f} ms, hit rate {run['cache_hit_rate']:.0%} of at most "
             f"{limit['max_hit_rate']:.0%}"
             + (f"; burst p90 TTFT {run['ttft_p90_burst_ms']:.0f} ms" if run["workload"] == "burst" else ""))
    _say(f"  misses: {run['misses']}")
    if run["errors"]:
        _say(f"  first errors: {run['first_errors']}")


async def main_async(args: argparse.Namespace) -> int:
    settings, spec = FleetSettings(), WorkloadSpec()
    if args.time_scale is not None:
        settings = dataclasses.replace(settings, time_scale=args.time_scale)
    workloads = {kind: build(kind, args.requests[kind], spec) for kind in dict.fromkeys(p.workload for p in args.plan)}
    ideal = {kind: ceiling(w, settings, args.concurrency) for kind, w in workloads.items()}
    _say(f"{len(args.plan)} runs, about {plan_minutes(args.plan, workloads, settings, args.concurrency):.0f} minutes "
         "at most")
    budget = QuietBudget(args.quiet_wait, _say, max_load=None, pattern=OVERHEAD_RUN, poll_s=2.0)
    started = time.time()
    runs: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="routing-bench-") as tmp:
        for pair in args.plan:
            run = await one_run(pair, workloads[pair.workload], args, settings, Path(tmp), budget)
            runs.append(run)
            _print_run(run, ideal[pair.workload])
    report = {
        "date_utc": time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(started)),
        "duration_s": round(time.time() - started, 1),
        "quick": args.quick,
        "machine": machine.machine_info(),
        "fleet": settings.to_json(),
        "workload": {**spec.to_json(), "concurrency": args.concurrency},
        "workloads": {kind: {"requests": len(w), "sessions": len(w.sessions), "burst": len(w.burst),
                             "max_tokens": w.max_tokens, "description": w.description}
                      for kind, w in workloads.items()},
        "prefix_affinity_options": args.options,
        "health_interval_s": HEALTH_INTERVAL_S,
        "ideal": ideal,
        "runs": runs,
    }
    _say(write_reports(report, write_files=args.write))
    return 0
