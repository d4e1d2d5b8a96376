"""One gateway target of an overhead run: the gateway started in a configuration (with its Redis) in
front of the run's nginx, checked to be in it, measured with wrk, its Redis commands, cache lookups,
memory and log lines read, the configuration verified against them, profiled when asked, then stopped."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from benchmarks.harness import config_checks, configs, gateway, nginx, proc_stats, procs
from benchmarks.harness.cli import say
from benchmarks.overhead.points import PointOptions, measure
from benchmarks.overhead.profile import profile_target, should_profile
from benchmarks.overhead.results import TargetResult
from benchmarks.overhead.tables import one_process_key
from testkit.loopback import LOOPBACK, free_port
from testkit.redis_server import calls_between, command_calls


@dataclass(slots=True)
class Bench:
    """What every target of a run shares: its directory, the catalog pointing at nginx, nginx itself,
    the direct target (nginx alone) and how points and profiles are taken."""

    workdir: Path
    catalog: Path
    nginx: procs.Child
    direct: TargetResult
    points: PointOptions
    started: datetime
    profile: list[str] = field(default_factory=list)
    profile_native: bool = True
    quick: bool = False


@dataclass(frozen=True, slots=True)
class Running:
    child: procs.Child
    setup: configs.Setup
    base_url: str
    roles: dict[str, int]


def new_target(server: str, config: str, workers: int, source: gateway.Source = gateway.WORKING_TREE) -> TargetResult:
    """A gateway target: its key (`serve`, `uvicorn`... for bare, the configuration, `<config>-w<N>`) and name."""
    label = "llm-gateway serve" if server == "serve" else server
    key = one_process_key(config, server) if workers == 1 else f"{config}-w{workers}"
    parts = [label] + ([] if config == "bare" and workers == 1 else [config])
    parts += [f"{workers} processes"] if workers > 1 else []
    parts += [] if source == gateway.WORKING_TREE else [source.label]
    return TargetResult(key=key, name=f"gateway ({', '.join(parts)})", url="", config=config, server=server,
                        workers=workers)  # fmt: skip


def _log_lines(child: procs.Child) -> int:
    try:
        return len([line for line in child.log_path.read_text(errors="replace").splitlines() if line.strip()])
    except OSError:
        return 0


@contextlib.asynccontextmanager
async def running_gateway(
    bench: Bench, server: str, config: configs.GatewayConfig, workers: int, key: str, source: gateway.Source
) -> AsyncIterator[Running]:
    """The gateway in a configuration (its Redis too), checked, then stopped; a start or check failure
    raises with the log's tail."""
    async with configs.prepared(config, bench.workdir, say) as setup:
        port = free_port()
        processes = f"{workers} process{'es' if workers > 1 else ''}"
        say(f"starting the gateway ({source.label}) under {server} ({config.name}, {processes}) on port {port}")
        child = await gateway.start_gateway(
            bench.workdir, bench.catalog, port, server=server, label=key, keys_file=setup.keys_file,
            redis_url=setup.redis_url, extra_env={**config.environment(workers), **setup.environment},
            source=source,
        )  # fmt: skip
        roles = {"gateway": child.pid, "upstream": bench.nginx.pid}
        if setup.redis is not None:
            roles["redis"] = setup.redis.pid
        base_url = f"http://{LOOPBACK}:{port}"
        try:
            await config_checks.check(base_url + nginx.CHAT_PATH, config)
            yield Running(child, setup, base_url, roles)
        except Exception as exc:
            if child.exited:  # the log is in the temporary directory, gone once the run ends
                raise RuntimeError(
                    f"{exc}\n{key} exited with status {child.proc.returncode}; its log's tail:\n{child.log_tail()}"
                ) from exc
            raise
        finally:
            await child.stop()


async def measure_gateway(
    bench: Bench,
    target: TargetResult,
    concurrency: list[int],
    source: gateway.Source = gateway.WORKING_TREE,
) -> None:
    """Start, check, measure and stop the target's gateway (raises when it cannot be measured)."""
    config = configs.CONFIGS[target.config]
    async with running_gateway(bench, target.server or "serve", config, target.workers, target.key, source) as run:
        target.url = run.base_url + nginx.CHAT_PATH
        lines_before = _log_lines(run.child)
        redis = run.setup.redis
        redis_before = None if redis is None else await asyncio.to_thread(command_calls, redis.port)
        cache_before = await config_checks.cache_counts(run.base_url)
        await measure(target, bench.points, concurrency, run.roles, config.script)
        cache_after = await config_checks.cache_counts(run.base_url)
        target.cache_lookups = config_checks.counts_between(cache_before, cache_after)
        if redis is not None and redis_before is not None:
            target.redis_commands = calls_between(redis_before, await asyncio.to_thread(command_calls, redis.port))
            say(
                f"  Redis: {target.redis_scripts_per_request or 0:.2f} scripts and "
                f"{target.redis_commands_per_request or 0:.1f} commands per request ({target.redis_commands})"
            )
        sink = run.setup.trace_sink
        if sink is not None:
            say(f"  trace sink: {sink.batches:,} OTLP exports, {sink.bytes_received / 2**20:.1f} MiB")
            if not sink.batches:
                target.problems.append("tracing on, but no span was exported")
        target.peak_rss_mb = await asyncio.to_thread(proc_stats.peak_rss_bytes, run.child.pid) / 2**20
        target.log_lines = _log_lines(run.child) - lines_before
        verify(target, config)
        if should_profile(bench.profile, bench.direct, target):
            await profile_target(
                target, run.child.pid, config, max(concurrency), duration_s=bench.points.duration_s,
                native=bench.profile_native, started=bench.started,
                out_dir=bench.workdir / "profiles" if bench.quick else None,
            )  # fmt: skip


def verify(target: TargetResult, config: configs.GatewayConfig) -> None:
    """What the runs say about the configuration: cache results, log lines."""
    problem = config_checks.verify_cache(config, target.cache_lookups, target.requests_sent)
    if problem:
        target.problems.append(problem)
    if config.cache:
        say(f"  cache lookups: {target.cache_lookups}")
    if config.log_requests:
        if target.log_lines < 0.9 * target.requests_sent:
            target.problems.append(f"{target.log_lines} log lines for {target.requests_sent} requests")
        say(f"  {target.log_lines:,} log lines for {target.requests_sent:,} requests")
    elif target.log_lines:
        target.problems.append(f"{target.log_lines} lines logged at LOG_LEVEL=warning")
    for problem in target.problems:
        say(f"  problem: {problem}")
