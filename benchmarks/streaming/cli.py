"""Streaming through each gateway: time to first token over direct's, and whether chunks keep their pace.

    python -m benchmarks.streaming [--peers litellm,portkey] [--requests 24] [--concurrency 1,8]
        [--quiet-wait 600] [--quick]

The method: benchmarks/streaming/README.md.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from benchmarks.harness import files
from benchmarks.harness.cli import number_list, run, say
from benchmarks.peers.cli import peer_list
from benchmarks.peers.install import PEER_KEYS
from benchmarks.streaming import report
from benchmarks.streaming.run import Options, run_benchmark


def parse_args(argv: Sequence[str] | None = None) -> Options:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.streaming", description=(__doc__ or "").split("\n\n")[0]
    )
    parser.add_argument("--requests", type=int, default=24, help="streams per concurrency level (default 24)")
    parser.add_argument("--concurrency", type=number_list, default=[1, 8], help="clients (default 1,8)")
    parser.add_argument("--peers", type=peer_list, default=list(PEER_KEYS), help="default litellm,portkey")
    parser.add_argument("--quiet-wait", type=float, default=600.0, metavar="SECONDS", help="as in benchmarks.peers")
    parser.add_argument("--quick", action="store_true", help="8 streams per level, no quiet wait, no files written")
    args = parser.parse_args(argv)
    if args.requests < 1 or args.quiet_wait < 0:
        parser.error("--requests must be at least 1, --quiet-wait at least 0")
    return Options(
        requests=8 if args.quick else args.requests,
        concurrency=args.concurrency,
        peers=args.peers,
        quiet_wait_s=0.0 if args.quick else args.quiet_wait,
        quick=args.quick,
    )


def main(argv: Sequence[str] | None = None) -> int:
    options = parse_args(argv)
    machine_data = report.machine_info()
    started = files.utc_now()
    targets = run(run_benchmark(options), say)
    print(report.table(targets))
    print(report.goals_text(targets))
    if not options.quick:
        published = report.write(started, machine_data, options, targets)
        say(f"wrote {published} and the streaming section of {files.RESULTS_MD}")
    return 0
