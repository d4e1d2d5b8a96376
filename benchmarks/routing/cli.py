"""Routing benchmark: how each routing policy does on a simulated vLLM fleet, workload by workload, against
what the step model allows at most.

    python -m benchmarks.routing [--quick] [--requests N] [--concurrency C] [--policies LIST]
        [--workloads LIST] [--replicas LIST] [--balance-abs N] [--load-factor X] [--time-scale X]
        [--quiet-wait S] [--write]

`--quick`: a smoke run of a sixteenth of the requests, under 10 minutes, that writes no files; the full
run takes about an hour, mostly waiting. The method: benchmarks/routing/README.md.
"""

from __future__ import annotations

import argparse
import asyncio

from benchmarks.routing.fleet import POLICIES, PRECISE, PREFIX_OPTIONS, SESSION_POLICY
from benchmarks.routing.fleet_settings import FleetSettings
from benchmarks.routing.plan import chosen_plan, default_plan
from benchmarks.routing.run import main_async
from benchmarks.routing.workloads import WORKLOADS, default_requests

ALL_POLICIES = (*POLICIES, SESSION_POLICY, PRECISE)


def _names(text: str) -> list[str]:
    return [name for name in text.split(",") if name]


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.routing", description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="a short smoke run (writes no files unless --write)")
    parser.add_argument("--requests", type=int, default=None,
                        help="requests per run, for every workload (default: each workload's own, ~600-800)")
    parser.add_argument("--concurrency", type=int, default=48, help="requests in flight (default %(default)s)")
    parser.add_argument("--balance-abs", type=int, default=None, help="prefix_affinity balance_abs override")
    parser.add_argument("--load-factor", type=float, default=None, help="prefix_affinity load_factor override")
    parser.add_argument("--time-scale", type=float, default=None,
                        help=f"the simulators' time scale (default {FleetSettings().time_scale:g})")
    parser.add_argument("--quiet-wait", type=float, default=None,
                        help="seconds in all to wait for a running benchmarks.overhead (default 240; quick: 20)")
    parser.add_argument("--policies", default=None,
                        help=f"comma-separated, of {', '.join(ALL_POLICIES)} (default: the first three everywhere, "
                             f"{SESSION_POLICY} on the conversations with user ids)")
    parser.add_argument("--workloads", default=",".join(WORKLOADS), help="comma-separated (default: all)")
    parser.add_argument("--replicas", default=None,
                        help="comma-separated gateway replica counts, each run for every workload (default: 1, "
                             "and 3 for the shared-prefix and conversation workloads)")
    parser.add_argument("--write", action=argparse.BooleanOptionalAction, default=None,
                        help="write the JSON and the RESULTS.md section (default: yes, except with --quick)")
    args = parser.parse_args(argv)
    workloads = _names(args.workloads)
    if not workloads or not set(workloads) <= set(WORKLOADS):
        parser.error(f"--workloads: some of {', '.join(WORKLOADS)}")
    if args.policies is not None and (not _names(args.policies) or not set(_names(args.policies)) <= set(ALL_POLICIES)):
        parser.error(f"--policies: some of {', '.join(ALL_POLICIES)}")
    try:
        replicas = [int(n) for n in _names(args.replicas)] if args.replicas is not None else None
    except ValueError:
        parser.error("--replicas: comma-separated counts, e.g. 1,3")
    if (args.requests is not None and args.requests < 1) or args.concurrency < 1 or min(replicas or [1]) < 1:
        parser.error("--requests, --concurrency and --replicas must be at least 1")
    if args.policies is None and replicas is None:
        args.plan = default_plan(workloads, quick=args.quick)
    else:
        args.plan = chosen_plan(workloads, _names(args.policies) if args.policies else POLICIES, replicas or [1])
    args.requests = {kind: args.requests or default_requests(kind, quick=args.quick) for kind in workloads}
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
