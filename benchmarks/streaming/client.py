"""The streaming suite's client: streamed chat completions at a fixed concurrency, each timed from the
request to its first content chunk and between its content chunks (aiohttp, benchmarks/load/sse.py)."""

from __future__ import annotations

import statistics
import time
from dataclasses import dataclass

import aiohttp

from benchmarks.load import drivers, sse

REPLY_TOKENS = 32
BUNCHED_S = 0.005
"""A gap shorter than this between two content chunks means they were sent together."""
PROMPT = [{"role": "user", "content": "Say ok"}]


@dataclass(slots=True)
class Stream:
    ttft_s: float
    total_s: float
    chunk_times: list[float]


@dataclass(slots=True)
class Level:
    """Figures of one target at one concurrency."""

    concurrency: int
    requests: int
    errors: int
    ttft_p50_ms: float
    ttft_p99_ms: float
    total_p50_ms: float
    chunks_mean: float
    gap_mean_ms: float
    gap_stdev_ms: float
    gap_max_ms: float
    bunched_pct: float
    first_error: str = ""
    ttft_p50_over_direct_ms: float | None = None
    ttft_p99_over_direct_ms: float | None = None
    gap_mean_vs_pace_ms: float | None = None


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))]


async def stream_once(session: aiohttp.ClientSession, url: str, model: str, headers: dict[str, str]) -> Stream:
    body = {"model": model, "messages": PROMPT, "stream": True, "max_tokens": REPLY_TOKENS}
    started = time.perf_counter()
    async with session.post(url, json=body, headers=headers) as response:
        if response.status != 200:
            raise RuntimeError(f"HTTP {response.status}: {(await response.text())[:300]}")
        seen = await sse.read_stream(response.content)
    if not seen.content_times:
        raise RuntimeError("no content chunk in the stream")
    return Stream(seen.content_times[0] - started, time.perf_counter() - started, seen.content_times)


def _level(concurrency: int, streams: list[Stream], errors: list[str]) -> Level:
    ttfts = [s.ttft_s * 1000 for s in streams]
    gaps = [(b - a) * 1000 for s in streams for a, b in zip(s.chunk_times, s.chunk_times[1:], strict=False)]
    return Level(
        concurrency=concurrency,
        requests=len(streams) + len(errors),
        errors=len(errors),
        ttft_p50_ms=round(_pct(ttfts, 0.5), 2),
        ttft_p99_ms=round(_pct(ttfts, 0.99), 2),
        total_p50_ms=round(_pct([s.total_s * 1000 for s in streams], 0.5), 1),
        chunks_mean=round(statistics.fmean(len(s.chunk_times) for s in streams), 1),
        gap_mean_ms=round(statistics.fmean(gaps), 2) if gaps else 0.0,
        gap_stdev_ms=round(statistics.pstdev(gaps), 2) if gaps else 0.0,
        gap_max_ms=round(max(gaps), 1) if gaps else 0.0,
        bunched_pct=round(100 * sum(g < BUNCHED_S * 1000 for g in gaps) / len(gaps), 1) if gaps else 0.0,
        first_error=errors[0][:300] if errors else "",
    )


async def run_level(url: str, model: str, headers: dict[str, str], concurrency: int, requests: int) -> Level:
    """One warm-up stream, then `concurrency` clients sharing about `requests` streams (each client the
    same number)."""
    timeout = aiohttp.ClientTimeout(total=60)
    streams: list[Stream] = []
    errors: list[str] = []
    per_client = max(1, requests // concurrency)
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0), timeout=timeout) as session:
        await stream_once(session, url, model, headers)  # warm-up: connections, first-request paths

        async def one(_: int) -> None:
            try:
                streams.append(await stream_once(session, url, model, headers))
            except (RuntimeError, aiohttp.ClientError, TimeoutError, ValueError) as exc:
                errors.append(f"{type(exc).__name__}: {exc}")

        await drivers.closed_loop(concurrency, range(per_client * concurrency), one)
    if not streams:
        raise RuntimeError(f"every stream failed: {errors[0] if errors else '?'}")
    return _level(concurrency, streams, errors)
