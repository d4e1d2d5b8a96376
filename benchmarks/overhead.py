"""Measure the gateway's overhead over a direct call to the same nginx upstream, in one run.

    .venv/bin/python -m benchmarks.overhead [--servers] [--configs bare,auth,limits,cache-miss,cache-hit,logs,all]
        [--workers 1,2] [--scaling-configs bare,all] [--rates auto] [--open-loop-configs bare,all]
        [--profile missed] [--duration 8] [--concurrency 1,8,32] [--config-concurrency 1,8] [--quick]

Starts nginx (fixed chat completion) and the gateway in front of it, in each configuration
(benchmarks/gateway_configs.py) and with N server processes, drives them with wrk and with an open-loop
generator at fixed rates, profiles the configurations that miss a goal, and writes
benchmarks/results/overhead-<UTC time>.json and benchmarks/RESULTS.md (the method is in
benchmarks/report_method.py). Everything it starts is stopped on the way out, including on Ctrl-C,
SIGTERM and errors.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from datetime import datetime

from benchmarks import cli, gateway_configs, gateway_server, nginx_upstream, redis_server, report, report_tables, wrk
from benchmarks.overhead_points import PointOptions, say
from benchmarks.overhead_run import Options, run_benchmark


def _names(text: str, known: Sequence[str], what: str) -> list[str]:
    names = [part.strip() for part in text.split(",") if part.strip()]
    unknown = [name for name in names if name not in known]
    if unknown:
        raise argparse.ArgumentTypeError(f"{text!r}: unknown {what} {unknown}, expected names from {','.join(known)}")
    return [name for name in known if name in names]


def _server_list(text: str) -> list[str]:
    names = _names(text, gateway_server.SERVERS, "servers")
    if not names:
        raise argparse.ArgumentTypeError("expected at least one server")
    return names


def _config_list(text: str) -> list[str]:
    return _names(text, list(gateway_configs.CONFIGS), "configurations")


def _rates(text: str) -> list[float] | None:
    if text.strip() == "auto":
        return None
    try:
        values = sorted({float(part) for part in text.split(",") if part.strip()})
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: expected `auto` or requests/s separated by commas") from None
    if values and values[0] <= 0:
        raise argparse.ArgumentTypeError(f"{text!r}: expected positive rates")
    return values


def _profile_list(text: str) -> list[str]:
    names = [part.strip() for part in text.split(",") if part.strip()]
    return [] if names == ["none"] else names


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.overhead", description=__doc__.split("\n\n")[0] if __doc__ else None
    )
    add = parser.add_argument
    add("--duration", type=int, default=8, help="seconds per run (default 8)")
    add("--warmup", type=int, default=2, help="seconds of warm-up per target (default 2)")
    add("--retries", type=int, default=2, help="measure a noisy point again up to this many times (default 2)")
    add(
        "--quiet-wait",
        type=float,
        default=20.0,
        metavar="SECONDS",
        help="before each point, wait up to this long for the machine to be quiet (default 20)",
    )
    add(
        "--noisy",
        type=float,
        default=25.0,
        metavar="PCT",
        help="a point is noisy when other processes and steal took more than PCT%% of a core (default 25)",
    )
    add("--concurrency", type=cli.number_list, default=[1, 8, 32], help="connections for direct and bare (1,8,32)")
    add(
        "--servers",
        nargs="?",
        type=_server_list,
        const=list(gateway_server.SERVERS),
        default=["serve"],
        metavar="LIST",
        help="also run the bare configuration under uvicorn and granian; or name the servers "
        f"from {','.join(gateway_server.SERVERS)} (default: serve)",
    )
    add(
        "--configs",
        type=_config_list,
        default=list(gateway_configs.DEFAULT_CONFIGS),
        metavar="LIST",
        help=f"gateway configurations, from {','.join(gateway_configs.CONFIGS)} "
        f"(default {','.join(gateway_configs.DEFAULT_CONFIGS)}); only bare runs under every --servers",
    )
    add(
        "--config-concurrency",
        type=cli.number_list,
        default=[1, 8],
        metavar="LIST",
        help="connections for the configurations other than bare (default 1,8)",
    )
    add(
        "--workers",
        type=cli.number_list,
        default=[1, 2],
        metavar="LIST",
        help="server processes for the scaling runs (default 1,2; 1 alone: no scaling run)",
    )
    add(
        "--scaling-configs",
        type=_config_list,
        default=["bare", "all"],
        metavar="LIST",
        help="configurations run with each --workers count (default bare,all)",
    )
    add(
        "--scaling-concurrency",
        type=cli.number_list,
        default=[8, 32],
        metavar="LIST",
        help="connections for the scaling runs (default 8,32)",
    )
    add(
        "--rates",
        type=_rates,
        default=None,
        metavar="auto|LIST",
        help="open-loop rates in requests/s, or `auto`: 25,50,75%% of the slowest open-loop configuration's "
        "best closed-loop requests/s (default auto; '' for no open-loop run)",
    )
    add(
        "--open-loop-configs",
        type=_config_list,
        default=["bare", "all"],
        metavar="LIST",
        help="configurations run open-loop, beside direct (default bare,all)",
    )
    add(
        "--profile",
        type=_profile_list,
        default=None,
        metavar="missed|LIST|none",
        help="profile with py-spy the targets that miss a goal (`missed`, the default), the named targets or "
        "configurations, or none (--quick: none unless named)",
    )
    add("--no-native", action="store_true", help="profiles without native frames (py-spy --native)")
    add("--direct-only", action="store_true", help="measure nginx alone (checks the harness, no gateway)")
    add("--quick", action="store_true", help="2 s runs, 1 s warm-up, no retries or waits, no files written")
    return parser  # fmt: skip


def parse_args(argv: Sequence[str] | None = None) -> Options:
    parser = _parser()
    args = parser.parse_args(argv)
    if args.duration < 1 or min(args.warmup, args.retries, args.quiet_wait) < 0:
        parser.error("--duration must be at least 1, --warmup, --retries and --quiet-wait at least 0")
    direct_only = args.direct_only
    configs: list[str] = [] if direct_only else args.configs
    profile = args.profile if args.profile is not None else ([] if args.quick else ["missed"])
    return Options(
        points=PointOptions(
            duration_s=2 if args.quick else args.duration,
            warmup_s=min(args.warmup, 1) if args.quick else args.warmup,
            retries=0 if args.quick else args.retries,
            quiet_wait_s=0.0 if args.quick else args.quiet_wait,
            noisy_pct=args.noisy,
        ),
        concurrency=args.concurrency,
        servers=args.servers if "bare" in configs else [],
        configs=configs,
        config_concurrency=args.config_concurrency,
        workers=args.workers,
        scaling_configs=[] if direct_only or max(args.workers) < 2 else args.scaling_configs,
        scaling_concurrency=args.scaling_concurrency,
        rates=args.rates,
        open_loop_configs=[] if direct_only or args.rates == [] else args.open_loop_configs,
        profile=profile,
        profile_native=not args.no_native,
        quick=args.quick,
    )


def _gateway_present() -> bool:
    package = gateway_server.ROOT / "gateway"
    return (package / "asgi.py").exists() and (package / "cli.py").exists()


def _emit(
    options: Options,
    started: datetime,
    machine: dict[str, object],
    targets: list[report.TargetResult],
    rates: list[float],
) -> None:
    direct = next(target for target in targets if target.key == "direct")
    summaries = [report.summarize(direct, target) for target in targets if target.key != "direct" and target.runs]
    as_dict = options.as_dict(rates)
    if not options.quick:
        data = report.to_json(started, as_dict, machine, targets, summaries)
        json_path = report.write_json(data, started)
        report.write_markdown(report.render_markdown(started, as_dict, machine, targets, summaries, json_path))
        say(f"wrote {json_path} and {report.RESULTS_MD}")
    sections = [
        report_tables.headline(targets, summaries),
        report_tables.summary_table(targets, summaries) if any(s.config == "bare" for s in summaries) else "",
        report_tables.configs_table(targets, summaries) if any(s.config != "bare" for s in summaries) else "",
        report_tables.scaling_table(targets) if any(t.workers > 1 for t in targets) else "",
        report_tables.open_loop_table(targets) if any(t.open_loop for t in targets) else "",
        report_tables.profiles_section(targets, summaries),
        report_tables.failures(targets),
        report_tables.results_table(targets, options.points.noisy_pct),
    ]
    print("\n\n".join(section.strip("\n") for section in sections if section))


def main(argv: Sequence[str] | None = None) -> int:
    options = parse_args(argv)
    if (options.servers or options.configs) and not _gateway_present():
        say("gateway/app/asgi.py or gateway/cli/entry.py is missing: the gateway is not built yet (try --direct-only)")
        return 2
    needs_redis = any(gateway_configs.CONFIGS[name].redis for name in {*options.configs, *options.scaling_configs})
    try:
        redis = redis_server.redis_binary() if needs_redis else None
    except RuntimeError as exc:
        say(str(exc))
        return 2
    machine = report.machine_info(nginx_upstream.nginx_binary(), wrk.wrk_binary(), redis)
    started = report.utc_now()
    targets, rates = cli.run(run_benchmark(options, started), say)
    _emit(options, started, machine, targets, rates)
    return 0


if __name__ == "__main__":
    sys.exit(main())
