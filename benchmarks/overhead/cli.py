"""Measure the gateway's overhead over a direct call to the same nginx upstream, in one run.

    python -m benchmarks.overhead [--servers] [--configs bare,auth,limits,cache-miss,cache-hit,logs,all]
        [--workers 1,2] [--scaling-configs bare,all] [--rates auto] [--open-loop-configs bare,all]
        [--profile missed] [--duration 8] [--concurrency 1,8,32] [--config-concurrency 1,8] [--quick]
    python -m benchmarks.overhead --compare-to REV [--configs bare,all] [--rounds 5] [--duration 5]
    python -m benchmarks.overhead --publish-comparison benchmarks/runs/compare-<UTC time>.json

The command line; what a run does and how it measures: benchmarks/overhead/README.md.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from benchmarks.harness import configs, gateway
from benchmarks.harness.cli import name_list, number_list
from benchmarks.overhead.compare import CompareOptions
from benchmarks.overhead.points import PointOptions
from benchmarks.overhead.run import Options

COMPARE_CONFIGS = ["bare", "all"]
NOT_WITH_COMPARE = ("servers", "direct_only", "workers", "scaling_configs", "scaling_concurrency", "rates",
                    "open_loop_configs", "profile")  # fmt: skip
"""Options of a full run that a comparison does not use (it measures one `serve` process, closed loop)."""


@dataclass(frozen=True, slots=True)
class PublishComparison:
    """`--publish-comparison`: put a finished comparison into RESULTS.md."""

    json_path: Path


def _server_list(text: str) -> list[str]:
    names = name_list(text, gateway.SERVERS, "servers")
    if not names:
        raise argparse.ArgumentTypeError("expected at least one server")
    return names


def _config_list(text: str) -> list[str]:
    return name_list(text, list(configs.CONFIGS), "configurations")


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
    add("--duration", type=int, default=None, help="seconds per run (default 8; 5 with --compare-to)")
    add("--warmup", type=int, default=None, help="seconds of warm-up per target (default 2; 1 with --compare-to)")
    add("--retries", type=int, default=None,
        help="measure a noisy point again up to this many times (default 2; 0 with --compare-to)")
    add(
        "--quiet-wait",
        type=float,
        default=None,
        metavar="SECONDS",
        help="before each point, wait up to this long for the machine to be quiet (default 20; 0 with --compare-to)",
    )
    add(
        "--noisy",
        type=float,
        default=25.0,
        metavar="PCT",
        help="a point is noisy when other processes and steal took more than PCT%% of a core (default 25)",
    )
    add("--concurrency", type=number_list, default=[1, 8, 32], help="connections for direct and bare (1,8,32)")
    add(
        "--servers",
        nargs="?",
        type=_server_list,
        const=list(gateway.SERVERS),
        default=None,
        metavar="LIST",
        help="also run the bare configuration under uvicorn and granian; or name the servers "
        f"from {','.join(gateway.SERVERS)} (default: serve)",
    )
    add(
        "--configs",
        type=_config_list,
        default=None,
        metavar="LIST",
        help=f"gateway configurations, from {','.join(configs.CONFIGS)} "
        f"(default {','.join(configs.DEFAULT_CONFIGS)}; bare,all with --compare-to); only bare runs under every "
        "--servers",
    )
    add(
        "--config-concurrency",
        type=number_list,
        default=[1, 8],
        metavar="LIST",
        help="connections for the configurations other than bare (default 1,8)",
    )
    add(
        "--workers",
        type=number_list,
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
        type=number_list,
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
    add("--quick", action="store_true", help="2 s runs, 1 s warm-up, no retries or waits, no files written "
        "(with --compare-to: one round unless --rounds)")
    compare = parser.add_argument_group(
        "side by side with an older commit",
        "measure REV (checked out into a temporary git worktree) and the working tree in one run, on the same "
        "nginx, in alternating rounds: closed loop at one process only (no other server, scaling, open loop or "
        "profiles); the JSON and a markdown table go to benchmarks/runs/",
    )
    compare.add_argument("--compare-to", metavar="REV", help="the older commit (any git revision)")
    compare.add_argument("--rounds", type=int, default=None, help="rounds, old and new in each (default 5)")
    compare.add_argument(
        "--publish-comparison", type=Path, metavar="JSON",
        help="write a comparison's table (its compare-*.json) into RESULTS.md and publish the JSON, then exit",
    )
    return parser  # fmt: skip


def _points(args: argparse.Namespace, compare: bool) -> PointOptions:
    """Durations, retries and waits: a full run's defaults, a comparison's, or --quick's."""
    duration, warmup, retries, wait = (5, 1, 0, 0.0) if compare else (8, 2, 2, 20.0)
    warmup = args.warmup if args.warmup is not None else warmup
    if args.quick:
        return PointOptions(duration_s=2, warmup_s=min(warmup, 1), retries=0, quiet_wait_s=0.0, noisy_pct=args.noisy)
    return PointOptions(
        duration_s=args.duration if args.duration is not None else duration,
        warmup_s=warmup,
        retries=args.retries if args.retries is not None else retries,
        quiet_wait_s=args.quiet_wait if args.quiet_wait is not None else wait,
        noisy_pct=args.noisy,
    )


def _check(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    if (args.duration is not None and args.duration < 1) or any(
        value is not None and value < 0 for value in (args.warmup, args.retries, args.quiet_wait)
    ):
        parser.error("--duration must be at least 1, --warmup, --retries and --quiet-wait at least 0")
    if args.compare_to is None:
        if args.rounds is not None:
            parser.error("--rounds goes with --compare-to")
        return
    defaults = parser.parse_args([])
    changed = [name for name in NOT_WITH_COMPARE if getattr(args, name) != getattr(defaults, name)]
    clashing = [f"--{name.replace('_', '-')}" for name in changed]
    if clashing:
        parser.error(f"--compare-to measures one `serve` process, closed loop: drop {', '.join(clashing)}")
    if args.rounds is not None and args.rounds < 1:
        parser.error("--rounds must be at least 1")


def _compare_options(args: argparse.Namespace) -> CompareOptions:
    return CompareOptions(
        rev=args.compare_to,
        configs=args.configs if args.configs is not None else COMPARE_CONFIGS,
        rounds=args.rounds if args.rounds is not None else (1 if args.quick else 5),
        points=_points(args, compare=True),
        concurrency=args.concurrency,
        config_concurrency=args.config_concurrency,
        quick=args.quick,
    )


def _options(args: argparse.Namespace) -> Options:
    direct_only = args.direct_only
    asked = args.configs if args.configs is not None else list(configs.DEFAULT_CONFIGS)
    chosen: list[str] = [] if direct_only else asked
    profile = args.profile if args.profile is not None else ([] if args.quick else ["missed"])
    servers = args.servers if args.servers is not None else ["serve"]
    return Options(
        points=_points(args, compare=False),
        concurrency=args.concurrency,
        servers=servers if "bare" in chosen else [],
        configs=chosen,
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


def parse_args(argv: Sequence[str] | None = None) -> Options | CompareOptions | PublishComparison:
    """The command line as what to do: a full run, a comparison, or publishing a comparison."""
    parser = _parser()
    args = parser.parse_args(argv)
    if args.publish_comparison is not None:
        return PublishComparison(args.publish_comparison)
    _check(parser, args)
    return _compare_options(args) if args.compare_to is not None else _options(args)
