"""The routing suite's clients: streamed chat requests at a fixed concurrency (closed loop), measured
from the client side.

Each request is a streamed `POST /v1/chat/completions` with `stream_options.include_usage`, sent
with aiohttp (cheaper per chunk than the openai client, which matters on 2 cores). Time to first
token is the time from sending to the first chunk whose delta carries content; output tokens are
the usage chunk's `completion_tokens` (and its `prompt_tokens_details.cached_tokens`, the prompt
tokens the worker found cached). The worker comes from the gateway's `x-gateway-worker`
header, and `OutstandingTracker` follows how many requests each worker holds over time (from the
response headers, sent by the simulator as soon as the request enters its queue, to the stream's
end): its time average and peak are the per-worker queue figures.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

import aiohttp
import msgspec

from benchmarks.load import drivers, sse
from benchmarks.routing.workload import ChatRequest

_encode = msgspec.json.Encoder().encode


@dataclass
class Outcome:
    """One request as the client saw it."""

    index: int
    """The request's position in the workload."""
    group: int
    worker: str = "?"
    ttft_s: float | None = None
    completion_tokens: int = 0
    prompt_tokens: int = 0
    cached_tokens: int | None = None
    """`usage.prompt_tokens_details.cached_tokens`: prompt tokens the worker found in its KV cache."""
    error: str | None = None
    sent_at: float = 0.0
    """`time.perf_counter()` when the request was sent."""


@dataclass
class _Worker:
    current: int = 0
    peak: int = 0
    area: float = 0.0
    """Integral of `current` over time (request-seconds)."""
    since: float = 0.0


@dataclass
class OutstandingTracker:
    """Requests held by each worker over time, counted exactly at every start and end."""

    started: float = field(default_factory=time.perf_counter)
    _workers: dict[str, _Worker] = field(default_factory=dict)

    def _step(self, name: str, delta: int) -> None:
        now = time.perf_counter()
        worker = self._workers.setdefault(name, _Worker(since=self.started))
        worker.area += worker.current * (now - worker.since)
        worker.since = now
        worker.current += delta
        worker.peak = max(worker.peak, worker.current)

    def enter(self, name: str) -> None:
        self._step(name, +1)

    def leave(self, name: str) -> None:
        self._step(name, -1)

    def summary(self, names: list[str], ended: float) -> dict[str, dict[str, float]]:
        """Per worker: `mean` (time-averaged outstanding requests over the run) and `peak`."""
        span = max(ended - self.started, 1e-9)
        result = {}
        for name in names:
            worker = self._workers.get(name, _Worker(since=self.started))
            area = worker.area + worker.current * (ended - worker.since)
            result[name] = {"mean": area / span, "peak": float(worker.peak)}
        return result


async def _one(session: aiohttp.ClientSession, url: str, index: int, request: ChatRequest, max_tokens: int,
               tracker: OutstandingTracker) -> Outcome:
    outcome = Outcome(index=index, group=request.group)
    body = _encode({"model": "bench", "messages": request.messages, "max_tokens": max_tokens, "stream": True,
                    "stream_options": {"include_usage": True}})
    sent = outcome.sent_at = time.perf_counter()
    try:
        async with session.post(url, data=body, headers={"Content-Type": "application/json"}) as response:
            outcome.worker = response.headers.get("x-gateway-worker", "?")
            if response.status != 200:
                outcome.error = f"HTTP {response.status}: {(await response.text())[:200]}"
                return outcome
            tracker.enter(outcome.worker)
            try:
                seen = await sse.read_stream(response.content)
            finally:
                tracker.leave(outcome.worker)
        _record(outcome, seen, sent)
    except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
        outcome.error = f"{type(exc).__name__}: {exc}"
    return outcome


def _record(outcome: Outcome, seen: sse.StreamSeen, sent: float) -> None:
    """What the stream said: its first token's time, its usage (tokens, cached prompt tokens), an error."""
    if seen.error is not None:
        outcome.error = f"stream error: {seen.error}"
    if seen.content_times:
        outcome.ttft_s = seen.content_times[0] - sent
    usage = seen.usage
    if usage:
        outcome.completion_tokens = int(usage.get("completion_tokens") or 0)
        outcome.prompt_tokens = int(usage.get("prompt_tokens") or 0)
        details = usage.get("prompt_tokens_details") or {}
        if "cached_tokens" in details:
            outcome.cached_tokens = int(details["cached_tokens"] or 0)


async def run_load(gateway_url: str | Sequence[str], requests: list[ChatRequest], concurrency: int, max_tokens: int,
                   tracker: OutstandingTracker, timeout_s: float) -> tuple[list[Outcome], float]:
    """Send every request, `concurrency` at a time (closed loop); the outcomes and the wall time. Several
    gateway URLs (replicas sharing the fleet): request i goes to the (i mod n)th."""
    bases = [gateway_url] if isinstance(gateway_url, str) else list(gateway_url)
    urls = [base + "/v1/chat/completions" for base in bases]
    connector = aiohttp.TCPConnector(limit=concurrency, force_close=False)
    timeout = aiohttp.ClientTimeout(total=60)
    outcomes: list[Outcome] = []

    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:

        async def one(job: tuple[int, ChatRequest]) -> None:
            outcomes.append(await _one(session, urls[job[0] % len(urls)], job[0], job[1], max_tokens, tracker))

        tracker.started = started = time.perf_counter()
        async with asyncio.timeout(timeout_s):
            await drivers.closed_loop(concurrency, enumerate(requests), one)
        wall = time.perf_counter() - started
    return outcomes, wall
