"""The embedded local worker, old against new: tokens/s and time to first token of concurrent streams
through the gateway, llama-cpp-python's server against llama.cpp's llama-server.

    python -m benchmarks.local_worker [--requests 16] [--max-tokens 64] [--concurrency 1,4,8]
        [--workers old,new] [--threads N] [--quiet-wait 600] [--quick]

The method: benchmarks/local_worker/README.md.
"""

from __future__ import annotations

import argparse
import functools
from collections.abc import Sequence

from benchmarks.harness import files
from benchmarks.harness.cli import name_list, number_list, run, say
from benchmarks.local_worker import report
from benchmarks.local_worker.run import Options, run_benchmark
from benchmarks.local_worker.workers import WORKER_KEYS

QUICK_REQUESTS = 4


def parse_args(argv: Sequence[str] | None = None) -> Options:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.local_worker", description=(__doc__ or "").split("\n\n")[0]
    )
    parser.add_argument("--requests", type=int, default=16, help="streams per concurrency level (default 16)")
    parser.add_argument("--max-tokens", type=int, default=64, help="tokens per reply at most (default 64)")
    parser.add_argument("--concurrency", type=number_list, default=[1, 4, 8], help="streams at once (default 1,4,8)")
    parser.add_argument(
        "--workers",
        type=functools.partial(name_list, known=WORKER_KEYS, what="workers"),
        default=list(WORKER_KEYS),
        help="old (llama-cpp-python), new (llama-server); default both",
    )
    parser.add_argument("--threads", type=int, default=None,
                        help="compute threads of both workers (default: the catalog's, the cores)")  # fmt: skip
    parser.add_argument("--quiet-wait", type=float, default=600.0, metavar="SECONDS",
                        help="the run's budget for waiting until no test suite, benchmark or other llama.cpp server "
                        "runs, before each level (default 600; then measured anyway, marked noisy)")  # fmt: skip
    parser.add_argument("--quick", action="store_true",
                        help=f"{QUICK_REQUESTS} streams per level, no quiet wait, no files written")  # fmt: skip
    args = parser.parse_args(argv)
    if args.requests < 1 or args.max_tokens < 1 or (args.threads or 1) < 1 or args.quiet_wait < 0:
        parser.error("--requests, --max-tokens and --threads must be at least 1, --quiet-wait at least 0")
    return Options(
        requests=QUICK_REQUESTS if args.quick else args.requests,
        max_tokens=args.max_tokens,
        concurrency=args.concurrency,
        workers=args.workers,
        threads=args.threads,
        quiet_wait_s=0.0 if args.quick else args.quiet_wait,
        quick=args.quick,
    )


def main(argv: Sequence[str] | None = None) -> int:
    options = parse_args(argv)
    machine_data = report.machine_info()
    started = files.utc_now()
    results = run(run_benchmark(options), say)
    print(report.table(results))
    print("\n".join(report.comparison(results)))
    print(f"README line: {report.readme_line(results)}")
    if not options.quick:
        published = report.write(started, machine_data, options, results)
        say(f"wrote {published} and the {report.SECTION} section of {files.RESULTS_MD}")
    return 0
