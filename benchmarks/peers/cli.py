"""This gateway beside LiteLLM's proxy and Portkey's gateway, in one run on the same nginx upstream.

    python -m benchmarks.peers [--peers litellm,portkey] [--duration 8] [--concurrency 1,8,32]
        [--quiet-wait 600] [--quick]

The method: benchmarks/peers/README.md.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from benchmarks.harness import files
from benchmarks.harness.cli import number_list, run, say
from benchmarks.peers import report
from benchmarks.peers.install import PEER_KEYS
from benchmarks.peers.run import Options, run_benchmark


def peer_list(text: str) -> list[str]:
    names = [part.strip() for part in text.split(",") if part.strip()]
    if any(name not in PEER_KEYS for name in names):
        raise argparse.ArgumentTypeError(f"{text!r}: expected names from {','.join(PEER_KEYS)}")
    return list(dict.fromkeys(names))


def parse_args(argv: Sequence[str] | None = None) -> Options:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.peers", description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--duration", type=int, default=8, help="seconds per wrk run (default 8)")
    parser.add_argument("--warmup", type=int, default=2, help="seconds of warm-up per target (default 2)")
    parser.add_argument("--concurrency", type=number_list, default=[1, 8, 32], help="connections (default 1,8,32)")
    parser.add_argument(
        "--peers", type=peer_list, default=list(PEER_KEYS), help="default litellm,portkey ('' for none)"
    )
    parser.add_argument(
        "--quiet-wait", type=float, default=600.0, metavar="SECONDS",
        help="wait up to this long in all for a quiet machine, then measure and mark figures noisy (default 600)",
    )  # fmt: skip
    parser.add_argument("--quick", action="store_true", help="2 s runs, 1 s warm-up, no quiet wait, no files written")
    args = parser.parse_args(argv)
    if args.duration < 1 or args.warmup < 0 or args.quiet_wait < 0:
        parser.error("--duration must be at least 1, --warmup and --quiet-wait at least 0")
    return Options(
        duration_s=2 if args.quick else args.duration,
        warmup_s=min(args.warmup, 1) if args.quick else args.warmup,
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
    print(report.tables(targets, options.concurrency))
    print(report.goals_text(targets))
    if not options.quick:
        published = report.write(started, machine_data, options, targets)
        say(f"wrote {published} and the peers section of {files.RESULTS_MD}")
    return 0


