"""Where a call kind's CPU goes (`--profile`): one more batch of its calls with py-spy attached to the
gateway, the samples summed up by the harness (benchmarks/harness/profiling.py) into a markdown summary in
the runs folder, and the share of samples inside the surfaces' translation code (gateway/surfaces/),
so chat's profile and a translated surface's can be set side by side: a sample counts as the
surfaces' when its innermost project frame is in gateway/surfaces/ (not merely below one: a translated
stream's generator wraps the whole relay)."""

from __future__ import annotations

import asyncio
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from benchmarks.harness import files, profiling
from benchmarks.surfaces import client
from benchmarks.surfaces.calls import Surface

TRANSLATION = "gateway/surfaces/"
"""Frames from these files are the surfaces' own work (translation, validation, event shapes)."""
PROJECT = ("gateway/", "routing/")


@dataclass(slots=True)
class ProfileNote:
    kind: str
    samples: int = 0
    translation_pct: float = 0.0
    """Busy samples whose innermost project frame is in gateway/surfaces/ (the library code it called
    included): the surfaces' own work, not the relaying they wrap."""
    top_self: list[tuple[str, float]] = field(default_factory=list)
    top_translation: list[tuple[str, float]] = field(default_factory=list)
    """Those samples by their gateway/surfaces/ function."""
    summary_file: str = ""
    error: str = ""
    more_than_chat_pct: float | None = None
    """Busy samples over chat's (same mode, same number of calls), % more."""
    extra_vs_chat: list[tuple[str, int]] = field(default_factory=list)
    """Functions (by self time) with the most samples more than in chat's profile."""


def _innermost_project_frame(frames: list[str]) -> str | None:
    return next((f for f in reversed(frames) if any(part in f for part in PROJECT) and profiling.is_python(f)), None)


def translation_share(folded: str) -> tuple[float, list[tuple[str, float]]]:
    """The % of busy samples whose innermost project frame is in gateway/surfaces/, and those samples by
    that function (pure)."""
    busy = [(frames, n) for frames, n in profiling.stacks(folded) if not profiling.is_idle(frames)]
    samples = sum(n for _, n in busy)
    if not samples:
        return 0.0, []
    by_function: dict[str, int] = {}
    for frames, n in busy:
        frame = _innermost_project_frame(frames)
        if frame is not None and TRANSLATION in frame:
            name = profiling.function(frame)
            by_function[name] = by_function.get(name, 0) + n
    inside = sum(by_function.values())
    ranked = sorted(by_function.items(), key=lambda item: -item[1])[:8]
    return round(100 * inside / samples, 1), [(name, round(100 * n / samples, 1)) for name, n in ranked]


def self_samples(folded: str) -> Counter[str]:
    """Busy samples by innermost Python function (native code it called included) (pure)."""
    counts: Counter[str] = Counter()
    for frames, n in profiling.stacks(folded):
        if not profiling.is_idle(frames):
            python = [frame for frame in frames if profiling.is_python(frame)]
            counts[profiling.function(python[-1] if python else frames[-1])] += n
    return counts


def compare_to_chat(note: ProfileNote, own: Counter[str], chat: Counter[str], top: int = 6) -> None:
    """How many more samples `note`'s kind had than chat's, and in which functions (pure; both profiles
    of the same number of calls)."""
    chat_total = sum(chat.values())
    if chat_total:
        note.more_than_chat_pct = round(100 * (sum(own.values()) - chat_total) / chat_total, 1)
    extra = Counter({name: own[name] - chat[name] for name in own if own[name] > chat[name]})
    note.extra_vs_chat = extra.most_common(top)


async def profile_kind(
    base_url: str, pid: int, surface: Surface, stream: bool, concurrency: int, requests: int, started: datetime
) -> tuple[ProfileNote, Counter[str]]:
    """The kind's profile note, and its busy samples by function (for `compare_to_chat`)."""
    kind = f"{surface.key}-{'stream' if stream else 'plain'}"
    note = ProfileNote(kind)
    folded_path = files.RUNS_DIR / f"surfaces-profile-{files.stamp(started)}-{kind}.folded"
    async with profiling.record(pid, folded_path, native=False, rate=200) as recording, client.new_session() as s:
        await client.closed_loop(s, base_url, surface, stream, concurrency, requests)
    if recording.error:
        note.error = recording.error
        return note, Counter()
    folded = await asyncio.to_thread(folded_path.read_text)
    summary = profiling.summarize(folded)
    note.samples = summary.samples
    note.top_self = summary.self_pct[:8]
    note.translation_pct, note.top_translation = translation_share(folded)
    summary_path = folded_path.with_suffix(".md")
    text = profiling.markdown(summary, f"Gateway profile: {kind}", "-", files.repo_path(folded_path))
    await asyncio.to_thread(Path.write_text, summary_path, text)
    note.summary_file = files.repo_path(summary_path)
    return note, self_samples(folded)
