"""How `llm-gateway batch` runs its prompts: each sent as one chat completion, a fixed number at a time
over one connection pool, timed (latency, and time to first token when streamed), with a progress bar
on a terminal; and the results summed up as nearest-rank percentiles and tokens per second."""

from __future__ import annotations

import asyncio
import math
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, TextIO

import httpx

from gateway.cli.gateway_client import CHAT_COMPLETIONS, bearer, error_message, reply_content
from gateway.upstream.stream_folding import StreamGatherer


@dataclass(frozen=True, slots=True)
class BatchItem:
    index: int
    body: dict[str, Any]
    """The request body (without `stream`)."""
    label: str | None = None
    """The item's `id`, if it has one."""


@dataclass
class BatchResult:
    index: int
    ok: bool
    latency_s: float
    status: int = 0
    """The HTTP status; 0 when no answer came (the gateway unreachable, a timeout)."""
    ttft_s: float | None = None
    prompt_tokens: int = 0
    completion_tokens: int = 0
    request_id: str | None = None
    answer: str | None = None
    error: str | None = None
    label: str | None = None


async def run_batch(items: Sequence[BatchItem], *, url: str, key: str | None, concurrency: int,
                    request_timeout: float, stream: bool = False, progress: TextIO | None = None
                    ) -> tuple[list[BatchResult], float]:
    """Run `items` against the gateway, `concurrency` at a time; the results in item order and the
    wall-clock seconds it took."""
    bar = ProgressBar(len(items), progress or sys.stderr)
    pending = iter(items)
    results: list[BatchResult] = []
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    started = time.perf_counter()
    async with httpx.AsyncClient(base_url=url, headers=bearer(key), timeout=request_timeout,
                                 limits=limits) as client:

        async def worker() -> None:
            for item in pending:
                result = await _send(client, item, stream)
                results.append(result)
                bar.advance(result.ok)

        await asyncio.gather(*(worker() for _ in range(max(1, min(concurrency, len(items))))))
    bar.finish()
    return sorted(results, key=lambda r: r.index), time.perf_counter() - started


async def _send(client: httpx.AsyncClient, item: BatchItem, stream: bool) -> BatchResult:
    body = {**item.body, "stream": stream}
    if stream:
        body["stream_options"] = {"include_usage": True}
    started = time.perf_counter()
    result = BatchResult(item.index, ok=False, latency_s=0.0, label=item.label)
    try:
        if stream:
            await _send_streamed(client, body, result, started)
        else:
            await _send_whole(client, body, result)
    except httpx.HTTPError as exc:
        result.error = f"{type(exc).__name__}: {exc}"
    result.latency_s = time.perf_counter() - started
    return result


async def _send_whole(client: httpx.AsyncClient, body: dict[str, Any], result: BatchResult) -> None:
    response = await client.post(CHAT_COMPLETIONS, json=body)
    result.status, result.request_id = response.status_code, response.headers.get("x-request-id")
    if response.status_code != 200:
        result.error = f"{response.status_code} {error_message(response)}"
        return
    answer = response.json()
    result.answer = reply_content(answer)
    _count(result, answer.get("usage"))
    result.ok = True


async def _send_streamed(client: httpx.AsyncClient, body: dict[str, Any], result: BatchResult,
                         started: float) -> None:
    async with client.stream("POST", CHAT_COMPLETIONS, json=body) as response:
        result.status, result.request_id = response.status_code, response.headers.get("x-request-id")
        if response.status_code != 200:
            await response.aread()
            result.error = f"{response.status_code} {error_message(response)}"
        else:
            await _read_stream(response, result, started)


async def _read_stream(response: httpx.Response, result: BatchResult, started: float) -> None:
    """Gather the answer up to `[DONE]`, noting when its first text came; a stream that fails or stops
    short is an error."""
    gathered = StreamGatherer("chat/completions")
    parts: list[str] = []
    async for data in response.aiter_bytes():
        if text := gathered.feed(data):
            if result.ttft_s is None:
                result.ttft_s = time.perf_counter() - started
            parts.append(text)
        if gathered.completed:
            break
    if gathered.error is not None:
        result.error = str(gathered.error.get("message"))
    result.ok = gathered.completed and result.error is None
    _count(result, gathered.folder.usage)
    result.answer = "".join(parts)
    if not result.ok and result.error is None:
        result.error = "the stream ended without [DONE]"


def _count(result: BatchResult, usage: object) -> None:
    if isinstance(usage, dict):
        result.prompt_tokens = int(usage.get("prompt_tokens") or 0)
        result.completion_tokens = int(usage.get("completion_tokens") or 0)


class ProgressBar:
    """Prompts done out of all, and errors so far, redrawn in place; drawn only on a terminal, so a
    pipe or a log file gets the summary alone."""

    def __init__(self, total: int, stream: TextIO) -> None:
        self.total, self.done, self.errors = total, 0, 0
        self.stream = stream
        self.enabled = stream.isatty()

    def advance(self, ok: bool) -> None:
        self.done += 1
        self.errors += 0 if ok else 1
        if self.enabled:
            width = 30
            filled = width * self.done // self.total
            self.stream.write(f"\r[{'#' * filled}{'.' * (width - filled)}] {self.done}/{self.total}"
                              + (f"  {self.errors} error(s)" if self.errors else ""))
            self.stream.flush()

    def finish(self) -> None:
        if self.enabled:
            self.stream.write("\n")
            self.stream.flush()


def percentile(values: Sequence[float], p: float) -> float:
    """Nearest-rank percentile of `values` (not empty)."""
    ordered = sorted(values)
    rank = max(1, math.ceil(p / 100 * len(ordered)))
    return ordered[rank - 1]


@dataclass
class BatchSummary:
    count: int
    errors: int
    wall_s: float
    latencies: list[float] = field(default_factory=list)
    ttfts: list[float] = field(default_factory=list)
    completion_tokens: int = 0

    def lines(self) -> list[str]:
        out = [f"requests: {self.count}, ok {self.count - self.errors}, errors {self.errors}, "
               f"in {self.wall_s:.2f} s ({self.count / self.wall_s if self.wall_s else 0:.2f} requests/s)"]
        if self.latencies:
            out.append("latency: " + _percentiles(self.latencies))
        if self.ttfts:
            out.append("time to first token: " + _percentiles(self.ttfts))
        rate = self.completion_tokens / self.wall_s if self.wall_s else 0.0
        out.append(f"tokens: {self.completion_tokens} completion tokens, {rate:.1f} tokens/s")
        return out


def _percentiles(seconds: Sequence[float]) -> str:
    return ", ".join(f"p{p} {percentile(seconds, p) * 1000:.0f} ms" for p in (50, 90, 99))


def summarize(results: Sequence[BatchResult], wall_s: float) -> BatchSummary:
    """The summary of the successful results (a failure's latency says nothing of the model's)."""
    ok = [r for r in results if r.ok]
    return BatchSummary(count=len(results), errors=len(results) - len(ok), wall_s=wall_s,
                        latencies=[r.latency_s for r in ok], ttfts=[r.ttft_s for r in ok if r.ttft_s is not None],
                        completion_tokens=sum(r.completion_tokens for r in ok))
