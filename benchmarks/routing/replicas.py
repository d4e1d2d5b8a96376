"""The routing suite with gateway replicas: several gateways (3 by default) routing independently to one
fleet, the clients' requests sent to each in turn. What it shows: approximate prefix affinity sees only
its own replica's traffic, precise prefix affinity (`prefix_affinity_precise`) what every worker holds.

    python -m benchmarks.routing.replicas [--replicas N] [the routing suite's options]

e.g. `python -m benchmarks.routing.replicas --quick --policies prefix_affinity,prefix_affinity_precise
--workloads uniform`. Same fleet, workload, clients and figures as the suite (`run.py`): each pair gets
a fresh fleet and fresh gateways; each line printed is one pair. It writes no files.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import sys
import tempfile
from pathlib import Path
from typing import Any

from benchmarks.harness import cpu_share
from benchmarks.routing.cli import parse_args
from benchmarks.routing.client import OutstandingTracker, run_load
from benchmarks.routing.fleet import catalog_text, fleet, routing_gateway, simulator_counters
from benchmarks.routing.replay import classify_misses
from benchmarks.routing.report import summarize_run
from benchmarks.routing.run import _print_run, cpu_figures
from benchmarks.routing.workload import FleetSettings, WorkloadKind, WorkloadSpec, build_workload


async def replicated_run(kind: WorkloadKind, policy: str, replicas: int, args: argparse.Namespace,
                         settings: FleetSettings, spec: WorkloadSpec, workdir: Path) -> dict[str, Any]:
    """One (workload, policy) pair through `replicas` gateways sharing one fresh fleet."""
    requests = build_workload(kind, args.requests, spec)
    logdir = workdir / f"{kind}-{policy}-x{replicas}"
    logdir.mkdir()
    load_before = os.getloadavg()[0]
    async with fleet(settings, logdir) as (ports, sim_pids), contextlib.AsyncExitStack() as stack:
        catalog = catalog_text(policy, args.options, ports, logdir)
        gateways = [await stack.enter_async_context(routing_gateway(catalog, logdir, settings.workers,
                                                                    label=f"routing-{i}"))
                    for i in range(replicas)]
        tracker = OutstandingTracker()
        roots: cpu_share.Roots = {"gateway": [pid for _, pid in gateways], "simulators": sim_pids}
        before = await asyncio.to_thread(cpu_share.read, roots)
        outcomes, wall = await run_load([url for url, _ in gateways], requests, args.concurrency, spec.max_tokens,
                                        tracker, timeout_s=args.run_timeout)
        cpu = cpu_figures(before, await asyncio.to_thread(cpu_share.read, roots))
        names = [f"sim-{i}" for i in range(settings.workers)]
        load = tracker.summary(names, tracker.started + wall)
        counters = await simulator_counters(ports)
    run = summarize_run(kind, policy, outcomes, wall, load, names, counters)
    run.update(replicas=replicas, load_average_before=load_before, cpu=cpu, misses=classify_misses(outcomes))
    return run


async def main_async(args: argparse.Namespace, replicas: int) -> int:
    settings, spec = FleetSettings(), WorkloadSpec()
    if args.time_scale is not None:
        settings = FleetSettings(**{**settings.to_json(), "time_scale": args.time_scale})
    with tempfile.TemporaryDirectory(prefix="routing-replicas-") as tmp:
        for kind in args.workloads:
            for policy in args.policies:
                print(f"{replicas} gateway replicas:", flush=True)
                _print_run(await replicated_run(kind, policy, replicas, args, settings, spec, Path(tmp)))
    return 0


def main(argv: list[str] | None = None) -> int:
    rest = list(sys.argv[1:] if argv is None else argv)
    replicas = 3
    if "--replicas" in rest:
        at = rest.index("--replicas")
        replicas = int(rest[at + 1])
        del rest[at:at + 2]
    try:
        return asyncio.run(main_async(parse_args(rest), replicas))
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
