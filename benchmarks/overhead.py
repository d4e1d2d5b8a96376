"""Measure the gateway's overhead over a direct call to the same nginx upstream, in one run.

    .venv/bin/python -m benchmarks.overhead [--servers] [--configs bare,auth,limits] [--duration 8]
        [--concurrency 1,8,32] [--config-concurrency 1,8] [--quick]

Starts nginx (fixed chat completion) and the gateway in front of it, drives both with wrk, and writes
benchmarks/results/overhead-<UTC time>.json and benchmarks/RESULTS.md. The gateway runs in several
configurations (`bare`: open mode; `auth`: one key from a keys file; `limits`: that key with limits
counted in a Redis the benchmark starts). Everything it starts is stopped on the way out, including
on Ctrl-C, SIGTERM and errors.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import signal
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import httpx

from benchmarks import gateway_server, interference, nginx_upstream, procs, redis_server, report, wrk

STARTUP_TIMEOUT_S = 60.0


@dataclass(frozen=True, slots=True)
class Options:
    duration_s: int
    warmup_s: int
    retries: int
    quiet_wait_s: float
    noisy_pct: float
    concurrency: list[int]
    servers: list[str]
    """ASGI servers the bare configuration runs under (empty: no gateway target at all)."""
    configs: list[str]
    """Gateway configurations; all but `bare` run under `serve` only, at `config_concurrency`."""
    config_concurrency: list[int]
    quick: bool

    def concurrency_for(self, config: str) -> list[int]:
        return self.concurrency if config == "bare" else self.config_concurrency

    def as_dict(self) -> dict[str, object]:
        return {
            "duration_s": self.duration_s,
            "warmup_s": self.warmup_s,
            "retries": self.retries,
            "quiet_wait_s": self.quiet_wait_s,
            "noisy_pct": self.noisy_pct,
            "concurrency": self.concurrency,
            "servers": self.servers,
            "configs": self.configs,
            "config_concurrency": self.config_concurrency,
            "quick": self.quick,
        }


def _concurrency_list(text: str) -> list[int]:
    try:
        values = sorted({int(part) for part in text.split(",") if part.strip()})
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: expected numbers separated by commas") from None
    if not values or values[0] < 1:
        raise argparse.ArgumentTypeError(f"{text!r}: expected positive numbers")
    return values


def _server_list(text: str) -> list[str]:
    names = [part.strip() for part in text.split(",") if part.strip()]
    unknown = [name for name in names if name not in gateway_server.SERVERS]
    if not names or unknown:
        raise argparse.ArgumentTypeError(f"{text!r}: expected names from {','.join(gateway_server.SERVERS)}")
    return list(dict.fromkeys(names))


def _config_list(text: str) -> list[str]:
    names = [part.strip() for part in text.split(",") if part.strip()]
    unknown = [name for name in names if name not in gateway_server.CONFIGS]
    if not names or unknown:
        raise argparse.ArgumentTypeError(f"{text!r}: expected names from {','.join(gateway_server.CONFIGS)}")
    return [name for name in gateway_server.CONFIGS if name in names]


def parse_args(argv: Sequence[str] | None = None) -> Options:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.overhead", description=__doc__.split("\n\n")[0] if __doc__ else None
    )
    parser.add_argument("--duration", type=int, default=8, help="seconds per wrk run (default 8)")
    parser.add_argument("--warmup", type=int, default=2, help="seconds of warm-up per target (default 2)")
    parser.add_argument(
        "--retries",
        type=int,
        default=2,
        help="measure a noisy point again up to this many times, keeping the quietest (default 2)",
    )
    parser.add_argument(
        "--quiet-wait",
        type=float,
        default=20.0,
        metavar="SECONDS",
        help="before each point, wait up to this long for the machine to be quiet (default 20)",
    )
    parser.add_argument(
        "--noisy",
        type=float,
        default=25.0,
        metavar="PCT",
        help="a point is noisy when other processes and steal took more than PCT%% of a core (default 25)",
    )
    parser.add_argument("--concurrency", type=_concurrency_list, default=[1, 8, 32], help="connections, e.g. 1,8,32")
    parser.add_argument(
        "--servers",
        nargs="?",
        type=_server_list,
        const=list(gateway_server.SERVERS),
        default=["serve"],
        metavar="LIST",
        help="also run the gateway's ASGI app under uvicorn and granian; or name the servers to run, "
        f"from {','.join(gateway_server.SERVERS)} (default: serve)",
    )
    parser.add_argument(
        "--configs",
        type=_config_list,
        default=list(gateway_server.CONFIGS),
        metavar="LIST",
        help="gateway configurations, from bare (open mode), auth (a keys file), limits (the key with "
        "limits counted in Redis); only bare runs under every --servers, the others under serve "
        f"(default {','.join(gateway_server.CONFIGS)})",
    )
    parser.add_argument(
        "--config-concurrency",
        type=_concurrency_list,
        default=[1, 8],
        metavar="LIST",
        help="connections for the configurations other than bare (default 1,8)",
    )
    parser.add_argument(
        "--direct-only", action="store_true", help="measure nginx alone (checks the harness, no gateway)"
    )
    parser.add_argument("--quick", action="store_true", help="2 s runs, 1 s warm-up, no files written")
    args = parser.parse_args(argv)
    if args.duration < 1 or min(args.warmup, args.retries, args.quiet_wait) < 0:
        parser.error("--duration must be at least 1, --warmup, --retries and --quiet-wait at least 0")
    configs: list[str] = [] if args.direct_only else args.configs
    servers: list[str] = args.servers if "bare" in configs else []
    return Options(
        duration_s=2 if args.quick else args.duration,
        warmup_s=min(args.warmup, 1) if args.quick else args.warmup,
        retries=0 if args.quick else args.retries,
        quiet_wait_s=0.0 if args.quick else args.quiet_wait,
        noisy_pct=args.noisy,
        concurrency=args.concurrency,
        servers=servers,
        configs=configs,
        config_concurrency=args.config_concurrency,
        quick=args.quick,
    )


def _say(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


async def _measure(target: report.TargetResult, options: Options, concurrencies: list[int]) -> None:
    if options.warmup_s:
        warmup = await wrk.run(target.url, max(concurrencies), options.warmup_s)
        target.requests_sent += warmup.requests
        if warmup.error_count:
            _say(f"  {target.name} warm-up: errors {warmup.errors}")
    for concurrency in concurrencies:
        best: tuple[wrk.WrkResult, interference.Interference] | None = None
        for attempt in range(1, options.retries + 2):
            await _wait_for_quiet(options)
            before = await asyncio.to_thread(interference.snapshot)
            run = await wrk.run(target.url, concurrency, options.duration_s)
            target.requests_sent += run.requests
            noise = interference.between(before, await asyncio.to_thread(interference.snapshot))
            errors = f", errors {run.errors}" if run.error_count else ""
            _say(
                f"  {target.name} c={concurrency}: {run.requests_per_s:,.0f} req/s, p50 {run.p50_ms:.3f} ms, "
                f"p90 {run.p90_ms:.3f} ms, p99 {run.p99_ms:.3f} ms{errors} "
                f"(other CPU {noise.other_cpu_pct:.0f}%, steal {noise.steal_pct:.0f}%)"
            )
            if best is None or _noise(noise) < _noise(best[1]):
                best = (run, noise)
            target.attempts[concurrency] = attempt
            if _noise(noise) <= options.noisy_pct:
                break
            if attempt <= options.retries:
                _say(f"    noisy (more than {options.noisy_pct:.0f}% of a core ran beside it): measuring again")
        assert best is not None
        target.runs.append(best[0])
        target.interference[concurrency] = best[1]


def _noise(noise: interference.Interference) -> float:
    return noise.other_cpu_pct + noise.steal_pct


async def _wait_for_quiet(options: Options) -> None:
    """Wait (up to --quiet-wait seconds) for a second in which the rest of the machine is quiet."""
    deadline = time.monotonic() + options.quiet_wait_s
    said = False
    while time.monotonic() < deadline:
        before = await asyncio.to_thread(interference.snapshot)
        await asyncio.sleep(1.0)
        noise = interference.between(before, await asyncio.to_thread(interference.snapshot))
        if _noise(noise) <= options.noisy_pct:
            return
        if not said:
            _say(
                f"    waiting up to {options.quiet_wait_s:.0f} s for the machine to quieten ({_noise(noise):.0f}% busy)"
            )
            said = True


async def _check_chat(url: str, config: str = "bare") -> None:
    """One chat completion through the gateway must succeed before it is measured; and the
    configuration must be the one named: a wrong key refused with a key source, limits counted with
    `limits` (its answers carry `x-ratelimit-*` headers)."""
    async with httpx.AsyncClient(trust_env=False, timeout=10.0) as client:
        response = await client.post(url, json=nginx_upstream.CHAT_REQUEST, headers=gateway_server.AUTH_HEADERS)
        wrong = None
        if config != "bare":
            wrong = await client.post(
                url, json=nginx_upstream.CHAT_REQUEST, headers={"Authorization": "Bearer not-the-bench-key"}
            )
    if response.status_code != 200:
        raise RuntimeError(f"POST {url} answered {response.status_code}: {response.text[:500]}")
    body = response.json()
    choices = body.get("choices") if isinstance(body, dict) else None
    if not choices:
        raise RuntimeError(f"POST {url} answered without choices: {response.text[:500]}")
    if wrong is not None and wrong.status_code != 401:
        raise RuntimeError(f"{config}: POST {url} with a wrong key answered {wrong.status_code}, expected 401")
    limited = "x-ratelimit-limit-requests" in response.headers
    if limited != (config == "limits"):
        raise RuntimeError(
            f"{config}: the answer {'carries' if limited else 'lacks'} x-ratelimit-* headers ({dict(response.headers)})"
        )


def _log_lines(child: procs.Child) -> int:
    try:
        return len([line for line in child.log_path.read_text(errors="replace").splitlines() if line.strip()])
    except OSError:
        return 0


@dataclass(frozen=True, slots=True)
class _Setup:
    """What a gateway configuration needs besides the catalog."""

    keys_file: Path | None = None
    redis_url: str | None = None
    redis_port: int | None = None


async def _gateway_target(
    server: str,
    config: str,
    setup: _Setup,
    workdir: Path,
    catalog: Path,
    options: Options,
    children: list[procs.Child],
) -> report.TargetResult:
    port = procs.free_port()
    label = "llm-gateway serve" if server == "serve" else server
    target = report.TargetResult(
        key=server if config == "bare" else config,
        name=f"gateway ({label})" if config == "bare" else f"gateway ({label}, {config})",
        url=f"http://{procs.LOOPBACK}:{port}{nginx_upstream.CHAT_PATH}",
        config=config,
        server=server,
    )
    _say(f"starting the gateway under {label} ({config}) on port {port}")
    child = await gateway_server.start_gateway(
        server, workdir, catalog, port, config=config, keys_file=setup.keys_file, redis_url=setup.redis_url
    )
    children.append(child)
    try:
        await _check_chat(target.url, config)
        before = None if setup.redis_port is None else await redis_server.command_calls(setup.redis_port)
        await _measure(target, options, options.concurrency_for(config))
        if setup.redis_port is not None and before is not None:
            after = await redis_server.command_calls(setup.redis_port)
            target.redis_commands = redis_server.calls_between(before, after)
            _say(
                f"  Redis: {target.redis_scripts_per_request or 0:.2f} scripts and "
                f"{target.redis_commands_per_request or 0:.1f} commands per request "
                f"({target.requests_sent:,} requests: {target.redis_commands})"
            )
        target.peak_rss_mb = await asyncio.to_thread(procs.peak_rss_bytes, child.pid) / 2**20
    except Exception as exc:
        if child.exited:  # the log is in the temporary directory, gone once the run ends
            raise RuntimeError(
                f"{exc}\n{target.name} exited with status {child.proc.returncode}; its log's tail:\n{child.log_tail()}"
            ) from exc
        raise
    finally:
        children.remove(child)
        await child.stop()
    target.log_lines = await asyncio.to_thread(_log_lines, child)
    if target.log_lines:
        _say(f"  note: {target.name} logged {target.log_lines} lines at warning level; last ones:")
        _say(child.log_tail(10))
    return target


async def run_benchmark(options: Options) -> list[report.TargetResult]:
    """Every target in turn, one at a time, with nginx up throughout."""
    children: list[procs.Child] = []
    targets: list[report.TargetResult] = []
    with tempfile.TemporaryDirectory(prefix="llm-gateway-bench-") as tmp:
        workdir = Path(tmp)
        try:
            nginx_port = procs.free_port()
            _say(f"starting nginx on port {nginx_port}")
            children.append(await nginx_upstream.start_nginx(workdir / "nginx", nginx_port))
            direct = report.TargetResult(
                key="direct",
                name="direct to nginx",
                url=f"http://{procs.LOOPBACK}:{nginx_port}{nginx_upstream.CHAT_PATH}",
            )
            await _measure(direct, options, options.concurrency)
            targets.append(direct)
            catalog = await asyncio.to_thread(gateway_server.write_catalog, workdir, nginx_port)
            for server in options.servers:
                targets.append(await _gateway_target(server, "bare", _Setup(), workdir, catalog, options, children))
            for config in options.configs:
                if config == "bare":
                    continue
                setup = _Setup(keys_file=gateway_server.write_keys_file(workdir, limits=config == "limits"))
                redis = None
                if config == "limits":
                    redis_port = procs.free_port()
                    _say(f"starting Redis ({redis_server.redis_binary()}) on port {redis_port}")
                    redis = await redis_server.start_redis(workdir / "redis", redis_port)
                    children.append(redis)
                    setup = dataclasses.replace(
                        setup, redis_url=f"redis://{procs.LOOPBACK}:{redis_port}/0", redis_port=redis_port
                    )
                try:
                    targets.append(await _gateway_target("serve", config, setup, workdir, catalog, options, children))
                finally:
                    if redis is not None:
                        children.remove(redis)
                        await redis.stop()
        finally:
            for child in reversed(children):
                try:
                    await child.stop()
                except Exception as exc:  # keep stopping the others
                    _say(f"could not stop {child.name} (pid {child.pid}): {exc}")
    return targets


async def _main_async(options: Options) -> list[report.TargetResult]:
    task = asyncio.current_task()
    loop = asyncio.get_running_loop()
    if task is not None:
        loop.add_signal_handler(signal.SIGTERM, task.cancel)
    try:
        return await run_benchmark(options)
    finally:
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.remove_signal_handler(signal.SIGTERM)


def _gateway_present() -> bool:
    package = gateway_server.ROOT / "gateway"
    return (package / "asgi.py").exists() and (package / "cli.py").exists()


def _emit(options: Options, started: datetime, machine: dict[str, object], targets: list[report.TargetResult]) -> None:
    direct = next(target for target in targets if target.key == "direct")
    summaries = [report.summarize(direct, target) for target in targets if target.key != "direct"]
    json_path = None
    if not options.quick:
        data = report.to_json(started, options.as_dict(), machine, targets, summaries)
        json_path = report.write_json(data, started)
        report.write_markdown(
            report.render_markdown(started, options.as_dict(), machine, targets, summaries, json_path)
        )
        _say(f"wrote {json_path} and {report.RESULTS_MD}")
    if any(s.config == "bare" for s in summaries):
        print(report.summary_table(targets, summaries), end="\n\n")
    if any(s.config != "bare" for s in summaries):
        print(report.configs_table(targets, summaries), end="\n\n")
    print(report.results_table(targets, options.noisy_pct))


def main(argv: Sequence[str] | None = None) -> int:
    options = parse_args(argv)
    if (options.servers or options.configs) and not _gateway_present():
        _say("gateway/asgi.py or gateway/cli.py is missing: the gateway is not built yet (try --direct-only)")
        return 2
    try:
        redis = redis_server.redis_binary() if "limits" in options.configs else None
    except RuntimeError as exc:
        _say(str(exc))
        return 2
    machine = report.machine_info(nginx_upstream.nginx_binary(), wrk.wrk_binary(), redis)
    started = report.utc_now()
    try:
        targets = asyncio.run(_main_async(options))
    except (KeyboardInterrupt, asyncio.CancelledError):
        _say("interrupted: every process started was stopped")
        return 130
    except RuntimeError as exc:
        _say(f"benchmark failed: {exc}")
        return 1
    _emit(options, started, machine, targets)
    return 0


if __name__ == "__main__":
    sys.exit(main())
