"""Measuring one target of the peers run: a chat completion checked first, then wrk at each
concurrency after a warm-up, with the noise beside each point."""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from benchmarks.harness import interference, nginx
from benchmarks.harness.cli import say
from benchmarks.harness.quiet import Quiet, QuietBudget
from benchmarks.load import wrk
from benchmarks.load.workloads import new_nonce

NOISY_PCT = 25.0


def write_lua(workdir: Path, name: str, headers: dict[str, str]) -> Path:
    """A wrk script: chat.lua with these request headers set (replacing its Authorization)."""
    lines = [f"dofile({json.dumps(str(wrk.SCRIPT))})"]
    lines += [f"wrk.headers[{json.dumps(k)}] = {json.dumps(v)}" for k, v in headers.items()]
    path = workdir / f"chat-{name}.lua"
    path.write_text("\n".join(lines) + "\n")
    return path


@dataclass(slots=True)
class Run:
    concurrency: int
    requests: int
    requests_per_s: float
    p50_ms: float
    p90_ms: float
    p99_ms: float
    max_ms: float
    errors: dict[str, int]
    error_count: int
    other_cpu_pct: float
    steal_pct: float


@dataclass(slots=True)
class Target:
    key: str
    name: str
    version: str = ""
    url: str = ""
    status: str = "ok"
    """`ok`, or why it was not measured (install or start failure)."""
    runs: list[Run] = field(default_factory=list)
    peak_rss_mb: float | None = None
    quiet: Quiet | None = None
    notes: list[str] = field(default_factory=list)

    def run_at(self, concurrency: int) -> Run | None:
        return next((run for run in self.runs if run.concurrency == concurrency), None)

    @property
    def noisy(self) -> bool:
        loud = any(run.other_cpu_pct + run.steal_pct > NOISY_PCT for run in self.runs)
        return loud or (self.quiet is not None and not self.quiet.quiet)


async def measure(
    target: Target, script: Path, concurrency: list[int], duration_s: int, warmup_s: int, budget: QuietBudget
) -> None:
    target.quiet = await budget.wait()
    if warmup_s:
        warm = await wrk.run(target.url, max(concurrency), warmup_s, script=script, script_args=[new_nonce()])
        if warm.error_count:
            say(f"  {target.name} warm-up: errors {warm.errors}")
    for c in concurrency:
        before = await asyncio.to_thread(interference.snapshot)
        result = await wrk.run(target.url, c, duration_s, script=script, script_args=[new_nonce()])
        noise = interference.between(before, await asyncio.to_thread(interference.snapshot))
        run = Run(
            concurrency=c,
            requests=result.requests,
            requests_per_s=round(result.requests_per_s, 1),
            p50_ms=round(result.p50_ms, 3),
            p90_ms=round(result.p90_ms, 3),
            p99_ms=round(result.p99_ms, 3),
            max_ms=round(result.max_ms, 3),
            errors=result.errors,
            error_count=result.error_count,
            other_cpu_pct=round(noise.other_cpu_pct, 1),
            steal_pct=round(noise.steal_pct, 1),
        )
        target.runs.append(run)
        errors = f", errors {result.errors}" if result.error_count else ""
        say(
            f"  {target.name} c={c}: {run.requests_per_s:,.0f} req/s, p50 {run.p50_ms:.3f} ms, "
            f"p90 {run.p90_ms:.3f} ms, p99 {run.p99_ms:.3f} ms{errors} (other CPU {run.other_cpu_pct:.0f}%)"
        )


async def check_chat(url: str, headers: dict[str, str]) -> None:
    """One chat completion must succeed (with a choice) before a target is measured."""
    async with httpx.AsyncClient(trust_env=False, timeout=30.0) as client:
        response = await client.post(url, json=nginx.CHAT_REQUEST, headers=headers)
    if response.status_code != 200:
        raise RuntimeError(f"POST {url} answered {response.status_code}: {response.text[:500]}")
    body = response.json()
    if not (isinstance(body, dict) and body.get("choices")):
        raise RuntimeError(f"POST {url} answered without choices: {response.text[:500]}")


