"""API surfaces side by side: the gateway's CPU per request of translated Responses and Messages calls
against chat completions', plain and streamed, and the pacing of the translated streams, in one run.

    python -m benchmarks.surfaces [--requests 300] [--rounds 5] [--concurrency 32] [--pacing-streams 24]
        [--surfaces chat,responses,responses-store,messages] [--quiet-wait 600] [--profile]
        [--instructions 40] [--quick]

The method: benchmarks/surfaces/README.md.
"""

from __future__ import annotations

import argparse
import functools
from collections.abc import Sequence

from benchmarks.harness import files
from benchmarks.harness.cli import name_list, run, say
from benchmarks.surfaces import report
from benchmarks.surfaces.calls import SURFACE_KEYS
from benchmarks.surfaces.run import Options, run_benchmark


def parse_args(argv: Sequence[str] | None = None) -> Options:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.surfaces", description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=300, help="calls per call kind and round (default 300)")
    parser.add_argument("--rounds", type=int, default=5, help="CPU rounds, every call kind once each (default 5)")
    parser.add_argument("--concurrency", type=int, default=32, help="clients of the CPU rounds (default 32)")
    parser.add_argument(
        "--pacing-streams", type=int, default=24, help="streams per surface, one at a time (default 24)"
    )
    parser.add_argument(
        "--surfaces",
        type=functools.partial(name_list, known=SURFACE_KEYS, what="surfaces"),
        default=list(SURFACE_KEYS),
        help=f"default {','.join(SURFACE_KEYS)} (chat is always measured: the others are set against it)",
    )
    parser.add_argument("--quiet-wait", type=float, default=600.0, metavar="SECONDS",
                        help="the run's budget for waiting until no test suite or other benchmark runs, before "
                        "each round (default 600; then measured anyway, marked noisy)")  # fmt: skip
    parser.add_argument(
        "--profile",
        action="store_true",
        help="then one more batch of each call kind under py-spy (summaries in benchmarks/runs/)",
    )
    parser.add_argument("--instructions", type=int, default=0, metavar="CALLS",
                        help="then CALLS calls of each kind through a gateway under callgrind: instructions per call "
                        "(minutes; default 0: not measured)")  # fmt: skip
    parser.add_argument("--quick", action="store_true", help="40 calls, 1 round, 4 streams: no quiet wait, no files")
    args = parser.parse_args(argv)
    if min(args.requests, args.rounds, args.concurrency, args.pacing_streams) < 1 or args.quiet_wait < 0:
        parser.error("--requests, --rounds, --concurrency and --pacing-streams must be at least 1")
    surfaces = args.surfaces if "chat" in args.surfaces else ["chat", *args.surfaces]
    return Options(
        requests=40 if args.quick else args.requests,
        rounds=1 if args.quick else args.rounds,
        concurrency=args.concurrency,
        pacing_streams=4 if args.quick else args.pacing_streams,
        surfaces=surfaces,
        quiet_wait_s=0.0 if args.quick else args.quiet_wait,
        quick=args.quick,
        profile=args.profile,
        instructions=args.instructions,
    )


def main(argv: Sequence[str] | None = None) -> int:
    options = parse_args(argv)
    machine_data = report.machine_info()
    started = files.utc_now()
    result = run(run_benchmark(options), say)
    print(report.cpu_table(result.cpu_rows))
    print()
    print(report.pacing_table(result.pacing))
    print()
    if result.instructions:
        print(report.instructions_table(result.instructions))
        print()
    print(report.goals_text(result))
    print("\n".join(report.profiles_text(result)))
    if not options.quick:
        published = report.write(started, machine_data, options, result)
        say(f"wrote {published} and the {report.SECTION} section of {files.RESULTS_MD}")
    return 0
