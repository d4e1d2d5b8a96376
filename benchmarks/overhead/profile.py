"""Profiles of the targets that miss a goal (or are named): one more wrk run with py-spy attached, its
flame graph (SVG), summary (markdown) and folded stacks written to the runs folder; the report
publishes the flame graph and summary it cites (benchmarks/overhead/report.py)."""

from __future__ import annotations

import asyncio
from datetime import datetime
from pathlib import Path

from benchmarks.harness import configs, files, flamegraph, profiling
from benchmarks.harness.cli import say
from benchmarks.overhead.points import wrk_run
from benchmarks.overhead.results import TargetResult, summarize


def should_profile(wanted: list[str], direct: TargetResult, target: TargetResult) -> bool:
    """Named (by key, or by configuration for its one `serve` process), or `missed` and missing a goal."""
    if target.key in wanted or (target.config in wanted and target.workers == 1 and target.server == "serve"):
        return True
    if "missed" not in wanted or target.server != "serve" or target.workers != 1:
        return False
    return bool(summarize(direct, target).missed)


async def profile_target(
    target: TargetResult,
    pid: int,
    config: configs.GatewayConfig,
    concurrency: int,
    *,
    duration_s: int,
    native: bool,
    started: datetime,
    out_dir: Path | None = None,
) -> None:
    """Profile the gateway `pid` under one more wrk run at `concurrency`; the files go to `out_dir` (the
    runs folder by default) and what they say to `target.profile`."""
    out_dir = out_dir or files.RUNS_DIR
    base = f"profile-{files.stamp(started)}-{target.key}"
    folded = out_dir / f"{base}.folded"
    say(f"  profiling {target.name} with py-spy at c={concurrency} ({duration_s} s)")
    try:
        async with profiling.record(pid, folded, native=native) as recording:
            result = await wrk_run(target, config.script, concurrency, duration_s)
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
    title = f"{target.name}: CPU time under wrk -c{concurrency} ({files.stamp(started)})"
    svg, md = out_dir / f"{base}.svg", out_dir / f"{base}.md"
    await asyncio.to_thread(svg.write_text, flamegraph.render(text, title))
    await asyncio.to_thread(md.write_text, profiling.markdown(summary, title, svg.name, files.repo_path(folded)))
    relative = files.BENCHMARKS if out_dir.is_relative_to(files.BENCHMARKS) else out_dir
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
