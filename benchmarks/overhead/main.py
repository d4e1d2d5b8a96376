"""`python -m benchmarks.overhead`: a full run (its tables on stdout, its JSON and RESULTS.md written), a
comparison with an older commit (its table on stdout, JSON and markdown in the runs folder), or a
comparison published into RESULTS.md."""

from __future__ import annotations

import shlex
import sys
from collections.abc import Sequence
from datetime import datetime

from benchmarks.harness import configs, files, nginx
from benchmarks.harness.cli import run, say
from benchmarks.load import wrk
from benchmarks.overhead import compare_report, phase_tables, report, tables
from benchmarks.overhead.cli import PublishComparison, parse_args
from benchmarks.overhead.compare import CompareOptions, describe_trees, run_comparison
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


def _comparison(options: CompareOptions, argv: Sequence[str]) -> int:
    try:
        trees = describe_trees(options.rev)
        redis = _redis_binary(options.configs)
    except RuntimeError as exc:
        say(str(exc))
        return 2
    machine_data = report.machine_info(nginx.nginx_binary(), wrk.wrk_binary(), redis)
    started = files.utc_now()
    sides = run(run_comparison(options, str(trees["old"]["commit"]), started), say)
    data: dict[str, object] = {
        "benchmark": "overhead-compare",
        "date": started.isoformat().replace("+00:00", "Z"),
        "command": "python -m benchmarks.overhead " + shlex.join(argv),
        **trees,
        "options": options.as_dict(),
        "machine": machine_data,
        "sides": compare_report.side_dicts(sides),
    }
    if options.quick:
        print(compare_report.render(data, "(--quick: not written)"))
        return 0
    json_path, md_path = compare_report.write(data, started)
    print(md_path.read_text())
    say(f"wrote {files.repo_path(json_path)} and {files.repo_path(md_path)}; to put the table into RESULTS.md: "
        f"python -m benchmarks.overhead --publish-comparison {files.repo_path(json_path)}")  # fmt: skip
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    what = parse_args(args)
    if isinstance(what, PublishComparison):
        published = compare_report.publish(what.json_path)
        say(f"published {files.repo_path(published)} and the compare section of {files.RESULTS_MD}")
        return 0
    if isinstance(what, CompareOptions):
        return _comparison(what, args)
    return _full_run(what)
