"""One overhead run: nginx up throughout; direct, then each gateway target in turn (configurations,
ASGI servers, N processes), then the open-loop runs; a profile for a target that missed its goals.
Everything started is stopped on the way out, including on Ctrl-C, SIGTERM and errors."""

from __future__ import annotations

import asyncio
import contextlib
import tempfile
from collections.abc import AsyncIterator
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path

import httpx

from benchmarks import (
    flamegraph,
    gateway_configs,
    gateway_server,
    nginx_upstream,
    procs,
    profiling,
    redis_server,
    report,
    report_tables,
)
from benchmarks.overhead_points import PointOptions, measure, measure_open_loop, say, wrk_run

RATE_FRACTIONS = (0.25, 0.5, 0.75)


@dataclass(frozen=True, slots=True)
class Options:
    """What one run measures: the command line's choices (`benchmarks.overhead` parses them)."""

    points: PointOptions
    concurrency: list[int]
    servers: list[str]
    """ASGI servers the bare configuration runs under (empty: no gateway target at all)."""
    configs: list[str]
    """Gateway configurations; all but `bare` run under `serve` only, at `config_concurrency`."""
    config_concurrency: list[int]
    workers: list[int]
    scaling_configs: list[str]
    scaling_concurrency: list[int]
    rates: list[float] | None
    """Open-loop rates; None: `auto` (fractions of the slowest open-loop configuration's best)."""
    open_loop_configs: list[str]
    profile: list[str]
    """Target keys or configurations to profile, or ["missed"]: those that miss a goal."""
    profile_native: bool
    quick: bool
    """No files written: profiles go to the run's temporary directory."""

    def as_dict(self, rates_used: list[float]) -> dict[str, object]:
        """The options as the JSON and RESULTS.md show them (`rates`: the open-loop rates used)."""
        data = asdict(self)
        data.update(data.pop("points"))
        data["rates"] = rates_used
        data["rates_asked"] = "auto" if self.rates is None else self.rates
        return data


@dataclass(slots=True)
class _Run:
    options: Options
    started: datetime
    workdir: Path
    catalog: Path
    nginx: procs.Child
    direct: report.TargetResult
    targets: list[report.TargetResult] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class _Gateway:
    child: procs.Child
    setup: gateway_configs.Setup
    base_url: str
    roles: dict[str, int]


def _log_lines(child: procs.Child) -> int:
    try:
        return len([line for line in child.log_path.read_text(errors="replace").splitlines() if line.strip()])
    except OSError:
        return 0


@contextlib.asynccontextmanager
async def _gateway(
    run: _Run, server: str, config: gateway_configs.GatewayConfig, workers: int, key: str
) -> AsyncIterator[_Gateway]:
    """The gateway in a configuration (its Redis too), checked, then stopped; a start or check failure
    raises with the log's tail."""
    async with gateway_configs.prepared(config, run.workdir, say) as setup:
        port = procs.free_port()
        processes = f"{workers} process{'es' if workers > 1 else ''}"
        say(f"starting the gateway under {server} ({config.name}, {processes}) on port {port}")
        child = await gateway_server.start_gateway(
            server,
            run.workdir,
            run.catalog,
            port,
            config=config.name,
            keys_file=setup.keys_file,
            redis_url=setup.redis_url,
            extra_env=config.environment(workers),
            label=key,
        )
        roles = {"gateway": child.pid, "upstream": run.nginx.pid}
        if setup.redis is not None:
            roles["redis"] = setup.redis.pid
        base_url = f"http://{procs.LOOPBACK}:{port}"
        try:
            await gateway_configs.check(base_url + nginx_upstream.CHAT_PATH, config)
            yield _Gateway(child, setup, base_url, roles)
        except Exception as exc:
            if child.exited:  # the log is in the temporary directory, gone once the run ends
                raise RuntimeError(
                    f"{exc}\n{key} exited with status {child.proc.returncode}; its log's tail:\n{child.log_tail()}"
                ) from exc
            raise
        finally:
            await child.stop()


def _new_target(server: str, config: str, workers: int) -> report.TargetResult:
    label = "llm-gateway serve" if server == "serve" else server
    key = report_tables.one_process_key(config, server) if workers == 1 else f"{config}-w{workers}"
    parts = [label] + ([] if config == "bare" and workers == 1 else [config])
    parts += [f"{workers} processes"] if workers > 1 else []
    return report.TargetResult(key=key, name=f"gateway ({', '.join(parts)})", url="", config=config, server=server,
                               workers=workers)  # fmt: skip


async def _closed_loop(run: _Run, server: str, config_name: str, workers: int, concurrency: list[int]) -> None:
    """Measure one gateway target; one that fails is recorded as such and the run goes on."""
    target = _new_target(server, config_name, workers)
    run.targets.append(target)
    try:
        await _measure_gateway(run, target, gateway_configs.CONFIGS[config_name], concurrency)
    except (RuntimeError, OSError, httpx.HTTPError) as exc:
        target.problems.append(f"failed: {exc}")
        say(f"  {target.name} failed: {exc}")


async def _measure_gateway(
    run: _Run, target: report.TargetResult, config: gateway_configs.GatewayConfig, concurrency: list[int]
) -> None:
    server, workers = target.server or "serve", target.workers
    async with _gateway(run, server, config, workers, target.key) as gateway:
        target.url = gateway.base_url + nginx_upstream.CHAT_PATH
        lines_before = _log_lines(gateway.child)
        redis_before = (
            None if gateway.setup.redis_port is None else await redis_server.command_calls(gateway.setup.redis_port)
        )
        cache_before = await gateway_configs.cache_counts(gateway.base_url)
        await measure(target, run.options.points, concurrency, gateway.roles, config.script)
        target.cache_lookups = gateway_configs.counts_between(
            cache_before, await gateway_configs.cache_counts(gateway.base_url)
        )
        if gateway.setup.redis_port is not None and redis_before is not None:
            target.redis_commands = redis_server.calls_between(
                redis_before, await redis_server.command_calls(gateway.setup.redis_port)
            )
            say(
                f"  Redis: {target.redis_scripts_per_request or 0:.2f} scripts and "
                f"{target.redis_commands_per_request or 0:.1f} commands per request ({target.redis_commands})"
            )
        target.peak_rss_mb = await asyncio.to_thread(procs.peak_rss_bytes, gateway.child.pid) / 2**20
        target.log_lines = _log_lines(gateway.child) - lines_before
        _verify(target, config)
        if _should_profile(run, target):
            await _profile(run, target, gateway, config, max(concurrency))


def _verify(target: report.TargetResult, config: gateway_configs.GatewayConfig) -> None:
    """What the runs say about the configuration: cache results, log lines."""
    problem = gateway_configs.verify_cache(config, target.cache_lookups, target.requests_sent)
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


def _should_profile(run: _Run, target: report.TargetResult) -> bool:
    wanted = run.options.profile
    if target.key in wanted or (target.config in wanted and target.workers == 1 and target.server == "serve"):
        return True
    if "missed" not in wanted or target.server != "serve" or target.workers != 1:
        return False
    return bool(report.summarize(run.direct, target).missed)


async def _profile(
    run: _Run, target: report.TargetResult, gateway: _Gateway, config: gateway_configs.GatewayConfig, concurrency: int
) -> None:
    """One more wrk run with py-spy attached; the flame graph, folded stacks and summary written out."""
    out_dir = run.workdir / "profiles" if run.options.quick else report.RESULTS_DIR
    base = f"profile-{report.stamp(run.started)}-{target.key}"
    folded = out_dir / f"{base}.folded"
    say(f"  profiling {target.name} with py-spy at c={concurrency} ({run.options.points.duration_s} s)")
    try:
        async with profiling.record(gateway.child.pid, folded, native=run.options.profile_native) as recording:
            result = await wrk_run(target, config.script, concurrency, run.options.points.duration_s)
    except (RuntimeError, OSError) as exc:
        target.profile = {"error": str(exc)}
        say(f"  not profiled: {exc}")
        return
    if recording.error:
        target.profile = {"error": recording.error}
        say(f"  not profiled: {recording.error}")
        return
    text = await asyncio.to_thread(folded.read_text, errors="replace")
    summary = profiling.summarize(text)
    title = f"{target.name}: CPU time under wrk -c{concurrency} ({report.stamp(run.started)})"
    svg, md = out_dir / f"{base}.svg", out_dir / f"{base}.md"
    await asyncio.to_thread(svg.write_text, flamegraph.render(text, title))
    await asyncio.to_thread(md.write_text, profiling.markdown(summary, title, svg.name, folded.name))
    relative = report.HERE if out_dir.is_relative_to(report.HERE) else out_dir
    target.profile = {
        "svg": str(svg.relative_to(relative)),
        "markdown": str(md.relative_to(relative)),
        "folded": str(folded.relative_to(relative)),
        "samples": summary.samples,
        "requests_per_s": result.requests_per_s,
        "package_self_pct": summary.package_self_pct,
        "self_pct": summary.self_pct[:15],
    }
    say(f"  profile: {svg}; CPU by package: " + ", ".join(f"{n} {p:.0f}%" for n, p in summary.package_self_pct[:8]))
    say("  top functions (self): " + "; ".join(f"{n} {p:.1f}%" for n, p in summary.self_pct[:8]))


def _open_loop_rates(run: _Run) -> list[float]:
    if run.options.rates is not None:
        return run.options.rates
    keys = [report_tables.one_process_key(name) for name in run.options.open_loop_configs]
    best = [t.max_requests_per_s for t in run.targets if t.key in keys and t.max_requests_per_s > 0]
    if not best:
        return []
    slowest = min(best)
    return [max(10.0, float(int(slowest * fraction / 10) * 10)) for fraction in RATE_FRACTIONS]


async def _open_loop_phase(run: _Run) -> list[float]:
    rates = _open_loop_rates(run)
    if not rates or not run.options.open_loop_configs:
        return rates
    say(f"open loop at {', '.join(f'{r:,.0f}' for r in rates)} req/s")
    await measure_open_loop(run.direct, run.options.points, rates, {"upstream": run.nginx.pid}, "plain")
    for name in run.options.open_loop_configs:
        config = gateway_configs.CONFIGS[name]
        key = report_tables.one_process_key(name)
        target = next((t for t in run.targets if t.key == key), None)
        if target is None:
            target = _new_target("serve", name, 1)
            run.targets.append(target)
        try:
            async with _gateway(run, "serve", config, 1, key) as gateway:
                target.url = gateway.base_url + nginx_upstream.CHAT_PATH
                await measure_open_loop(target, run.options.points, rates, gateway.roles, config.workload)
        except (RuntimeError, OSError, httpx.HTTPError) as exc:
            target.problems.append(f"open loop failed: {exc}")
            say(f"  {target.name} open loop failed: {exc}")
    return rates


async def run_benchmark(options: Options, started: datetime) -> tuple[list[report.TargetResult], list[float]]:
    """Every target in turn, one at a time; the targets and the open-loop rates used."""
    with tempfile.TemporaryDirectory(prefix="llm-gateway-bench-") as tmp:
        workdir = Path(tmp)
        nginx_port = procs.free_port()
        say(f"starting nginx on port {nginx_port}")
        nginx = await nginx_upstream.start_nginx(workdir / "nginx", nginx_port)
        try:
            direct = report.TargetResult(
                key="direct",
                name="direct to nginx",
                url=f"http://{procs.LOOPBACK}:{nginx_port}{nginx_upstream.CHAT_PATH}",
            )
            catalog = gateway_server.write_catalog(workdir, nginx_port)
            run = _Run(options, started, workdir, catalog, nginx, direct, [direct])
            await measure(direct, options.points, options.concurrency, {"upstream": nginx.pid})
            for server in options.servers:
                await _closed_loop(run, server, "bare", 1, options.concurrency)
            for name in options.configs:
                if name != "bare":
                    await _closed_loop(run, "serve", name, 1, options.config_concurrency)
            for name in options.scaling_configs:
                for workers in options.workers:
                    if workers > 1:
                        await _closed_loop(run, "serve", name, workers, options.scaling_concurrency)
            rates = await _open_loop_phase(run)
            if options.quick:  # the profiles go with the temporary directory
                for target in run.targets:
                    if target.profile and "markdown" in target.profile:
                        say(f"(profile of {target.key} in the temporary directory, deleted now)")
        finally:
            await nginx.stop()
    return run.targets, rates
