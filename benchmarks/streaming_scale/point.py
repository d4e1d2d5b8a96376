"""One point of the streaming-at-scale suite: N streams held open against one target for a window, by
client processes (client.py), with the CPU of the gateway, the pacer and the clients read from /proc
at the window's edges and the gateway's resident memory sampled through it.

The streams ramp up over one stream's length (each client loop starts at its own offset, so streams
begin and end spread out, about N / stream length new streams a second), then the window opens: the
TTFT and gaps counted are those of streams started in it, chunks/s and CPU those of its wall time. The
streams still open when it closes run to their end (their chunks after it are not counted).
"""

from __future__ import annotations

import asyncio
import json
import math
import statistics
import sys
import time
from dataclasses import dataclass, field
from typing import Any

from benchmarks.harness import cpu_share, proc_stats
from benchmarks.streaming_scale.client import BUCKET_MS, Figures

BUNCHED_MS = 5.0
"""A gap shorter than this between two content chunks means they were sent together (the streaming
suite's definition: benchmarks/streaming/client.py)."""
STREAMS_PER_CLIENT_PROCESS = 250


@dataclass(frozen=True, slots=True)
class Load:
    """What a point asks of a target: where, which surface, how many streams, for how long."""

    host: str
    port: int
    path: str
    body: dict[str, Any]
    headers: dict[str, str]
    end_marker: str
    streams: int
    chunks: int
    pace_s: float
    window_s: float
    content_marker: str = "xq"
    """What marks a content chunk in the stream's bytes (the pacer's text; another upstream's)."""


@dataclass(slots=True)
class Point:
    """The figures of one target at one number of streams."""

    streams: int
    completed: int = 0
    errors: int = 0
    first_errors: list[str] = field(default_factory=list)
    ttft_p50_ms: float = 0.0
    ttft_p99_ms: float = 0.0
    gap_p50_ms: float = 0.0
    gap_p99_ms: float = 0.0
    gap_max_ms: float = 0.0
    bunched_pct: float = 0.0
    short_streams: int = 0
    chunks_per_s: float = 0.0
    gateway_cpu_pct: float = 0.0
    gateway_ms_per_1k_chunks: float | None = None
    gateway_kernel_pct: float | None = None
    """Of the gateway's CPU, the share spent in the kernel (system time: its socket reads and writes)."""
    upstream_cpu_pct: float = 0.0
    upstream_ms_per_1k_chunks: float | None = None
    client_cpu_pct: float = 0.0
    machine_busy_pct: float = 0.0
    rss_idle_mb: float | None = None
    rss_open_mb: float | None = None
    rss_kb_per_stream: float | None = None
    ttft_p50_over_direct_ms: float | None = None
    ttft_p99_over_direct_ms: float | None = None
    gap_p99_over_pace_ms: float | None = None


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))] if ordered else 0.0


def hist_percentile(hist: dict[int, int], q: float) -> float:
    total = sum(hist.values())
    if not total:
        return 0.0
    rank, seen = q * (total - 1), 0
    for bucket in sorted(hist):
        seen += hist[bucket]
        if seen > rank:
            return round(bucket * BUCKET_MS, 1)
    return round(max(hist) * BUCKET_MS, 1)


def _specs(load: Load, window_start: float, ramp_s: float) -> list[dict[str, Any]]:
    processes = max(1, math.ceil(load.streams / STREAMS_PER_CLIENT_PROCESS))
    common = {
        "host": load.host, "port": load.port, "path": load.path, "body": load.body, "headers": load.headers,
        "end_marker": load.end_marker, "content_marker": load.content_marker, "chunks": load.chunks,
        "ramp_s": ramp_s, "window_start": window_start,
        "window_end": window_start + load.window_s, "stream_timeout_s": 60.0 + load.chunks * load.pace_s * 4,
    }  # fmt: skip
    share = [load.streams // processes + (i < load.streams % processes) for i in range(processes)]
    return [{**common, "loops": n, "phase": i / processes} for i, n in enumerate(share)]


async def _client(spec: dict[str, Any]) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable, "-m", "benchmarks.streaming_scale.client", json.dumps(spec),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, stdin=asyncio.subprocess.DEVNULL,
    )  # fmt: skip


def _user_system_ticks(root: int) -> tuple[int, int]:
    """utime and stime of `root`'s process tree, in ticks (blocking)."""
    user = system = 0
    for pid in proc_stats.process_tree(root):
        fields = proc_stats.stat_fields(pid)
        if fields is not None:
            user, system = user + int(fields[11]), system + int(fields[12])
    return user, system


def _kernel_pct(before: tuple[int, int], after: tuple[int, int]) -> float | None:
    user, system = after[0] - before[0], after[1] - before[1]
    return round(100 * system / (user + system), 1) if user + system > 0 else None


async def _sample_rss(pid: int, until: float, every_s: float = 0.5) -> list[int]:
    samples = []
    while time.perf_counter() < until:
        samples.append(await asyncio.to_thread(proc_stats.rss_bytes, pid))
        await asyncio.sleep(every_s)
    return samples


async def run_point(load: Load, gateway_pid: int | None, upstream_pid: int) -> Point:
    """Run one point; `gateway_pid` None for direct runs."""
    ramp_s = load.chunks * load.pace_s
    rss_idle = await asyncio.to_thread(proc_stats.rss_bytes, gateway_pid) if gateway_pid else None
    window_start = time.perf_counter() + 1.0 + ramp_s  # the clients' start-up, then one stream's length
    children = [await _client(spec) for spec in _specs(load, window_start, ramp_s)]
    roles: dict[str, int | list[int]] = {"upstream": upstream_pid, "clients": [c.pid for c in children]}
    if gateway_pid:
        roles["gateway"] = gateway_pid
    await asyncio.sleep(window_start - time.perf_counter())
    before = await asyncio.to_thread(cpu_share.read, roles)
    split_before = await asyncio.to_thread(_user_system_ticks, gateway_pid) if gateway_pid else (0, 0)
    rss = await _sample_rss(gateway_pid, window_start + load.window_s) if gateway_pid else []
    await asyncio.sleep(max(0.0, window_start + load.window_s - time.perf_counter()))
    after = await asyncio.to_thread(cpu_share.read, roles)
    split_after = await asyncio.to_thread(_user_system_ticks, gateway_pid) if gateway_pid else (0, 0)
    outputs = await asyncio.gather(*(c.communicate() for c in children))
    figures = []
    for child, (out, err) in zip(children, outputs, strict=True):
        if child.returncode != 0:
            raise RuntimeError(f"a client process failed ({child.returncode}): {err.decode()[-1000:]}")
        figures.append(Figures(**json.loads(out)))
    point = _figures(load, figures, cpu_share.between(before, after), after.at - before.at)
    point.machine_busy_pct = round(100 * cpu_share.machine_busy(before, after), 1)
    point.gateway_kernel_pct = _kernel_pct(split_before, split_after)
    if rss_idle is not None and rss:
        open_rss = statistics.median(rss)
        point.rss_idle_mb, point.rss_open_mb = round(rss_idle / 2**20, 1), round(open_rss / 2**20, 1)
        point.rss_kb_per_stream = round((open_rss - rss_idle) / 1024 / load.streams, 1)
    return point


def _figures(load: Load, figures: list[Figures], shares: dict[str, float], wall_s: float) -> Point:
    ttft = [t for f in figures for t in f.ttft_ms]
    gaps: dict[int, int] = {}
    for f in figures:
        for bucket, n in f.gaps.items():
            gaps[int(bucket)] = gaps.get(int(bucket), 0) + n
    chunks = sum(f.chunks_in_window for f in figures)
    gap_total = sum(gaps.values())
    bunched = sum(n for bucket, n in gaps.items() if bucket * BUCKET_MS < BUNCHED_MS)

    def per_1k(pct: float) -> float | None:
        return round(pct / 100 * wall_s / chunks * 1e6, 1) if chunks else None

    return Point(
        streams=load.streams,
        completed=sum(f.streams for f in figures),
        errors=sum(f.errors for f in figures),
        first_errors=[e for f in figures for e in f.first_errors][:3],
        ttft_p50_ms=round(_pct(ttft, 0.5), 2),
        ttft_p99_ms=round(_pct(ttft, 0.99), 2),
        gap_p50_ms=hist_percentile(gaps, 0.5),
        gap_p99_ms=hist_percentile(gaps, 0.99),
        gap_max_ms=round(max(gaps) * BUCKET_MS, 1) if gaps else 0.0,
        bunched_pct=round(100 * bunched / gap_total, 2) if gap_total else 0.0,
        short_streams=sum(f.short_streams for f in figures),
        chunks_per_s=round(chunks / wall_s),
        gateway_cpu_pct=shares.get("gateway", 0.0),
        gateway_ms_per_1k_chunks=per_1k(shares["gateway"]) if "gateway" in shares else None,
        upstream_cpu_pct=shares["upstream"],
        upstream_ms_per_1k_chunks=per_1k(shares["upstream"]),
        client_cpu_pct=shares["clients"],
    )
