"""The soak's samples: every interval, the gateway's resident memory and open file descriptors (/proc),
the latencies of the window's normal requests, Redis's keys and their TTLs, and the CPU other processes
used meanwhile."""

from __future__ import annotations

import asyncio
import time
from typing import TYPE_CHECKING

import redis.asyncio

from benchmarks.harness import interference, proc_stats
from benchmarks.harness.cli import say_timed
from benchmarks.soak import allocations
from benchmarks.soak.figures import Sample, percentile
from benchmarks.soak.fleet import Fleet
from benchmarks.soak.probes import scan_keys

if TYPE_CHECKING:
    from benchmarks.soak.run import Run


class Sampler:
    """Every `interval_s`: the gateway's RSS and FDs, the window's latencies, Redis's keys, other CPU."""

    def __init__(self, fleet: Fleet, run: Run, client: redis.asyncio.Redis) -> None:
        self.fleet, self.run, self.redis = fleet, run, client
        self._latency_index = 0
        self._snapshot = interference.snapshot()

    async def sample(self, phase: str) -> Sample:
        run, pid = self.run, self.fleet.gateway_pid
        rss = await asyncio.to_thread(proc_stats.rss_bytes, pid)
        fds = await asyncio.to_thread(proc_stats.open_fds, pid)
        keys = await scan_keys(self.redis)
        now = await asyncio.to_thread(interference.snapshot)
        noise = interference.between(self._snapshot, now)
        self._snapshot = now
        window = list(run.tally.latency_s[self._latency_index :])
        self._latency_index = len(run.tally.latency_s)
        p50, p99 = percentile(window, 0.5), percentile(window, 0.99)
        sample = Sample(
            t_s=0.0 if phase == "before" else round(time.monotonic() - run.load_start, 2),
            phase=phase,
            rss_mb=round(rss / 2**20, 2),
            fds=fds,
            requests_done=run.tally.completed,
            window_requests=len(window),
            p50_ms=None if p50 is None else round(p50 * 1000, 2),
            p99_ms=None if p99 is None else round(p99 * 1000, 2),
            client_in_flight=run.stats.in_flight,
            long_streams_open=run.tally.long_open,
            redis_keys=keys.total,
            redis_keys_without_ttl=keys.without_ttl,
            redis_exempt_keys=keys.exempt_without_ttl,
            redis_used_mb=round(keys.used_memory / 2**20, 2),
            gateway_redis_connections=keys.gateway_connections,
            other_cpu_pct=round(noise.other_cpu_pct, 1),
        )
        if run.options.allocator_stats and run.options.trace_frames is None:
            await self._allocators(sample)
        run.samples.append(sample)
        run.final_keys = keys
        if keys.offenders:
            say_timed(f"keys without a TTL: {', '.join(keys.offenders)}")
        return sample

    async def _allocators(self, sample: Sample) -> None:
        """Where the gateway's memory sits (`allocations.ask`); left out if it does not answer in time."""
        try:
            facts = await allocations.ask(self.fleet.gateway_pid, allocations.directory_of(self.fleet.workdir), 10.0)
        except RuntimeError as exc:
            say_timed(f"allocator stats: {exc}")
            return

        def mb(name: str) -> float | None:
            value = facts.get(name)
            return None if value is None else round(value / 2**20, 2)

        sample.malloc_in_use_mb = mb("malloc_in_use_bytes")
        sample.malloc_free_kept_mb = mb("malloc_free_kept_bytes")
        sample.malloc_mmapped_mb = mb("malloc_mmapped_bytes")
        sample.python_blocks = facts.get("python_blocks")
        arenas = facts.get("pymalloc_arenas")
        sample.pymalloc_arenas_mb = None if arenas is None else float(arenas)  # arenas are 1 MiB each
        sample.pymalloc_allocated_mb = mb("pymalloc_allocated_bytes")

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
            say_timed(
                f"t={s.t_s:7.0f}s {s.phase:7} RSS {s.rss_mb:7.1f} MB  FDs {s.fds:4}  p50 {s.p50_ms} ms  "
                f"p99 {s.p99_ms} ms  done {s.requests_done:,}  "
                f"in flight {s.client_in_flight} (long {s.long_streams_open})  "
                f"Redis keys {s.redis_keys} (no TTL {s.redis_keys_without_ttl})  other CPU {s.other_cpu_pct:.0f}%"
                + ("" if s.malloc_in_use_mb is None else
                   f"  malloc in use {s.malloc_in_use_mb} MB, kept {s.malloc_free_kept_mb} MB, "
                   f"Python blocks {s.python_blocks:,}, pymalloc arenas {s.pymalloc_arenas_mb} MB "
                   f"holding {s.pymalloc_allocated_mb} MB")
            )
