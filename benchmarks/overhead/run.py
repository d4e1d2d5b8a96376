"""One overhead run: nginx up throughout; direct, then each gateway target in turn (configurations,
ASGI servers, N processes: targets.py), then the open-loop runs. Everything started is stopped on the
way out, including on Ctrl-C, SIGTERM and errors."""

from __future__ import annotations

import tempfile
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path

import httpx

from benchmarks.harness import configs, gateway, nginx
from benchmarks.harness.cli import say
from benchmarks.overhead.points import PointOptions, measure, measure_open_loop
from benchmarks.overhead.results import TargetResult
from benchmarks.overhead.tables import one_process_key
from benchmarks.overhead.targets import Bench, measure_gateway, new_target, running_gateway
from testkit.loopback import LOOPBACK, free_port

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
    bench: Bench
    targets: list[TargetResult] = field(default_factory=list)


async def _closed_loop(run: _Run, server: str, config_name: str, workers: int, concurrency: list[int]) -> None:
    """Measure one gateway target; one that fails is recorded as such and the run goes on."""
    target = new_target(server, config_name, workers)
    run.targets.append(target)
    try:
        await measure_gateway(run.bench, target, concurrency)
    except (RuntimeError, OSError, httpx.HTTPError) as exc:
        target.problems.append(f"failed: {exc}")
        say(f"  {target.name} failed: {exc}")


def _open_loop_rates(run: _Run) -> list[float]:
    if run.options.rates is not None:
        return run.options.rates
    keys = [one_process_key(name) for name in run.options.open_loop_configs]
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
    bench = run.bench
    await measure_open_loop(bench.direct, bench.points, rates, {"upstream": bench.nginx.pid}, "plain")
    for name in run.options.open_loop_configs:
        config = configs.CONFIGS[name]
        key = one_process_key(name)
        target = next((t for t in run.targets if t.key == key), None)
        if target is None:
            target = new_target("serve", name, 1)
            run.targets.append(target)
        try:
            async with running_gateway(bench, "serve", config, 1, key, gateway.WORKING_TREE) as running:
                target.url = running.base_url + nginx.CHAT_PATH
                await measure_open_loop(target, bench.points, rates, running.roles, config.workload)
        except (RuntimeError, OSError, httpx.HTTPError) as exc:
            target.problems.append(f"open loop failed: {exc}")
            say(f"  {target.name} open loop failed: {exc}")
    return rates


async def run_benchmark(options: Options, started: datetime) -> tuple[list[TargetResult], list[float]]:
    """Every target in turn, one at a time; the targets and the open-loop rates used."""
    with tempfile.TemporaryDirectory(prefix="llm-gateway-bench-") as tmp:
        workdir = Path(tmp)
        nginx_port = free_port()
        say(f"starting nginx on port {nginx_port}")
        nginx_child = await nginx.start_nginx(workdir / "nginx", nginx_port)
        try:
            direct = TargetResult(
                key="direct",
                name="direct to nginx",
                url=f"http://{LOOPBACK}:{nginx_port}{nginx.CHAT_PATH}",
            )
            catalog = gateway.write_catalog(workdir, nginx_port)
            bench = Bench(workdir, catalog, nginx_child, direct, options.points, started, options.profile,
                          options.profile_native, options.quick)  # fmt: skip
            run = _Run(options, bench, [direct])
            await measure(direct, options.points, options.concurrency, {"upstream": nginx_child.pid})
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
            await nginx_child.stop()
    return run.targets, rates
