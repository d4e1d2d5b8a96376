"""One soak (or leak) run: Redis, the simulators and the gateway (fleet.py), the capacity measured with
a closed-loop burst unless a rate is given, then the open-loop load with a sample every interval
(sampler.py), an idle, and what the gateway counted and logged against what the clients saw."""

from __future__ import annotations

import asyncio
import os
import random
import shutil
import signal
import tempfile
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import redis.asyncio

from benchmarks.harness.cli import say_timed
from benchmarks.load.drivers import OpenLoopStats
from benchmarks.soak import allocations, probes
from benchmarks.soak import fleet as soak_fleet
from benchmarks.soak.figures import Sample
from benchmarks.soak.fleet import Fleet
from benchmarks.soak.outcomes import Tally
from benchmarks.soak.sampler import Sampler
from benchmarks.soak.traffic import LoadClient, Mix, closed_loop, open_loop

IDLE_S = 40.0
"""Before and after the load: how long the gateway sits idle, its clients' connections closed, before the
idle samples (file descriptors idle to idle; the leak run's RSS). Longer than twice aiohttp's 15 s keep-alive (its
cleanup runs that often), so the gateway's idle connections to workers are closed too."""


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
    long_stream_share: float
    long_stream_s: float
    """The long streams' mean length (their share of the requests: `long_stream_share`)."""
    poisson: bool
    workers: int
    warmup_s: float | None
    sample_interval_s: float | None
    idle_s: float
    max_in_flight: int
    allocator_stats: bool
    """Each sample asks the (untraced) gateway where its memory sits (`allocations.ask`)."""
    trace_frames: int | None
    pause: tuple[float, float] | None
    """`--pause-gateway`: (seconds into the load, seconds stopped), or None."""
    """Allocation tracking (`allocations.py`): tracemalloc's frames per allocation in the gateway; None: off."""
    seed: int
    out: Path | None
    """None: the JSON to benchmarks/runs/ and, published, to benchmarks/results/ with the figure records;
    RESULTS.md is updated."""
    keep_workdir: bool

    @property
    def leak(self) -> bool:
        return self.requests is not None


@dataclass(slots=True)
class Run:
    """What one run measured."""

    options: Options
    capacity_rps: float | None = None
    rate: float = 0.0
    length_s: float = 0.0
    """The load's planned length (a leak run's: its requests at the rate)."""
    warmup_s: float = 0.0
    interval_s: float = 0.0
    load_start: float = 0.0
    load_end: float = 0.0
    """When the last open request ended..."""
    arrivals_end: float = 0.0
    """...and when the arrivals stopped (the p99 windows end here: long streams go on a while after it)."""
    samples: list[Sample] = field(default_factory=list)
    tally: Tally = field(default_factory=Tally)
    stats: OpenLoopStats = field(default_factory=OpenLoopStats)
    metrics_by_class: Counter[str] = field(default_factory=Counter)
    logged: probes.LoggedRequests = field(default_factory=probes.LoggedRequests)
    final_keys: probes.RedisKeys = field(default_factory=probes.RedisKeys)
    snapshots: list[allocations.Snapshot] = field(default_factory=list)
    allocations: dict[str, object] | None = None
    """With `trace_frames`: `allocations.report`."""


def _auto(value: float | None, length_s: float, share: float, low: float, high: float) -> float:
    return value if value is not None else min(high, max(low, share * length_s))


async def measure_capacity(options: Options, client: LoadClient) -> float:
    """Normal requests from `capacity_concurrency` clients back to back: completed per second."""
    say_timed(f"capacity: {options.capacity_concurrency} clients back to back for {options.capacity_s:g} s")
    burst = Tally()
    capacity = await closed_loop(client, options.capacity_concurrency, options.capacity_s, burst)
    if burst.unexpected_normal:
        say_timed(f"capacity burst: {burst.unexpected_normal} requests failed: {burst.problems[:3]}")
    return capacity


async def load_and_sample(
    options: Options, run: Run, client: LoadClient, sampler: Sampler, snapshots: SnapshotTaker
) -> None:
    """The open-loop load with a sample every interval (and allocation snapshots, when traced), then the idle
    and its sample."""
    count = options.requests
    total = f"{count:,} requests" if count is not None else f"{options.duration_s:g} s"
    say_timed(
        f"open-loop load: {run.rate:g} requests/s for {total} ({options.fault_share:.1%} faults), "
        f"warm-up {run.warmup_s:g} s, a sample every {run.interval_s:g} s"
    )
    run.load_start = time.monotonic()
    stop_at = run.load_start + options.duration_s

    def until(sent: int) -> bool:
        over = sent >= count if count is not None else time.monotonic() >= stop_at
        if over and not run.arrivals_end:
            run.arrivals_end = time.monotonic()
        return over

    finished = asyncio.Event()
    sampling = asyncio.create_task(sampler.every_interval(finished))
    tracing = asyncio.create_task(snapshot_during_load(options, run, snapshots, finished))
    pausing = asyncio.create_task(pause_gateway(options, run, sampler.fleet, finished))
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
        await tracing
        await pausing
    await sampler.sample("load" if run.load_end - run.load_start >= run.warmup_s else "warm-up")
    await snapshots("end of load")
    say_timed(f"load over ({run.stats.sent:,} sent): {options.idle_s:g} s idle")
    await client.drop_connections()
    await asyncio.sleep(options.idle_s)
    await sampler.sample("idle")
    await snapshots("idle")


async def pause_gateway(options: Options, run: Run, fleet: Fleet, finished: asyncio.Event) -> None:
    """`--pause-gateway AT:SECONDS`: stop the gateway (SIGSTOP) AT seconds into the load for SECONDS, as a
    box too busy to run it would, so that arrivals pile up into a burst of connections; then go on."""
    if options.pause is None:
        return
    at_s, pause_s = options.pause
    try:
        await asyncio.wait_for(finished.wait(), max(0.0, run.load_start + at_s - time.monotonic()))
        return
    except TimeoutError:
        pass
    say_timed(f"pausing the gateway for {pause_s:g} s")
    os.kill(fleet.gateway_pid, signal.SIGSTOP)
    try:
        await asyncio.sleep(pause_s)
    finally:
        os.kill(fleet.gateway_pid, signal.SIGCONT)


SnapshotTaker = Callable[[str], Awaitable[None]]
"""Asks the gateway for an allocation snapshot labelled so (does nothing when allocations are not traced)."""


def snapshot_taker(options: Options, run: Run, fleet: Fleet) -> SnapshotTaker:
    directory = allocations.directory_of(fleet.workdir)

    async def take(label: str) -> None:
        if options.trace_frames is not None:
            snapshot = await allocations.take(fleet.gateway_pid, directory, label, time.monotonic() - run.load_start)
            run.snapshots.append(snapshot)
            say_timed(f"allocation snapshot ({label}): {snapshot.traced_mb:,.1f} MB traced, {snapshot.took_ms:g} ms")

    return take


async def snapshot_during_load(options: Options, run: Run, take: SnapshotTaker, finished: asyncio.Event) -> None:
    """With allocations traced: a snapshot at the end of warm-up, then ten more spread over the load."""
    if options.trace_frames is None:
        return
    label, delay = "warm", run.warmup_s
    every = max(allocations.MIN_SNAPSHOT_GAP_S, (run.length_s - run.warmup_s) / 10)
    while True:
        try:
            await asyncio.wait_for(finished.wait(), max(0.0, run.load_start + delay - time.monotonic()))
            return
        except TimeoutError:
            pass
        await take(label)
        label, delay = "load", delay + every


async def drive(options: Options, fleet: Fleet) -> Run:
    run = Run(options)
    mix = Mix(
        stream_share=options.stream_share,
        fault_share=options.fault_share,
        long_stream_share=options.long_stream_share,
        long_max_tokens=soak_fleet.long_reply_tokens(options.long_stream_s)[1],
    )
    rng = random.Random(options.seed)  # noqa: S311 (a load mix, not a secret)

    async with LoadClient(fleet.gateway_url, mix, rng) as client, httpx.AsyncClient(trust_env=False) as http:
        if options.rate is not None:
            run.rate = options.rate
        else:
            run.capacity_rps = await measure_capacity(options, client)
            run.rate = round(run.capacity_rps * options.load_share, 1)
            say_timed(f"capacity {run.capacity_rps:.0f} requests/s: the load runs at {run.rate:.1f}/s")
        run.length_s = options.requests / run.rate if options.requests is not None else options.duration_s
        run.warmup_s = _auto(options.warmup_s, run.length_s, 0.1, 1.0, 300.0)
        run.interval_s = _auto(options.sample_interval_s, run.length_s, 0.05, 0.5, 10.0)
        redis_client = redis.asyncio.Redis.from_url(fleet.redis_url)
        try:
            sampler = Sampler(fleet, run, redis_client)
            await client.drop_connections()
            await asyncio.sleep(options.idle_s)  # idle level before the load: the burst's connections gone
            await sampler.sample("before")
            before = await probes.scrape_requests(http, fleet.gateway_url)
            log_offset = probes.log_size(fleet.gateway_log)
            await load_and_sample(options, run, client, sampler, snapshot_taker(options, run, fleet))
        finally:
            await redis_client.aclose()
        after = await probes.scrape_requests(http, fleet.gateway_url)
        run.metrics_by_class = after - before
        run.logged = await asyncio.to_thread(
            probes.logged_requests,
            fleet.gateway_log,
            log_offset,
            {*run.tally.fault_requests, *run.tally.unexpected_ids},
        )
    if run.snapshots:
        say_timed(f"comparing {len(run.snapshots)} allocation snapshots")
        run.allocations = await asyncio.to_thread(allocations.report, run.snapshots, run.warmup_s)
    return run


async def run_soak(options: Options) -> Run:
    workdir = Path(tempfile.mkdtemp(prefix="llm-gateway-soak-"))
    try:
        say_timed(f"starting Redis, {options.workers} + 1 simulators and the gateway in {workdir}")
        fleet = await soak_fleet.start_fleet(
            workdir,
            workers=options.workers,
            redis_url=soak_fleet.external_redis_url(),
            say=say_timed,
            long_stream_s=options.long_stream_s,
            gateway_env=(
                allocations.gateway_env(options.trace_frames, allocations.directory_of(workdir))
                if options.allocator_stats or options.trace_frames is not None
                else None
            ),
        )
        try:
            return await drive(options, fleet)
        finally:
            if fleet.gateway is not None and fleet.gateway.exited:
                say_timed(f"the gateway exited during the run:\n{fleet.gateway.log_tail()}")
            await fleet.stop(say_timed)
    finally:
        if options.keep_workdir:
            say_timed(f"kept {workdir}")
        else:
            await asyncio.to_thread(shutil.rmtree, workdir, True)


