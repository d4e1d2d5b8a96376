"""`python -m benchmarks.overhead`: a run, its tables on stdout, its JSON and RESULTS.md written."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from benchmarks.harness import configs, files, nginx
from benchmarks.harness.cli import run, say
from benchmarks.load import wrk
from benchmarks.overhead import phase_tables, report, tables
from benchmarks.overhead.cli import parse_args
from benchmarks.overhead.results import TargetResult, summarize
from benchmarks.overhead.run import Options, run_benchmark
from testkit.redis_server import preferred_binary


def _gateway_present() -> bool:
    package = files.REPO / "gateway"
    return (package / "app" / "asgi.py").exists() and (package / "cli" / "entry.py").exists()


def _redis_binary(names: Sequence[str]) -> str | None:
    """The Redis the configurations need (None when none needs one); raises RuntimeError when missing."""
    return str(preferred_binary()) if any(configs.CONFIGS[name].redis for name in names) else None


def _emit(options: Options, started: datetime, machine_data: dict[str, object], targets: list[TargetResult],
          rates: list[float]) -> None:  # fmt: skip
    direct = next(target for target in targets if target.key == "direct")
    summaries = [summarize(direct, target) for target in targets if target.key != "direct" and target.runs]
    if not options.quick:
        json_path = report.write(started, options.as_dict(rates), machine_data, targets, summaries)
        say(f"wrote {json_path} (raw in {files.repo_path(files.RUNS_DIR)}/) and {files.RESULTS_MD}")
    sections = [
        tables.headline(targets, summaries),
        tables.summary_table(targets, summaries) if any(s.config == "bare" for s in summaries) else "",
        tables.configs_table(targets, summaries) if any(s.config != "bare" for s in summaries) else "",
        phase_tables.scaling_table(targets) if any(t.workers > 1 for t in targets) else "",
        phase_tables.open_loop_table(targets) if any(t.open_loop for t in targets) else "",
        phase_tables.profiles_section(targets, summaries),
        tables.failures(targets),
        tables.results_table(targets, options.points.noisy_pct),
    ]
    print("\n\n".join(section.strip("\n") for section in sections if section))


def _full_run(options: Options) -> int:
    if (options.servers or options.configs) and not _gateway_present():
        say("gateway/app/asgi.py or gateway/cli/entry.py is missing: the gateway is not built yet (try --direct-only)")
        return 2
    try:
        redis = _redis_binary([*options.configs, *options.scaling_configs])
    except RuntimeError as exc:
        say(str(exc))
        return 2
    machine_data = report.machine_info(nginx.nginx_binary(), wrk.wrk_binary(), redis)
    started = files.utc_now()
    targets, rates = run(run_benchmark(options, started), say)
    _emit(options, started, machine_data, targets, rates)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    return _full_run(parse_args(argv))
