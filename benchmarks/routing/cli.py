"""Routing benchmark: does prefix-affinity routing beat round robin on a shared-prefix workload?

    python -m benchmarks.routing [--quick] [--requests N] [--concurrency C] [--policies LIST]
        [--workloads LIST] [--balance-abs N] [--load-factor X] [--time-scale X] [--quiet-wait S] [--write]

`--quick`: a smoke run of 300 requests per pair, a few minutes, that writes no files; the full run takes
about 20 minutes, mostly waiting. The method: benchmarks/routing/README.md.
"""

from __future__ import annotations

import argparse
import asyncio

from benchmarks.routing.fleet import KNOWN_POLICIES, POLICIES, PREFIX_OPTIONS
from benchmarks.routing.run import main_async
from benchmarks.routing.workload import FleetSettings, WorkloadKind

WORKLOADS: tuple[WorkloadKind, ...] = ("uniform", "skewed")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.routing", description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="a short smoke run (writes no files unless --write)")
    parser.add_argument("--requests", type=int, default=None, help="requests per (workload, policy) (default 2000)")
    parser.add_argument("--concurrency", type=int, default=48, help="requests in flight (default %(default)s)")
    parser.add_argument("--balance-abs", type=int, default=None, help="prefix_affinity balance_abs override")
    parser.add_argument("--load-factor", type=float, default=None, help="prefix_affinity load_factor override")
    parser.add_argument("--time-scale", type=float, default=None,
                        help=f"the simulators' time scale (default {FleetSettings().time_scale:g})")
    parser.add_argument("--quiet-wait", type=float, default=None,
                        help="seconds in all to wait for a running benchmarks.overhead (default 240; quick: 20)")
    parser.add_argument("--policies", default=",".join(POLICIES),
                        help=f"comma-separated, of {', '.join(KNOWN_POLICIES)} (default: the first three)")
    parser.add_argument("--workloads", default=",".join(WORKLOADS), help="comma-separated (default: both)")
    parser.add_argument("--write", action=argparse.BooleanOptionalAction, default=None,
                        help="write the JSON and the RESULTS.md section (default: yes, except with --quick)")
    args = parser.parse_args(argv)
    if args.requests is None:
        args.requests = 300 if args.quick else 2000
    if args.requests < 1 or args.concurrency < 1:
        parser.error("--requests and --concurrency must be at least 1")
    args.policies = [p for p in args.policies.split(",") if p]
    args.workloads = [w for w in args.workloads.split(",") if w]
    if not set(args.policies) <= set(KNOWN_POLICIES) or not set(args.workloads) <= set(WORKLOADS) or not args.policies:
        parser.error(f"--policies: some of {', '.join(KNOWN_POLICIES)}; --workloads: some of {', '.join(WORKLOADS)}")
    args.options = dict(PREFIX_OPTIONS)
    if args.balance_abs is not None:
        args.options["balance_abs"] = args.balance_abs
    if args.load_factor is not None:
        args.options["load_factor"] = args.load_factor
    args.run_timeout = 1200.0
    if args.quiet_wait is None:
        args.quiet_wait = 20.0 if args.quick else 240.0
    if args.write is None:
        args.write = not args.quick
    return args


def main(argv: list[str] | None = None) -> int:
    try:
        return asyncio.run(main_async(parse_args(argv)))
    except KeyboardInterrupt:
        return 130
