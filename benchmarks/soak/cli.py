"""Soak (reliability figure 15) and leak run (issue 11): one gateway with everything on, under an open-loop
load at half its capacity with 1 % faults, sampled for memory, file descriptors, latency and Redis keys.

    python -m benchmarks.soak                      # make soak: one hour
    python -m benchmarks.soak --requests 200000    # make leak: 200,000 requests
    python -m benchmarks.soak --duration 120       # a 2-minute smoke run

The method: benchmarks/soak/README.md.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Sequence
from pathlib import Path

import httpx
import redis

from benchmarks.harness import files
from benchmarks.harness.cli import run_cancellable, say_timed
from benchmarks.soak import report
from benchmarks.soak.run import IDLE_S, Options, run_soak


def _positive_float(text: str) -> float:
    value = float(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be above 0, not {text}")
    return value


def _positive_int(text: str) -> int:
    value = int(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be above 0, not {text}")
    return value


def _pause(text: str) -> tuple[float, float]:
    at, _, seconds = text.partition(":")
    try:
        pause = float(at), float(seconds)
    except ValueError:
        raise argparse.ArgumentTypeError(f"AT:SECONDS, e.g. 300:3, not {text}") from None
    if pause[0] < 0 or pause[1] <= 0:
        raise argparse.ArgumentTypeError(f"AT at least 0 and SECONDS above 0, not {text}")
    return pause


def parse_args(argv: Sequence[str]) -> Options:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.soak", description=(__doc__ or "").split("\n\n")[0])
    length = parser.add_mutually_exclusive_group()
    length.add_argument("--duration", type=_positive_float, default=3600.0, help="seconds of load (default 3600)")
    length.add_argument("--requests", type=_positive_int, help="leak run: this many requests instead")
    parser.add_argument("--rate", type=_positive_float, help="requests/s (default: --load-share of the capacity)")
    parser.add_argument("--load-share", type=_positive_float, default=0.5, help="of the capacity (default 0.5)")
    parser.add_argument("--capacity-seconds", type=_positive_float, default=15.0, help="closed-loop burst (15)")
    parser.add_argument("--capacity-concurrency", type=_positive_int, default=64, help="its clients (64)")
    parser.add_argument("--fault-share", type=float, default=0.01, help="share of fault requests (0.01)")
    parser.add_argument("--stream-share", type=float, default=0.5, help="share of streams (0.5)")
    parser.add_argument(
        "--long-stream-share",
        type=float,
        default=0.005,
        help="share of long streams (0.005: at 240 requests/s and 40 s each, about 50 open at any time)",
    )
    parser.add_argument(
        "--long-stream-seconds", type=_positive_float, default=40.0, help="a long stream's mean length (40 s)"
    )
    parser.add_argument("--arrivals", choices=("poisson", "uniform"), default="poisson")
    parser.add_argument("--workers", type=_positive_int, default=2, help="simulators of the normal model (2)")
    parser.add_argument("--warmup", type=float, help="seconds not counted (default 10 %% of the run, 1-300 s)")
    parser.add_argument("--sample-interval", type=_positive_float, help="seconds (default 5 %% of the run, 0.5-10)")
    parser.add_argument("--idle", type=float, default=IDLE_S, help=f"idle seconds before the last sample ({IDLE_S:g})")
    parser.add_argument("--max-in-flight", type=_positive_int, default=2000, help="open requests at most (2000)")
    parser.add_argument(
        "--no-allocator-stats",
        action="store_true",
        help="do not ask the gateway for its allocators' figures (malloc in use and kept) with each sample",
    )
    parser.add_argument(
        "--trace-allocations",
        type=_positive_int,
        metavar="FRAMES",
        help="run the gateway with tracemalloc (FRAMES per allocation, e.g. 10) and report what grew (off)",
    )
    parser.add_argument(
        "--pause-gateway",
        type=_pause,
        metavar="AT:SECONDS",
        help="stop the gateway (SIGSTOP) AT seconds into the load for SECONDS: a burst, as on a busy box (off)",
    )
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument(
        "--out",
        type=Path,
        help="directory for the JSON and figure records (default: the JSON to benchmarks/runs and, "
        "published, to benchmarks/results); when given, RESULTS.md is left alone",
    )
    parser.add_argument("--keep-workdir", action="store_true", help="keep the logs, catalog and keys of the run")
    args = parser.parse_args(argv)
    for name in ("fault_share", "stream_share", "long_stream_share"):
        if not 0 <= getattr(args, name) <= 1:
            parser.error(f"--{name.replace('_', '-')} must be between 0 and 1")
    if (args.warmup is not None and args.warmup < 0) or args.idle < 0:
        parser.error("--warmup and --idle must be at least 0")
    return Options(
        duration_s=args.duration,
        requests=args.requests,
        rate=args.rate,
        load_share=args.load_share,
        capacity_s=args.capacity_seconds,
        capacity_concurrency=args.capacity_concurrency,
        fault_share=args.fault_share,
        stream_share=args.stream_share,
        long_stream_share=args.long_stream_share,
        long_stream_s=args.long_stream_seconds,
        poisson=args.arrivals == "poisson",
        workers=args.workers,
        warmup_s=args.warmup,
        sample_interval_s=args.sample_interval,
        idle_s=args.idle,
        max_in_flight=args.max_in_flight,
        allocator_stats=not args.no_allocator_stats,
        trace_frames=args.trace_allocations,
        pause=args.pause_gateway,
        seed=args.seed,
        out=args.out,
        keep_workdir=args.keep_workdir,
    )


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    options = parse_args(args)
    started = files.utc_now()
    try:
        run = asyncio.run(run_cancellable(run_soak(options)))
    except (KeyboardInterrupt, asyncio.CancelledError):
        say_timed("interrupted: every process started was stopped")
        return 130
    except (RuntimeError, OSError, httpx.HTTPError, redis.RedisError) as exc:
        say_timed(f"soak failed: {type(exc).__name__}: {exc}")
        return 1
    return report.write(run, started, args, say_timed)
