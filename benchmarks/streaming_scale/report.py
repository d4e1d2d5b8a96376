"""The streaming-at-scale run's figures: the table, this gateway against issue 23's goals, each target's
capacity at the goal's added latency, and the `streaming_scale` section of RESULTS.md (the method:
benchmarks/streaming_scale/README.md)."""

from __future__ import annotations

from dataclasses import asdict
from datetime import datetime
from pathlib import Path

from benchmarks.harness import files, machine, results_md
from benchmarks.harness.cli import say
from benchmarks.streaming_scale.point import BUNCHED_MS, Point
from benchmarks.streaming_scale.profile import Profile
from benchmarks.streaming_scale.run import Options, Target

SECTION = "streaming_scale"
GOAL_STREAMS = 500
GOAL_TTFT_MS = 5.0
GOAL_GAP_MS = 5.0
GOAL_RSS_KB = 20.0


def _signed(value: float | None) -> str:
    return "-" if value is None else f"{value:+.1f}"


def _maybe(value: float | None) -> str:
    return "-" if value is None else f"{value:g}"


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{value:.0f}%"


def table(targets: list[Target]) -> str:
    lines = [
        "| target | surface | proc | streams | TTFT p50 ms | p99 ms | p50 over direct | p99 over direct "
        "| gap p99 ms | over pace | bunched | chunks/s | gateway CPU % | in kernel | ms CPU / 1k chunks "
        "| upstream ms / 1k | clients CPU % | machine busy % | KB RSS / stream | errors |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for t in targets:
        if not t.points:
            lines.append(f"| {t.name} | {t.surface} | - | {t.status.splitlines()[0][:160]} |" + " |" * 16)
            continue
        for i, p in enumerate(t.points):
            name = f"{t.name}{'' if t.status == 'ok' else ' (failed)'}" if i == 0 else ""
            if p.completed == 0:
                lines.append(
                    f"| {name} | {t.surface} | {t.processes} | {p.streams} | no stream completed |"
                    + " |" * 14
                    + f" {p.errors} |"
                )
                continue
            lines.append(
                f"| {name} | {t.surface} | {t.processes} | {p.streams} | {p.ttft_p50_ms:.1f} | {p.ttft_p99_ms:.1f} "
                f"| {_signed(p.ttft_p50_over_direct_ms)} | {_signed(p.ttft_p99_over_direct_ms)} | {p.gap_p99_ms:.1f} "
                f"| {_signed(p.gap_p99_over_pace_ms)} | {p.bunched_pct:.2f}% | {p.chunks_per_s:,} "
                f"| {p.gateway_cpu_pct:.0f} | {_pct(p.gateway_kernel_pct)} | {_maybe(p.gateway_ms_per_1k_chunks)} "
                f"| {_maybe(p.upstream_ms_per_1k_chunks)} | {p.client_cpu_pct:.0f} | {p.machine_busy_pct:.0f} "
                f"| {_maybe(p.rss_kb_per_stream)} | {p.errors} |"
            )
    return "\n".join(lines)


def within_goal(point: Point) -> bool:
    """Added p99 TTFT and gap p99 within the goal's 5 ms, no errors, every stream whole."""
    return (
        point.errors == 0
        and point.completed > 0
        and point.short_streams == 0
        and point.ttft_p99_over_direct_ms is not None
        and point.ttft_p99_over_direct_ms <= GOAL_TTFT_MS
        and point.gap_p99_over_pace_ms is not None
        and point.gap_p99_over_pace_ms <= GOAL_GAP_MS
    )


def capacity(target: Target) -> int:
    """The most streams measured within the goal's latency (0: not even the fewest)."""
    return max((p.streams for p in target.points if within_goal(p)), default=0)


def capacity_text(targets: list[Target]) -> str:
    rows = []
    for t in targets:
        if t.key == "direct" or not t.points:
            continue
        cap = capacity(t)
        rows.append(f"{t.name}: {cap if cap else '< ' + str(t.points[0].streams)}")
    return (
        (
            "Capacity (the most streams measured with ≤ 5 ms added p99 TTFT, gap p99 within 5 ms of the pace, "
            "no errors): " + "; ".join(rows) + "."
        )
        if rows
        else ""
    )


def goals_text(targets: list[Target]) -> str:
    """The one-process chat gateway at 500 streams against issue 23's goals."""
    target = next((t for t in targets if t.key == "gateway" and t.processes == 1 and t.surface == "chat"), None)
    point = next((p for p in target.points if p.streams == GOAL_STREAMS), None) if target else None
    if point is None or point.ttft_p99_over_direct_ms is None:
        return f"Goals (issue 23), one process at {GOAL_STREAMS} streams: not measured."
    checks = [
        (
            f"added p99 TTFT {point.ttft_p99_over_direct_ms:+.1f} ms (≤ {GOAL_TTFT_MS:g})",
            point.ttft_p99_over_direct_ms <= GOAL_TTFT_MS,
        ),
        (
            f"gap p99 {point.gap_p99_over_pace_ms:+.1f} ms over the pace (≤ {GOAL_GAP_MS:g})",
            (point.gap_p99_over_pace_ms or 0) <= GOAL_GAP_MS,
        ),
        (f"bunched gaps {point.bunched_pct:.2f}% (none)", point.bunched_pct == 0),
        (
            f"{_maybe(point.rss_kb_per_stream)} KB RSS per open stream (≤ {GOAL_RSS_KB:g})",
            point.rss_kb_per_stream is not None and point.rss_kb_per_stream <= GOAL_RSS_KB,
        ),
    ]
    said = "; ".join(f"{text}: {'met' if ok else '**missed**'}" for text, ok in checks)
    return f"Goals (issue 23), this gateway, one process, chat, {GOAL_STREAMS} streams at the pace: {said}."


def markdown(
    started: datetime,
    machine_data: dict[str, object],
    options: Options,
    targets: list[Target],
    profile: Profile | None,
    path: Path,
) -> str:
    versions = ", ".join(f"{t.key}: {t.version}" for t in targets if t.version)
    failed = [f"- {t.name}: {t.status}" for t in targets if t.status != "ok"]
    notes = [f"- {t.name}: {note}" for t in targets for note in t.notes]
    profile_lines = []
    if profile is not None and profile.summary:
        top = ", ".join(f"`{name}` {pct:.1f}%" for name, pct in (profile.top_self or [])[:6])
        profile_lines = [
            "",
            f"Profile of the one-process gateway at {profile.streams} streams (py-spy, native "
            f"frames): [summary](results/{Path(profile.summary).name}), flame graph "
            f"`results/{Path(profile.flamegraph).name}`. Top functions by self time: {top}.",
        ]
    return "\n".join(
        [
            "### Streams at fleet scale",
            "",
            f"Generated by `python -m benchmarks.streaming_scale` on {started:%Y-%m-%d %H:%M} UTC "
            f"({machine_data.get('nproc')} cores, load at start {machine_data.get('load_average_at_start')}); raw "
            f"figures in `{files.repo_path(path)}`. Versions: {versions or '-'}.",
            "",
            f"Method: the pacer (benchmarks/streaming_scale/pacer.py) sends {options.chunks} content chunks "
            f"{options.pace_s * 1000:.0f} ms apart per stream; client processes hold N streams open, each client "
            f"loop one stream after the other, starts spread over one stream's length; figures over a "
            f"{options.window_s:g} s window after that ramp. TTFT over direct = minus direct's p99 at the same N; "
            f"bunched = gaps < {BUNCHED_MS:g} ms; CPU from /proc over the window (% of one core; ms of CPU per "
            "1,000 chunks relayed); RSS per stream = (median RSS under load - RSS before it) / N, a fresh gateway "
            "per point. The full method: [streaming_scale/README.md](streaming_scale/README.md).",
            "",
            goals_text(targets),
            "",
            capacity_text(targets),
            "",
            table(targets),
            *profile_lines,
            *(["", "Not measured or failed:", *failed] if failed else []),
            *(["", "Notes:", *notes] if notes else []),
        ]
    )


def machine_info() -> dict[str, object]:
    return machine.machine_info(tools={"node": ["node", "--version"]}, packages=("uvloop", "aiohttp", "uvicorn"))


def write(
    started: datetime, machine_data: dict[str, object], options: Options, targets: list[Target], profile: Profile | None
) -> Path:
    """The run's JSON (runs folder and a published copy), the profile's files and the section."""
    data: dict[str, object] = {
        "benchmark": "streaming-scale",
        "started": started.isoformat(),
        "machine": machine_data,
        "options": asdict(options),
        "targets": [asdict(t) for t in targets],
        "profile": asdict(profile) if profile is not None else None,
    }
    published = files.publish(files.write_json("streaming-scale", started, data))
    if profile is not None and profile.summary:
        files.publish(Path(profile.summary))
        files.publish(Path(profile.flamegraph))
    text = markdown(started, machine_data, options, targets, profile, published)
    results_md.write(results_md.replace_section(results_md.read(), SECTION, text))
    files.retire_uncited(say)
    return published
