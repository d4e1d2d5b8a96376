"""The local-worker suite's client: streamed chat completions through the gateway at a fixed
concurrency (aiohttp), each timed from the request to its first content chunk, and how each ended: with
a `finish_reason` (finished), without one (cut: what llama-cpp-python's server did to a request a newer
one interrupted), or with an error (an HTTP error, an error event, a broken connection)."""

from __future__ import annotations

import asyncio
import os
import statistics
import time
from dataclasses import dataclass
from typing import Any

import aiohttp

from benchmarks.harness import interference
from benchmarks.load import drivers, sse
from benchmarks.local_worker.workload import body, prompt_for

TIMEOUT_S = 300.0
"""A whole stream, queueing included: far above what eight 64-token replies take on one core."""


@dataclass(slots=True)
class Stream:
    """What the client saw of one stream."""

    ttft_s: float | None
    """Request to first content chunk; None when no content came."""
    total_s: float
    completion_tokens: int
    """From the usage chunk (0 without one)."""
    finish_reason: str | None
    error: str = ""

    @property
    def outcome(self) -> str:
        return "error" if self.error else "finished" if self.finish_reason else "cut"


@dataclass(slots=True)
class Level:
    """One worker's figures at one concurrency."""

    concurrency: int
    requests: int
    finished: int
    cut: int
    """Ended (with `[DONE]` or the connection) without a `finish_reason` and without an error."""
    errors: int
    wall_s: float
    """From the first request of the level to the end of its last stream (the warm-up not counted)."""
    completion_tokens: int
    tokens_per_s: float
    """Completion tokens of every stream over the wall time: what the worker delivered at this load."""
    tokens_per_request: float
    ttft_p50_ms: float | None
    ttft_p90_ms: float | None
    load_average_before: list[float]
    other_cpu_pct: float
    """CPU the rest of the machine used during the level (other processes and steal), % of one core."""
    first_problem: str = ""
    quiet: bool | None = None
    """Nothing else heavy ran when the level began (run.BUSY_PATTERN); None: not checked."""


def percentile(values: list[float], q: float) -> float | None:
    """The nearest-rank `q` quantile of `values`, or None when there are none."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))]


def _rounded(value: float | None, digits: int) -> float | None:
    return None if value is None else round(value, digits)


def summarize(
    concurrency: int, streams: list[Stream], wall_s: float, load_before: list[float], other_cpu_pct: float
) -> Level:
    """A level's figures from its streams (pure)."""
    tokens = sum(s.completion_tokens for s in streams)
    ttfts = [s.ttft_s * 1000 for s in streams if s.ttft_s is not None]
    problems = [s.error or f"no finish_reason after {s.completion_tokens} tokens" for s in streams
                if s.outcome != "finished"]  # fmt: skip
    return Level(
        concurrency=concurrency,
        requests=len(streams),
        finished=sum(s.outcome == "finished" for s in streams),
        cut=sum(s.outcome == "cut" for s in streams),
        errors=sum(s.outcome == "error" for s in streams),
        wall_s=round(wall_s, 2),
        completion_tokens=tokens,
        tokens_per_s=round(tokens / wall_s, 1) if wall_s > 0 else 0.0,
        tokens_per_request=round(statistics.fmean(s.completion_tokens for s in streams), 1) if streams else 0.0,
        ttft_p50_ms=_rounded(percentile(ttfts, 0.5), 1),
        ttft_p90_ms=_rounded(percentile(ttfts, 0.9), 1),
        load_average_before=[round(x, 2) for x in load_before],
        other_cpu_pct=round(other_cpu_pct, 1),
        first_problem=problems[0][:300] if problems else "",
    )


@dataclass(slots=True)
class _Seen:
    """What the chunks of one stream said so far."""

    first_content: float | None = None
    finish_reason: str | None = None
    completion_tokens: int = 0

    def read(self, chunk: dict[str, Any], now: float) -> None:
        for choice in chunk.get("choices") or []:
            delta = choice.get("delta") or {}
            if self.first_content is None and delta.get("content"):
                self.first_content = now
            if choice.get("finish_reason"):
                self.finish_reason = choice["finish_reason"]
        usage = chunk.get("usage")
        if isinstance(usage, dict):
            self.completion_tokens = int(usage.get("completion_tokens") or 0)


async def stream_once(session: aiohttp.ClientSession, url: str, prompt: str, max_tokens: int) -> Stream:
    """One streamed chat completion of `prompt`, read to its end; never raises for what the stream did."""
    seen = _Seen()
    error = ""
    started = time.perf_counter()
    try:
        async with session.post(url, json=body(prompt, max_tokens)) as response:
            if response.status != 200:
                error = f"HTTP {response.status}: {(await response.text())[:200]}"
            else:
                async for payload in sse.payloads(response.content):
                    if payload == sse.DONE:
                        break
                    chunk = sse.decode(payload)
                    if isinstance(chunk, dict) and "error" in chunk:
                        error = f"error event: {chunk['error']}"[:300]
                        break
                    if isinstance(chunk, dict):
                        seen.read(chunk, time.perf_counter())
    except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
        error = f"{type(exc).__name__}: {exc}"[:300]
    ttft = None if seen.first_content is None else seen.first_content - started
    return Stream(ttft, time.perf_counter() - started, seen.completion_tokens, seen.finish_reason, error)


async def run_level(url: str, concurrency: int, requests: int, max_tokens: int) -> tuple[Level, Stream]:
    """One warm-up stream, then `concurrency` clients sharing `requests` streams (closed loop, the prompt
    set in order); the level's figures and the warm-up's stream."""
    timeout = aiohttp.ClientTimeout(total=TIMEOUT_S)
    streams: list[Stream] = []
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0), timeout=timeout) as session:
        warmup = await stream_once(session, url, prompt_for(0), max_tokens)
        load_before = list(os.getloadavg())
        before = await asyncio.to_thread(interference.snapshot)

        async def one(index: int) -> None:
            streams.append(await stream_once(session, url, prompt_for(index), max_tokens))

        started = time.perf_counter()
        await drivers.closed_loop(concurrency, range(requests), one)
        wall_s = time.perf_counter() - started
        noise = interference.between(before, await asyncio.to_thread(interference.snapshot))
    other_cpu = noise.other_cpu_pct + noise.steal_pct
    return summarize(concurrency, streams, wall_s, load_before, other_cpu), warmup
