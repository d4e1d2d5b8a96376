"""Routing benchmark: does prefix-affinity routing beat round robin on a shared-prefix workload?

Run: `.venv/bin/python -m benchmarks.routing_bench [--quick] [--requests N] [--concurrency C]`
(`--quick`: a smoke run under a minute that writes no files; the full run takes about 4 minutes on
2 cores). `--policies`, `--workloads` and `--balance-abs` run a subset or try another prefix_affinity
setting. Before each (workload, policy) pair it waits for a running `benchmarks.overhead` to end (at
most `--quiet-wait` seconds over the whole run), and marks the pairs measured alongside it as noisy.

One run starts, on loopback only, 8 simulated vLLM workers (`llm-gateway simulate --kind vllm`,
subprocesses: see `FleetSettings` for their KV cache, prefill cost, decode speed and batch size)
and, for each workload (`uniform`, `skewed`: see `benchmarks.routing_workload`) and each policy
(`round_robin`, `least_outstanding`, `prefix_affinity`), a fresh gateway
(`llm-gateway serve --no-local-workers`) whose catalog routes the model `bench` to the 8 workers with
that policy. The simulators are restarted for every (workload, policy) pair, so each starts with an
empty KV cache. The same requests then go through the gateway at a fixed concurrency
(`benchmarks.routing_client`), and the run records output tokens/s, client-side TTFT p50/p90, the
simulators' prefix-cache hit rate (`vllm:prefix_cache_hits_total / vllm:prefix_cache_queries_total`),
the requests and outstanding load (time average and peak) per worker, and why requests missed the
cache (`benchmarks.routing_replay`).

It compares prefix_affinity with round_robin against the issue's targets (>= 1.8x output tokens/s,
>= 3x lower p90 TTFT, and under the skewed workload no worker's queue over 2x the mean), writes
`benchmarks/results/routing-<UTC time>.json` and rewrites the section of `benchmarks/RESULTS.md`
between `<!-- routing:start -->` and `<!-- routing:end -->` (`benchmarks.routing_report`).
Every process it starts is stopped when it ends, on error or Ctrl-C too.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx

from benchmarks import procs
from benchmarks.routing_client import OutstandingTracker, run_load
from benchmarks.routing_replay import replay
from benchmarks.routing_report import machine_info, summarize_run, write_reports
from benchmarks.routing_workload import FleetSettings, WorkloadKind, WorkloadSpec, build_workload, ideal_ratios

ROOT = Path(__file__).resolve().parent.parent
CLI = str(Path(sys.executable).parent / "llm-gateway")
POLICIES = ("round_robin", "least_outstanding", "prefix_affinity")
WORKLOADS: tuple[WorkloadKind, ...] = ("uniform", "skewed")
PREFIX_OPTIONS: dict[str, float | int] = {"balance_abs": 16, "balance_rel": 1.5, "match_threshold": 0.3}
"""balance_abs 16: about twice the mean outstanding requests per worker at concurrency 48 (the gateway
counts in_flight + scraped waiting, ~8 a worker); the best of a sweep 4-64 on both workloads (smaller values
let ordinary load fluctuations spread every group over every worker, larger ones break the skewed queue
target). balance_rel and match_threshold are SGLang's defaults."""
HEALTH_INTERVAL_S = 1.0
_METRICS = ("vllm:prefix_cache_hits_total", "vllm:prefix_cache_queries_total",
            "vllm:e2e_request_latency_seconds_count")


def _catalog(policy: str, options: dict[str, float | int], ports: list[int]) -> str:
    lines = ["models:", "  - name: bench", f"    policy: {policy}"]
    if policy == "prefix_affinity":
        lines.append(f"    policy_options: {json.dumps(options)}")
    lines += ["routing:", "  default_model: bench", "health:", f"  interval: {HEALTH_INTERVAL_S}", "workers:"]
    for index, port in enumerate(ports):
        lines += [f"  - name: sim-{index}", "    kind: vllm", f"    base_url: http://{procs.LOOPBACK}:{port}/v1",
                  "    models: [{name: bench, upstream_id: sim-model}]"]
    return "\n".join(lines) + "\n"


@contextlib.asynccontextmanager
async def fleet(settings: FleetSettings, logdir: Path) -> AsyncIterator[list[int]]:
    """`settings.workers` simulated vLLM workers, each in its own process; yields their ports."""
    ports = [procs.free_port() for _ in range(settings.workers)]
    children: list[procs.Child] = []
    try:
        for index, port in enumerate(ports):
            argv = [CLI, "simulate", "--kind", "vllm", "--host", procs.LOOPBACK, "--port", str(port),
                    "--model", "sim-model", "--seed", str(index), *settings.simulate_args()]
            children.append(await procs.start(f"sim-{index}", argv, logdir / f"sim-{index}.log", cwd=ROOT))
        await asyncio.gather(*(procs.wait_until_ready(child, f"http://{procs.LOOPBACK}:{port}/health")
                               for child, port in zip(children, ports, strict=True)))
        yield ports
    finally:
        await asyncio.gather(*(child.stop() for child in children), return_exceptions=True)


@contextlib.asynccontextmanager
async def gateway(catalog: str, logdir: Path, workers: int) -> AsyncIterator[str]:
    """A gateway serving `catalog`; yields its URL once every worker's load has been scraped once."""
    path = logdir / "catalog.yaml"
    path.write_text(catalog)
    port = procs.free_port()
    # Anonymous loopback clients, no per-caller rate limit: the benchmark measures routing, not admission.
    env = {**os.environ, "LOG_LEVEL": "warning", "GATEWAY_WORKERS": "1", "RATE_LIMIT_RPM": "0"}
    argv = [CLI, "serve", "--no-local-workers", "--config", str(path), "--host", procs.LOOPBACK, "--port", str(port)]
    child = await procs.start("gateway", argv, logdir / "gateway.log", env=env, cwd=ROOT)
    url = f"http://{procs.LOOPBACK}:{port}"
    try:
        await procs.wait_until_ready(child, url + "/v1/models")
        probe = {"model": "bench", "messages": [{"role": "user", "content": "probe"}]}
        deadline = time.monotonic() + 10 * HEALTH_INTERVAL_S + 5
        async with httpx.AsyncClient(trust_env=False, timeout=5) as client:
            while True:  # the policy learns each worker's num_gpu_blocks from the first scrape
                answer = (await client.post(url + "/v1/routing/explain", json=probe)).json()
                seen = [w for w in answer["candidates"][0]["workers"] if w["waiting"] is not None]
                if len(seen) == workers:
                    break
                if time.monotonic() > deadline:
                    raise RuntimeError(f"the gateway scraped {len(seen)} of {workers} workers: {answer}")
                await asyncio.sleep(0.1)
        yield url
    finally:
        await child.stop()


async def simulator_counters(ports: list[int]) -> list[dict[str, float]]:
    """Each simulator's prefix-cache counters (tokens) and finished requests, from its /metrics."""
    counters = []
    async with httpx.AsyncClient(trust_env=False, timeout=5) as client:
        for port in ports:
            text = (await client.get(f"http://{procs.LOOPBACK}:{port}/metrics")).text
            values = dict.fromkeys(_METRICS, 0.0)
            for line in text.splitlines():
                name = line.split("{", 1)[0].split(" ", 1)[0]
                if name in values:
                    values[name] += float(line.rsplit(" ", 1)[1])
            counters.append({"hits": values[_METRICS[0]], "queries": values[_METRICS[1]],
                             "finished": values[_METRICS[2]]})
    return counters


def other_benchmark_running() -> bool:
    """True while `benchmarks.overhead` runs (it would share the 2 cores): `pgrep -f`, via /proc."""
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and int(entry.name) != os.getpid():
            with contextlib.suppress(OSError):
                if b"benchmarks.overhead" in (entry / "cmdline").read_bytes():
                    return True
    return False


async def wait_for_quiet_machine(args: argparse.Namespace) -> bool:
    """Wait until no `benchmarks.overhead` runs, spending at most what is left of `args.quiet_wait`
    over the whole run; False if it still runs."""
    started = time.monotonic()
    if other_benchmark_running():
        print("waiting for benchmarks.overhead to finish (it shares the cores)...", flush=True)
    while other_benchmark_running():
        if time.monotonic() - started > args.quiet_wait:
            print("benchmarks.overhead is still running: measuring anyway (the run is marked noisy)", flush=True)
            args.quiet_wait = 0.0
            return False
        await asyncio.sleep(2)
    args.quiet_wait = max(args.quiet_wait - (time.monotonic() - started), 0.0)
    return True


async def one_run(kind: WorkloadKind, policy: str, args: argparse.Namespace, settings: FleetSettings,
                  spec: WorkloadSpec, workdir: Path) -> dict[str, Any]:
    requests = build_workload(kind, args.requests, spec)
    logdir = workdir / f"{kind}-{policy}"
    logdir.mkdir()
    quiet = await wait_for_quiet_machine(args)
    load_before = os.getloadavg()[0]
    async with fleet(settings, logdir) as ports, \
            gateway(_catalog(policy, args.options, ports), logdir, settings.workers) as url:
        tracker = OutstandingTracker()
        outcomes, wall = await run_load(url, requests, args.concurrency, spec.max_tokens, tracker,
                                        timeout_s=args.run_timeout)
        names = [f"sim-{i}" for i in range(settings.workers)]
        load = tracker.summary(names, tracker.started + wall)
        counters = await simulator_counters(ports)
    run = summarize_run(kind, policy, outcomes, wall, load, names, counters)
    run["load_average_before"] = load_before
    run["overhead_benchmark_running"] = not quiet or other_benchmark_running()
    run["replay"] = replay(outcomes, requests, settings)
    return run


async def main_async(args: argparse.Namespace) -> int:
    settings, spec = FleetSettings(), WorkloadSpec()
    started = time.time()
    runs: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="routing-bench-") as tmp:
        for kind in args.workloads:
            for policy in args.policies:
                run = await one_run(kind, policy, args, settings, spec, Path(tmp))
                runs.append(run)
                print(f"{kind:8} {policy:18} {run['output_tokens_per_s']:6.0f} tok/s  TTFT p50 "
                      f"{run['ttft_p50_ms']:4.0f} p90 {run['ttft_p90_ms']:4.0f} ms  hit {run['cache_hit_rate']:5.1%}  "
                      f"workers/group {run['workers_per_group']:4.1f}  queue max/mean {run['queue_imbalance']:.2f} "
                      f"(peak {run['peak_queue_imbalance']:.2f})  errors {run['errors']}  [{run['wall_s']:.0f} s]",
                      flush=True)
    report = {
        "date_utc": time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(started)),
        "duration_s": round(time.time() - started, 1),
        "quick": args.quick,
        "machine": machine_info(),
        "fleet": settings.to_json(),
        "workload": {**spec.to_json(), "requests_per_run": args.requests, "concurrency": args.concurrency},
        "prefix_affinity_options": args.options,
        "health_interval_s": HEALTH_INTERVAL_S,
        "ideal": {kind: ideal_ratios(build_workload(kind, args.requests, spec), settings) for kind in args.workloads},
        "runs": runs,
    }
    verdict = write_reports(report, write_files=args.write)
    print(verdict)
    return 0


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.routing_bench", description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="a short smoke run (writes no files unless --write)")
    parser.add_argument("--requests", type=int, default=None, help="requests per (workload, policy) (default 2000)")
    parser.add_argument("--concurrency", type=int, default=48, help="requests in flight (default %(default)s)")
    parser.add_argument("--balance-abs", type=int, default=None, help="prefix_affinity balance_abs override")
    parser.add_argument("--quiet-wait", type=float, default=None,
                        help="seconds in all to wait for a running benchmarks.overhead (default 240; quick: 20)")
    parser.add_argument("--policies", default=",".join(POLICIES), help="comma-separated (default: all three)")
    parser.add_argument("--workloads", default=",".join(WORKLOADS), help="comma-separated (default: both)")
    parser.add_argument("--write", action=argparse.BooleanOptionalAction, default=None,
                        help="write the JSON and the RESULTS.md section (default: yes, except with --quick)")
    args = parser.parse_args(argv)
    if args.requests is None:
        args.requests = 200 if args.quick else 2000
    if args.requests < 1 or args.concurrency < 1:
        parser.error("--requests and --concurrency must be at least 1")
    args.policies = [p for p in args.policies.split(",") if p]
    args.workloads = [w for w in args.workloads.split(",") if w]
    if not set(args.policies) <= set(POLICIES) or not set(args.workloads) <= set(WORKLOADS) or not args.policies:
        parser.error(f"--policies: some of {', '.join(POLICIES)}; --workloads: some of {', '.join(WORKLOADS)}")
    args.options = dict(PREFIX_OPTIONS)
    if args.balance_abs is not None:
        args.options["balance_abs"] = args.balance_abs
    args.run_timeout = 30.0 if args.quick else 90.0
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


if __name__ == "__main__":
    sys.exit(main())
