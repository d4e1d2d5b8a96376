"""Soak (reliability figure 15) and leak run (issue 11): one gateway with everything on, under an open-loop
load at half its capacity with 1 % faults, sampled for memory, file descriptors, latency and Redis keys.

    .venv/bin/python -m benchmarks.soak                      # make soak: one hour
    .venv/bin/python -m benchmarks.soak --requests 200000    # make leak: 200,000 requests
    .venv/bin/python -m benchmarks.soak --duration 120       # a 2-minute smoke run

Starts Redis (or uses REDIS_URL), simulated vLLM workers and one `llm-gateway serve` (keys file with a
limited key, Redis limits and cache, metrics, INFO logs), measures capacity with a short closed-loop
burst, then sends requests at half of it. Writes `<out>/soak-<UTC>.json` (or `leak-<UTC>.json`); with
the default `--out` also the soak section of benchmarks/RESULTS.md, and (soak runs) the figure-15
records to `<out>/reliability-soak.jsonl`.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import os
import platform
import random
import shlex
import shutil
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import httpx
import redis.asyncio

from benchmarks import interference, soak_fleet, soak_probes, soak_report
from benchmarks.cli import run_cancellable
from benchmarks.soak_fleet import Fleet
from benchmarks.soak_load import LoadClient, Mix, OpenLoopStats, Tally, closed_loop, open_loop

IDLE_S = 40.0
"""Before and after the load: how long the gateway sits idle, its clients' connections closed, before the
idle samples (file descriptors idle to idle; the leak run's RSS). Longer than twice aiohttp's 15 s keep-alive (its
cleanup runs that often), so the gateway's idle connections to workers are closed too."""


def say(text: str) -> None:
    print(f"[soak {time.strftime('%H:%M:%S')}] {text}", file=sys.stderr, flush=True)


@dataclass(frozen=True, slots=True)
class Options:
    duration_s: float
    requests: int | None
    """Leak run: this many requests instead of `duration_s`."""
    rate: float | None
    """Requests per second; None: `load_share` of the measured capacity."""
    load_share: float
    capacity_s: float
    capacity_concurrency: int
    fault_share: float
    stream_share: float
    poisson: bool
    workers: int
    warmup_s: float | None
    sample_interval_s: float | None
    idle_s: float
    max_in_flight: int
    seed: int
    out: Path | None
    """None: benchmarks/results, and RESULTS.md is updated."""
    keep_workdir: bool

    @property
    def leak(self) -> bool:
        return self.requests is not None


@dataclass(slots=True)
class Run:
    """What one run measured."""

    capacity_rps: float | None = None
    rate: float = 0.0
    warmup_s: float = 0.0
    interval_s: float = 0.0
    load_start: float = 0.0
    load_end: float = 0.0
    samples: list[soak_report.Sample] = field(default_factory=list)
    tally: Tally = field(default_factory=Tally)
    stats: OpenLoopStats = field(default_factory=OpenLoopStats)
    metrics_by_class: Counter[str] = field(default_factory=Counter)
    logged: soak_probes.LoggedRequests = field(default_factory=soak_probes.LoggedRequests)
    final_keys: soak_probes.RedisKeys = field(default_factory=soak_probes.RedisKeys)


class Sampler:
    """Every `interval_s`: the gateway's RSS and FDs, the window's latencies, Redis's keys, other CPU."""

    def __init__(self, fleet: Fleet, run: Run, client: redis.asyncio.Redis) -> None:
        self.fleet, self.run, self.redis = fleet, run, client
        self._latency_index = 0
        self._snapshot = interference.snapshot()

    async def sample(self, phase: str) -> soak_report.Sample:
        run, pid = self.run, self.fleet.gateway_pid
        rss = await asyncio.to_thread(soak_probes.rss_bytes, pid)
        fds = await asyncio.to_thread(soak_probes.open_fds, pid)
        keys = await soak_probes.scan_keys(self.redis)
        now = await asyncio.to_thread(interference.snapshot)
        noise = interference.between(self._snapshot, now)
        self._snapshot = now
        window = list(run.tally.latency_s[self._latency_index :])
        self._latency_index = len(run.tally.latency_s)
        p50, p99 = soak_report.percentile(window, 0.5), soak_report.percentile(window, 0.99)
        sample = soak_report.Sample(
            t_s=0.0 if phase == "before" else round(time.monotonic() - run.load_start, 2),
            phase=phase,
            rss_mb=round(rss / 2**20, 2),
            fds=fds,
            requests_done=run.tally.completed,
            window_requests=len(window),
            p50_ms=None if p50 is None else round(p50 * 1000, 2),
            p99_ms=None if p99 is None else round(p99 * 1000, 2),
            client_in_flight=run.stats.in_flight,
            redis_keys=keys.total,
            redis_keys_without_ttl=keys.without_ttl,
            redis_exempt_keys=keys.exempt_without_ttl,
            redis_used_mb=round(keys.used_memory / 2**20, 2),
            gateway_redis_connections=keys.gateway_connections,
            other_cpu_pct=round(noise.other_cpu_pct, 1),
        )
        run.samples.append(sample)
        run.final_keys = keys
        if keys.offenders:
            say(f"keys without a TTL: {', '.join(keys.offenders)}")
        return sample

    async def every_interval(self, done: asyncio.Event) -> None:
        run = self.run
        while True:
            try:
                await asyncio.wait_for(done.wait(), run.interval_s)
                return
            except TimeoutError:
                pass
            elapsed = time.monotonic() - run.load_start
            s = await self.sample("warm-up" if elapsed < run.warmup_s else "load")
            say(
                f"t={s.t_s:7.0f}s {s.phase:7} RSS {s.rss_mb:7.1f} MB  FDs {s.fds:4}  p50 {s.p50_ms} ms  "
                f"p99 {s.p99_ms} ms  done {s.requests_done:,}  in flight {s.client_in_flight}  "
                f"Redis keys {s.redis_keys} (no TTL {s.redis_keys_without_ttl})  other CPU {s.other_cpu_pct:.0f}%"
            )


def _auto(value: float | None, length_s: float, share: float, low: float, high: float) -> float:
    return value if value is not None else min(high, max(low, share * length_s))


async def measure_capacity(options: Options, client: LoadClient) -> float:
    """Normal requests from `capacity_concurrency` clients back to back: completed per second."""
    say(f"capacity: {options.capacity_concurrency} clients back to back for {options.capacity_s:g} s")
    burst = Tally()
    capacity = await closed_loop(client, options.capacity_concurrency, options.capacity_s, burst)
    if burst.unexpected_normal:
        say(f"capacity burst: {burst.unexpected_normal} requests failed: {burst.problems[:3]}")
    return capacity


async def load_and_sample(options: Options, run: Run, client: LoadClient, sampler: Sampler) -> None:
    """The open-loop load with a sample every interval, then the idle and its sample."""
    count = options.requests
    total = f"{count:,} requests" if count is not None else f"{options.duration_s:g} s"
    say(
        f"open-loop load: {run.rate:g} requests/s for {total} ({options.fault_share:.1%} faults), "
        f"warm-up {run.warmup_s:g} s, a sample every {run.interval_s:g} s"
    )
    run.load_start = time.monotonic()
    stop_at = run.load_start + options.duration_s

    def until(sent: int) -> bool:
        return sent >= count if count is not None else time.monotonic() >= stop_at

    finished = asyncio.Event()
    sampling = asyncio.create_task(sampler.every_interval(finished))
    try:
        await open_loop(
            client,
            run.rate,
            run.tally,
            run.stats,
            until=until,
            poisson=options.poisson,
            max_in_flight=options.max_in_flight,
        )
        run.load_end = time.monotonic()
    finally:
        finished.set()
        await sampling
    await sampler.sample("load" if run.load_end - run.load_start >= run.warmup_s else "warm-up")
    say(f"load over ({run.stats.sent:,} sent): {options.idle_s:g} s idle")
    await client.drop_connections()
    await asyncio.sleep(options.idle_s)
    await sampler.sample("idle")


async def drive(options: Options, fleet: Fleet) -> Run:
    run = Run()
    mix = Mix(stream_share=options.stream_share, fault_share=options.fault_share)
    rng = random.Random(options.seed)  # noqa: S311 (a load mix, not a secret)
    assert fleet.gateway_log is not None
    async with LoadClient(fleet.gateway_url, mix, rng) as client, httpx.AsyncClient(trust_env=False) as http:
        if options.rate is not None:
            run.rate = options.rate
        else:
            run.capacity_rps = await measure_capacity(options, client)
            run.rate = round(run.capacity_rps * options.load_share, 1)
            say(f"capacity {run.capacity_rps:.0f} requests/s: the load runs at {run.rate:.1f}/s")
        length_s = options.requests / run.rate if options.requests is not None else options.duration_s
        run.warmup_s = _auto(options.warmup_s, length_s, 0.1, 1.0, 300.0)
        run.interval_s = _auto(options.sample_interval_s, length_s, 0.05, 0.5, 10.0)
        redis_client = redis.asyncio.Redis.from_url(fleet.redis_url)
        try:
            sampler = Sampler(fleet, run, redis_client)
            await client.drop_connections()
            await asyncio.sleep(options.idle_s)  # idle level before the load: the burst's connections gone
            await sampler.sample("before")
            before = await soak_probes.scrape_requests(http, fleet.gateway_url)
            log_offset = soak_probes.log_size(fleet.gateway_log)
            await load_and_sample(options, run, client, sampler)
        finally:
            await redis_client.aclose()
        after = await soak_probes.scrape_requests(http, fleet.gateway_url)
        run.metrics_by_class = after - before
        run.logged = await asyncio.to_thread(
            soak_probes.logged_requests,
            fleet.gateway_log,
            log_offset,
            {*run.tally.fault_requests, *run.tally.unexpected_ids},
        )
    return run


def fault_figures(run: Run) -> dict[str, object]:
    """The gateway's own log line of each fault request (they carry their own ids) against the client."""
    by_kind: dict[str, Counter[str]] = {}
    mismatches: list[dict[str, object]] = []
    for request_id, (kind, seen) in run.tally.fault_requests.items():
        line = run.logged.by_id.get(request_id)
        status = None if line is None else line.get("status")
        logged = "no log line" if not isinstance(status, int) else ("499" if status == 499 else f"{status // 100}xx")
        error = None if line is None else line.get("error")
        by_kind.setdefault(kind, Counter())[f"{status} {error}" if error else str(status)] += 1
        if logged != seen:
            mismatches.append(
                {"request_id": request_id, "kind": kind, "client": seen, "gateway": logged, "gateway_line": line}
            )
    return {
        "fault_requests": len(run.tally.fault_requests),
        "gateway_by_fault_kind": {kind: dict(c.most_common()) for kind, c in sorted(by_kind.items())},
        "fault_mismatches": len(mismatches),
        "fault_mismatch_examples": mismatches[:20],
    }


def figures(options: Options, run: Run) -> dict[str, object]:
    tally, samples = run.tally, run.samples
    warm_end = run.load_start + run.warmup_s
    loaded = [s for s in samples if s.phase == "load"]
    client = {k: v for k, v in sorted(tally.by_class.items())}
    metrics = {k: v for k, v in sorted(run.metrics_by_class.items()) if v}
    logged = dict(sorted(run.logged.by_class.items()))
    return {
        "capacity_rps": None if run.capacity_rps is None else round(run.capacity_rps, 1),
        "rate_rps": run.rate,
        "warmup_s": run.warmup_s,
        "load_s": round(run.load_end - run.load_start, 1),
        "requests_sent": run.stats.sent,
        "skipped_arrivals": run.stats.skipped,
        "generator_max_lag_s": round(run.stats.max_lag_s, 3),
        **soak_report.memory_figures(samples, run.warmup_s),
        **soak_report.fd_figures(samples),
        **soak_report.p99_figures(list(tally.done_at), list(tally.latency_s), run.load_start, warm_end, run.load_end),
        "redis_keys_max": max((s.redis_keys for s in samples), default=None),
        "redis_keys_without_ttl_max": max((s.redis_keys_without_ttl for s in samples), default=None),
        "redis_exempt_keys_max": max((s.redis_exempt_keys for s in samples), default=None),
        "redis_key_families_at_end": run.final_keys.families,
        "client_by_class": client,
        "metrics_by_class": metrics,
        "metrics_mismatch": soak_report.mismatch(run.metrics_by_class, tally.by_class),
        "log_by_class": logged,
        "log_mismatch": soak_report.mismatch(run.logged.by_class, tally.by_class),
        "log_warnings": dict(run.logged.warnings.most_common(10)),
        "log_lines_not_json": run.logged.not_json,
        "outcomes_by_kind": {kind: dict(c.most_common()) for kind, c in sorted(tally.by_kind.items())},
        **fault_figures(run),
        "cache_header": dict(tally.cache.most_common()),
        "responses": tally.responses,
        "responses_without_request_id": tally.missing_request_id,
        "wrong_request_id": tally.wrong_request_id,
        "silent_truncations": tally.silent_truncations,
        "malformed_errors": tally.malformed_errors,
        "unexpected_normal": tally.unexpected_normal,
        "unexpected_normal_log_lines": {i: run.logged.by_id.get(i) for i in tally.unexpected_ids},
        "problems": tally.problems,
        "other_cpu_pct_mean": round(sum(s.other_cpu_pct for s in loaded) / len(loaded), 1) if loaded else None,
    }


METHOD = (
    "one `llm-gateway serve` process (keys file with one key limited in requests/min, tokens/min, concurrency "
    "and a daily token budget, all far above the load; Redis limits and response cache; metrics; INFO request "
    "logs to a file) in front of simulated vLLM workers (`llm-gateway simulate`, 5 ms per token) and one "
    "simulated worker for the fault models; real Redis on loopback. Capacity: a closed-loop burst of normal "
    "requests; load: open-loop arrivals (Poisson) at half of it from an aiohttp client, half streams, a fifth "
    "deterministic (cache hits), a tenth with their own `x-request-id`, and a share of faults spread evenly over "
    "worker 500s (streamed and not), streams dropped, stalled or failed midway, and clients leaving mid-stream, "
    "before the first byte and during a non-streaming call. Every ~10 s (5 % of shorter runs): the gateway's RSS "
    "and open file descriptors (/proc), p50/p99 of the normal requests of the window, and Redis's keys (SCAN + "
    "TTL; API-key records `llmgw:key:*`/`llmgw:keyid:*` are persistent by design and reported apart). Memory "
    "drift: slope of a least-squares line through the RSS samples after warm-up, over its value at the end of "
    "warm-up; p99 drift: p99 of the normal requests that ended in the last 10 % of the post-warm-up time over "
    "the first 10 %; file descriptors: under load they follow the open connections, so a leak is judged idle to "
    "idle (after the load and an idle against an idle before it, the Redis pool aside); metrics: the delta of "
    '`llm_gateway_requests_total{endpoint="chat/completions"}` by status class over the load against what the '
    "clients saw (a client that left counts as 499). The leak run: RSS after the load and an idle (40 s by "
    "default) against RSS at the end of warm-up. The box is shared: *other_cpu_pct_mean* is the CPU other "
    "processes used meanwhile (% of one core)."
)


def machine() -> dict[str, object]:
    return {
        "nproc": len(os.sched_getaffinity(0)),
        "kernel": platform.release(),
        "python": f"{platform.python_implementation()} {platform.python_version()}",
        "load_average_at_start": [round(x, 2) for x in os.getloadavg()],
    }


def summary(options: Options, run: Run, figs: dict[str, object]) -> str:
    capacity = "" if run.capacity_rps is None else f" ({options.load_share:.0%} of a measured {run.capacity_rps:,.0f})"
    return (
        f"{figs['load_s']} s of load at {run.rate:,.1f} requests/s{capacity}, {options.fault_share:.1%} faults, "
        f"{run.stats.sent:,} requests, warm-up {run.warmup_s:g} s."
    )


def report(options: Options, run: Run, started: datetime, argv: Sequence[str]) -> int:
    figs = figures(options, run)
    label = f"{options.requests:,} requests" if options.requests is not None else f"{figs['load_s']} s"
    verdicts = soak_report.verdicts(figs, label, options.leak)
    out_dir = options.out or soak_report.RESULTS_DIR
    data: dict[str, object] = {
        "benchmark": "leak" if options.leak else "soak",
        "started": started.isoformat().replace("+00:00", "Z"),
        "command": "python -m benchmarks.soak " + shlex.join(argv),
        "options": {k: str(v) if isinstance(v, Path) else v for k, v in dataclasses.asdict(options).items()},
        "machine": machine(),
        "summary": "",
        "method": METHOD,
        "verdicts": [dataclasses.asdict(v) for v in verdicts],
        "figures": figs,
        "samples": [dataclasses.asdict(s) for s in run.samples],
    }
    data["summary"] = summary(options, run, figs)
    stamp = started.strftime("%Y%m%dT%H%M%SZ")
    json_path = soak_report.write_json(data, out_dir, stamp, options.leak)
    written = [str(json_path)]
    if not options.leak:
        written.append(str(soak_report.record(verdicts, out_dir)))
    if options.out is None:
        soak_report.update_section(soak_report.markdown(data, verdicts, json_path, options.leak), options.leak)
        written.append(str(soak_report.RESULTS_MD))
    for v in verdicts:
        met = "-" if v.met is None else ("met" if v.met else "NOT MET")
        say(f"{v.measure}: {v.value} {v.unit} (threshold {v.threshold}): {met}")
    say(f"clients {figs['client_by_class']}, /metrics {figs['metrics_by_class']}, logs {figs['log_by_class']}")
    say(f"wrote {', '.join(written)}")
    return 0


async def run_soak(options: Options) -> Run:
    workdir = Path(tempfile.mkdtemp(prefix="llm-gateway-soak-"))
    try:
        say(f"starting Redis, {options.workers} + 1 simulators and the gateway in {workdir}")
        fleet = await soak_fleet.start_fleet(
            workdir, workers=options.workers, redis_url=soak_fleet.external_redis_url()
        )
        try:
            return await drive(options, fleet)
        finally:
            if fleet.gateway is not None and fleet.gateway.exited:
                say(f"the gateway exited during the run:\n{fleet.gateway.log_tail()}")
            await fleet.stop()
    finally:
        if options.keep_workdir:
            say(f"kept {workdir}")
        else:
            await asyncio.to_thread(shutil.rmtree, workdir, True)


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
    parser.add_argument("--arrivals", choices=("poisson", "uniform"), default="poisson")
    parser.add_argument("--workers", type=_positive_int, default=2, help="simulators of the normal model (2)")
    parser.add_argument("--warmup", type=float, help="seconds not counted (default 10 %% of the run, 1-300 s)")
    parser.add_argument("--sample-interval", type=_positive_float, help="seconds (default 5 %% of the run, 0.5-10)")
    parser.add_argument("--idle", type=float, default=IDLE_S, help=f"idle seconds before the last sample ({IDLE_S:g})")
    parser.add_argument("--max-in-flight", type=_positive_int, default=2000, help="open requests at most (2000)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument(
        "--out",
        type=Path,
        help="directory for the JSON and figure records (default "
        "benchmarks/results); when given, RESULTS.md is left alone",
    )
    parser.add_argument("--keep-workdir", action="store_true", help="keep the logs, catalog and keys of the run")
    args = parser.parse_args(argv)
    for name in ("fault_share", "stream_share"):
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
        poisson=args.arrivals == "poisson",
        workers=args.workers,
        warmup_s=args.warmup,
        sample_interval_s=args.sample_interval,
        idle_s=args.idle,
        max_in_flight=args.max_in_flight,
        seed=args.seed,
        out=args.out,
        keep_workdir=args.keep_workdir,
    )


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    options = parse_args(args)
    started = datetime.now(UTC).replace(microsecond=0)
    try:
        run = asyncio.run(run_cancellable(run_soak(options)))
    except (KeyboardInterrupt, asyncio.CancelledError):
        say("interrupted: every process started was stopped")
        return 130
    except (RuntimeError, OSError, httpx.HTTPError, redis.RedisError) as exc:
        say(f"soak failed: {type(exc).__name__}: {exc}")
        return 1
    return report(options, run, started, args)


if __name__ == "__main__":
    sys.exit(main())
