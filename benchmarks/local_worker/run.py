"""One local-worker run: for each worker in turn (old, then new; never both running), start it, start
the gateway in front of it (`llm-gateway serve` without local workers, a one-worker catalog, cache off),
stream through the gateway at each concurrency (client.py), then stop both. A worker that cannot be
started is recorded as such and the run goes on; everything started is stopped on the way out."""

from __future__ import annotations

import asyncio
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from benchmarks.harness import configs, gateway, procs
from benchmarks.harness.cli import say
from benchmarks.harness.quiet import QuietBudget
from benchmarks.local_worker import workers
from benchmarks.local_worker.client import Level, run_level
from gateway.workers.local_commands import LocalWorkerError
from testkit.loopback import LOOPBACK, free_port


@dataclass(frozen=True, slots=True)
class Options:
    requests: int
    """Streams per concurrency level (at concurrency N, N clients share them)."""
    max_tokens: int
    concurrency: list[int]
    workers: list[str]
    threads: int | None
    """Compute threads of both workers; None: the catalog's (the cores)."""
    quiet_wait_s: float
    """The run's budget for waiting, before each level, until nothing else heavy runs (BUSY_PATTERN)."""
    quick: bool


BUSY_PATTERN = r"pytest|benchmarks\.|cc1plus"
"""What must not run beside a level (`pgrep -f`): test suites, other benchmarks, a C++ build. llama.cpp's
threads spin at their barriers, so a busy neighbour on 2 cores slows a worker far more than its own share
(one try measured llama-server's four streams 20 times slower beside a test suite's llama-servers); each
level records how much CPU the rest of the machine used while it ran."""


@dataclass(slots=True)
class WorkerResult:
    key: str
    name: str
    kind: str = ""
    version: str = ""
    model_file: str = ""
    command: list[str] = field(default_factory=list)
    status: str = "ok"
    startup_s: float | None = None
    """From the worker's start to its model loaded (its ready path answering 200)."""
    levels: list[Level] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


async def _measure_levels(result: WorkerResult, url: str, options: Options, budget: QuietBudget) -> None:
    for c in options.concurrency:
        quiet = await budget.wait()
        level, warmup = await run_level(url, c, max(options.requests, c), options.max_tokens)
        if warmup.outcome != "finished":
            result.notes.append(f"c={c}: the warm-up stream {warmup.outcome}: {warmup.error or 'no finish_reason'}")
        level.quiet = quiet.quiet
        if not quiet.quiet:
            result.notes.append(f"c={c} measured beside {', '.join(quiet.busy) or 'other work'}")
        result.levels.append(level)
        say(
            f"  {result.key} c={c}: {level.tokens_per_s:.1f} tokens/s, TTFT p50 {level.ttft_p50_ms} ms "
            f"p90 {level.ttft_p90_ms} ms, {level.finished}/{level.requests} finished, {level.cut} cut, "
            f"{level.errors} errors, {level.wall_s:.1f} s (others' CPU {level.other_cpu_pct:.0f}%)"
        )


async def _behind_gateway(
    result: WorkerResult, launch: workers.Launch, workdir: Path, options: Options, budget: QuietBudget
) -> None:
    catalog = workdir / f"catalog-{launch.key}.yaml"
    await asyncio.to_thread(catalog.write_text, workers.gateway_catalog(launch))
    port = free_port()
    say(f"  the gateway on port {port}, in front of it as kind {launch.kind}")
    child = await gateway.start_gateway(
        workdir, catalog, port, label=launch.key, extra_env=configs.CONFIGS["bare"].environment(1),
        ready_path="/readyz",
    )  # fmt: skip
    try:
        await _measure_levels(result, f"http://{LOOPBACK}:{port}/v1/chat/completions", options, budget)
    finally:
        await procs.stop_or_say(child, say)


async def measure_worker(key: str, options: Options, workdir: Path, budget: QuietBudget) -> WorkerResult:
    """Start worker `key`, measure it through a gateway at every concurrency, stop both."""
    result = WorkerResult(key, key)
    try:
        worker = workers.placed(workers.chat_worker(), free_port(), options.threads)
        launch = await asyncio.to_thread(workers.launch, key, worker)
    except LocalWorkerError as exc:
        result.status = f"not started: {exc}"
        return result
    result.name, result.kind, result.version, result.command = launch.name, launch.kind, launch.version, launch.argv
    result.model_file = launch.model_file
    say(f"starting {launch.name} on port {launch.port}: {launch.version}")
    started = time.perf_counter()
    try:
        child = await workers.start(launch, workdir)
    except RuntimeError as exc:
        result.status = f"not started: {exc}"
        return result
    result.startup_s = round(time.perf_counter() - started, 2)
    try:
        await _behind_gateway(result, launch, workdir, options, budget)
    except RuntimeError as exc:
        result.status = f"failed: {exc}"
    finally:
        if child.exited:
            result.notes.append(f"the worker exited (status {child.proc.returncode}): {child.log_tail(5)}")
        await procs.stop_or_say(child, say)
    return result


async def run_benchmark(options: Options) -> list[WorkerResult]:
    budget = QuietBudget(options.quiet_wait_s, say, max_load=None, pattern=BUSY_PATTERN)
    with tempfile.TemporaryDirectory(prefix="llm-gateway-local-worker-") as tmp:
        return [await measure_worker(key, options, Path(tmp), budget) for key in options.workers]
