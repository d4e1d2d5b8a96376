"""The surfaces run's figures: the CPU table (each call kind's CPU per request and its ratio to chat's),
the pacing table, the goals of issue 20, and the `surfaces` section of RESULTS.md (the method:
benchmarks/surfaces/README.md)."""

from __future__ import annotations

from dataclasses import asdict
from datetime import datetime
from pathlib import Path

from benchmarks.harness import files, machine, results_md
from benchmarks.harness.cli import say
from benchmarks.surfaces.calls import BY_KEY
from benchmarks.surfaces.cpu import CpuRow
from benchmarks.surfaces.instructions import InstructionRow
from benchmarks.surfaces.pacing import BUNCHED_MS, Pacing
from benchmarks.surfaces.run import PACE_S, REPLY_TOKENS, Options, Result

SECTION = "surfaces"
CPU_GOAL = 1.10
"""Issue 20: a translated Responses or Messages call costs the gateway at most 10 % more CPU than chat's."""
INSTRUCTIONS_NOTE = (
    "Over 1.10x in instructions: a translation's own work (its request's translation, the events around the "
    "deltas, a small step per chunk) weighed without the kernel's share of a call, which is most of a "
    "streamed call's CPU time ([surfaces/README.md](surfaces/README.md), *Reading the figures*)."
)
"""Said under the goals when a translated kind's instruction ratio is over the CPU goal's."""
GOAL_SURFACES = ("responses", "messages")
"""Stored Responses are reported beside, not held to the goal: storing is work chat does not do."""


def _ratio(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}x"


def cpu_table(rows: list[CpuRow]) -> str:
    lines = [
        "| call | µs CPU per request | vs chat | rounds (µs) | spread | from ticks: µs | vs chat | errors |",
        "|---|---:|---:|---|---:|---:|---:|---:|",
    ]
    for row in rows:
        rounds = ", ".join(f"{s.us_per_request:.0f}" for s in row.samples)
        lines.append(
            f"| {BY_KEY[row.surface].label}, {'streamed' if row.stream else 'plain'} | {row.us_per_request:,.0f} "
            f"| {_ratio(row.ratio_to_chat)} | {rounds} | {row.spread_pct:.0f}% | {row.stat_us_per_request:,.0f} "
            f"| {_ratio(row.stat_ratio_to_chat)} | {row.errors} |"
        )
    return "\n".join(lines)


def pacing_table(figures: list[Pacing]) -> str:
    lines = [
        "| stream | content event | streams | events per stream | gap p50 ms | gap p99 ms | gap max ms "
        f"| bunched (< {BUNCHED_MS:g} ms) | TTFT p50 ms | errors |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for p in figures:
        surface = BY_KEY[p.surface]
        event = "chunk with content" if surface.key == "chat" else f"`{surface.content_event}`"
        lines.append(
            f"| {surface.label} | {event} | {p.streams} | {p.events_mean:.0f} | {p.gap_p50_ms:.2f} "
            f"| {p.gap_p99_ms:.2f} | {p.gap_max_ms:.1f} | {p.bunched_pct:.1f}% | {p.ttft_p50_ms:.1f} | {p.errors} |"
        )
    return "\n".join(lines)


def instructions_table(rows: list[InstructionRow]) -> str:
    lines = ["| call | instructions per call | vs chat | passes | errors |", "|---|---:|---:|---|---:|"]
    for row in rows:
        passes = ", ".join(f"{value:,.0f}" for value in row.passes)
        lines.append(
            f"| {BY_KEY[row.surface].label}, {'streamed' if row.stream else 'plain'} | {row.per_call:,.0f} "
            f"| {_ratio(row.ratio_to_chat)} | {passes} | {row.errors} |"
        )
    return "\n".join(lines)


def _cpu_goal(rows: list[CpuRow]) -> list[str]:
    lines = []
    for row in rows:
        if row.surface not in GOAL_SURFACES or row.ratio_to_chat is None:
            continue
        met = row.ratio_to_chat <= CPU_GOAL and row.errors == 0
        lines.append(
            f"{BY_KEY[row.surface].label} {'streamed' if row.stream else 'plain'} {row.ratio_to_chat:.2f}x "
            f"({'met' if met else '**missed**'})"
        )
    return lines


def _pacing_goal(figures: list[Pacing]) -> list[str]:
    lines = []
    for p in figures:
        if p.surface == "chat":
            continue
        met = p.bunched_pct == 0 and p.events_mean == REPLY_TOKENS and p.errors == 0
        lines.append(
            f"{BY_KEY[p.surface].label} {p.bunched_pct:.1f}% bunched, {p.events_mean:.0f} of {REPLY_TOKENS} "
            f"events ({'met' if met else '**missed**'})"
        )
    return lines


def goals_text(result: Result) -> str:
    """The run against issue 20's benchmark goals (CPU: the schedstat medians; instructions beside)."""
    cpu_lines = _cpu_goal(result.cpu_rows) or ["not measured"]
    counted = [
        f"{BY_KEY[r.surface].label} {'streamed' if r.stream else 'plain'} {r.ratio_to_chat:.2f}x"
        for r in result.instructions
        if r.surface in GOAL_SURFACES and r.ratio_to_chat is not None
    ]
    counted_text = f" In instructions (callgrind): {'; '.join(counted)}." if counted else ""
    if any(r.surface in GOAL_SURFACES and (r.ratio_to_chat or 0) > CPU_GOAL for r in result.instructions):
        counted_text += f" {INSTRUCTIONS_NOTE}"
    pacing_lines = _pacing_goal(result.pacing) or ["not measured"]
    chat = next((p for p in result.pacing if p.surface == "chat"), None)
    chat_note = f" (chat beside: {chat.bunched_pct:.1f}% bunched)" if chat else ""
    return (
        f"Goals (issue 20): CPU per request of a translated call at most {CPU_GOAL:.2f}x chat's: "
        + "; ".join(cpu_lines)
        + f". No bunched content events in translated streams: {'; '.join(pacing_lines)}{chat_note}."
        + counted_text
    )


def _quiet_text(result: Result) -> str:
    noisy = sum(not q.quiet for q in result.quiet)
    others = [s.others_pct for row in result.cpu_rows for s in row.samples]
    worst = f"; the rest of the machine used at most {max(others):.0f}% of a core during a CPU sample" if others else ""
    began = f"{noisy} of {len(result.quiet)} measurements (CPU rounds, pacing)"
    return f"{began} began while a test suite or benchmark ran{worst}"


def markdown(started: datetime, machine_data: dict[str, object], options: Options, result: Result, path: Path) -> str:
    return "\n".join(
        [
            "## API surfaces: translated Responses and Messages beside chat",
            "",
            f"Generated by `python -m benchmarks.surfaces` on {started:%Y-%m-%d %H:%M} UTC "
            f"({machine_data.get('nproc')} cores, {machine_data.get('cpu_model')}, load at start "
            f"{machine_data.get('load_average_at_start')}; {_quiet_text(result)}); raw figures in "
            f"`{files.repo_path(path)}`. Gateway {result.version or '-'}.",
            "",
            f"Method: one `llm-gateway serve` (open mode, cache off, one process) in front of the simulator in vLLM "
            f"mode ({REPLY_TOKENS}-token replies, {PACE_S * 1000:.0f} ms apart). CPU: {options.rounds} rounds, each "
            f"sending every call kind {options.requests} times from {options.concurrency} clients in closed loop (in "
            "a rotating order, after a warm-up); the gateway's CPU over each is read from /proc (its threads' "
            "schedstat nanoseconds; utime + stime ticks beside, coarser), divided by the calls, and the median of the "
            "rounds set against chat's in the same mode. Pacing: "
            f"{options.pacing_streams} streams per surface, one at a time; the gaps between consecutive content "
            f"events as the client sees them, bunched when under {BUNCHED_MS:g} ms. Chat streams ask for the usage "
            "chunk, as the translations ask the worker for it. The full method: "
            "[surfaces/README.md](surfaces/README.md).",
            "",
            goals_text(result),
            "",
            cpu_table(result.cpu_rows),
            "",
            pacing_table(result.pacing),
            *(
                ["", _instructions_intro(options), "", instructions_table(result.instructions)]
                if result.instructions
                else []
            ),
            *(
                ["", "Profiles (py-spy, one more batch of each call kind):", *profiles_text(result)]
                if result.profiles
                else []
            ),
        ]
    )


def _instructions_intro(options: Options) -> str:
    return (
        f"Instructions per call (callgrind): a second gateway under valgrind in front of the same simulator, "
        f"{options.instructions} calls of each kind after a warm-up, in two passes (the second in reverse order), "
        "its counters zeroed before and dumped after each kind's calls (`callgrind_control`); user-space "
        "instructions only (the system calls' kernel work, the same for every surface, is in the CPU times "
        "above, not here), and repeatable where those times are not."
    )


def machine_info() -> dict[str, object]:
    return machine.machine_info(packages=("aiohttp", "msgspec", "litestar"))


def write(started: datetime, machine_data: dict[str, object], options: Options, result: Result) -> Path:
    """The run's JSON (runs folder and a published copy) and the `surfaces` section; the published JSON."""
    data: dict[str, object] = {
        "benchmark": "surfaces",
        "started": started.isoformat(),
        "machine": machine_data,
        "options": asdict(options),
        "pace_ms": PACE_S * 1000,
        "reply_tokens": REPLY_TOKENS,
        "result": asdict(result),
    }
    published = files.publish(files.write_json("surfaces", started, data))
    text = markdown(started, machine_data, options, result, published)
    results_md.write(results_md.replace_section(results_md.read(), SECTION, text))
    files.retire_uncited(say)
    return published


def profiles_text(result: Result) -> list[str]:
    """One line per profiled call kind: where its CPU went (the summaries are in the runs folder)."""
    lines = []
    for note in result.profiles:
        if note.error:
            lines.append(f"- {note.kind}: not profiled ({note.error[:200]})")
            continue
        top = ", ".join(f"`{name}` {pct:.1f}%" for name, pct in note.top_translation[:4]) or "-"
        versus = ""
        if note.more_than_chat_pct is not None:
            extra = ", ".join(f"`{name}` +{n}" for name, n in note.extra_vs_chat) or "-"
            versus = f"; {note.more_than_chat_pct:+.0f}% samples against chat's, most in (self time) {extra}"
        lines.append(
            f"- {note.kind}: {note.samples:,} busy samples, {note.translation_pct:.1f}% of them in "
            f"gateway/surfaces/ code itself (innermost project frame: {top}){versus}; summary `{note.summary_file}`"
        )
    return lines
