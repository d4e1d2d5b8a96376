"""The gateway's CPU per request, read from /proc: utime + stime of its processes (clock ticks, what
`top` shows) and, finer, the nanoseconds its threads ran (`/proc/<pid>/task/<tid>/schedstat`), before
and after a fixed number of calls; rounds of every call kind summed up by their median (pure, beside
the readings).

A tick is 10 ms and each reading truncates to whole ticks, so a measurement of T ticks is good to about
2/T; schedstat counts nanoseconds of the same CPU time, so the two agree over long measurements and the
finer one is what the ratios use."""

from __future__ import annotations

import os
import statistics
from dataclasses import dataclass, field
from pathlib import Path

from benchmarks.harness import proc_stats

TICK_NS = 1_000_000_000 // os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True, slots=True)
class Reading:
    ticks: int
    ran_ns: int


def _ran_ns(pid: int) -> int:
    total = 0
    try:
        tasks = list(Path(f"/proc/{pid}/task").iterdir())
    except OSError:
        return 0
    for task in tasks:
        try:
            total += int((task / "schedstat").read_text().split()[0])
        except (OSError, ValueError, IndexError):
            continue
    return total


def read(pids: list[int]) -> Reading:
    """The CPU `pids` (the gateway's processes) have used so far."""
    return Reading(sum(proc_stats.cpu_ticks(pid) for pid in pids), sum(_ran_ns(pid) for pid in pids))


@dataclass(slots=True)
class Sample:
    """One round of one call kind: `requests` calls and the gateway's CPU over them."""

    requests: int
    ticks: int
    ran_ns: int
    wall_s: float
    errors: int = 0
    others_pct: float = 0.0
    """CPU the rest of the machine used meanwhile (other processes and steal), % of one core."""

    @property
    def us_per_request(self) -> float:
        return self.ran_ns / self.requests / 1000

    @property
    def stat_us_per_request(self) -> float:
        return self.ticks * TICK_NS / self.requests / 1000


def sample(before: Reading, after: Reading, requests: int, wall_s: float, errors: int) -> Sample:
    return Sample(requests, after.ticks - before.ticks, after.ran_ns - before.ran_ns, round(wall_s, 3), errors)


@dataclass(slots=True)
class CpuRow:
    """One call kind's CPU per request over the rounds, and its ratio to chat's in the same mode."""

    surface: str
    stream: bool
    samples: list[Sample] = field(default_factory=list)
    us_per_request: float = 0.0
    """Median over the rounds (schedstat)."""
    stat_us_per_request: float = 0.0
    """Median over the rounds (utime + stime ticks)."""
    spread_pct: float = 0.0
    """(max - min) / median of the rounds (schedstat), %: how much the rounds disagree."""
    ratio_to_chat: float | None = None
    stat_ratio_to_chat: float | None = None
    errors: int = 0


def summarize(rows: list[CpuRow]) -> None:
    """Fill in each row's medians, spread and ratios to chat's row of the same mode."""
    for row in rows:
        per_request = [s.us_per_request for s in row.samples]
        row.us_per_request = round(statistics.median(per_request), 1) if per_request else 0.0
        row.stat_us_per_request = round(statistics.median(s.stat_us_per_request for s in row.samples), 1) if (
            row.samples) else 0.0  # fmt: skip
        row.spread_pct = round(100 * (max(per_request) - min(per_request)) / row.us_per_request, 1) if (
            row.us_per_request) else 0.0  # fmt: skip
        row.errors = sum(s.errors for s in row.samples)
    for row in rows:
        chat = next((r for r in rows if r.surface == "chat" and r.stream == row.stream), None)
        if chat is not None and chat.us_per_request:
            row.ratio_to_chat = round(row.us_per_request / chat.us_per_request, 3)
        if chat is not None and chat.stat_us_per_request:
            row.stat_ratio_to_chat = round(row.stat_us_per_request / chat.stat_us_per_request, 3)
