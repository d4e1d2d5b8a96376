"""Waiting for a quiet machine before measuring: the box is shared, and a test suite or another
benchmark beside a run moves its figures more than most changes do.

Two waits: `wait_for_quiet_second` (before each overhead point: a second in which the rest of the
machine used at most `noisy_pct` % of a core, from /proc), and `QuietBudget` (before each target of the
peers, streaming and routing runs: the load average below a bound and no test suite or other benchmark
running, within a budget of seconds for the whole run, after which figures are marked noisy).
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from benchmarks.harness import interference, proc_stats

QUIET_LOAD = 1.0
BUSY_PATTERN = r"pytest|benchmarks\."
"""Command lines of test suites and benchmarks (`pgrep -f`)."""


def _noise(noise: interference.Interference) -> float:
    return noise.other_cpu_pct + noise.steal_pct


async def wait_for_quiet_second(wait_s: float, noisy_pct: float, say: Callable[[str], None]) -> None:
    """Wait (up to `wait_s`) for a second in which the rest of the machine used at most `noisy_pct` %
    of a core (other processes and steal)."""
    deadline = time.monotonic() + wait_s
    said = False
    while time.monotonic() < deadline:
        before = await asyncio.to_thread(interference.snapshot)
        await asyncio.sleep(1.0)
        noise = interference.between(before, await asyncio.to_thread(interference.snapshot))
        if _noise(noise) <= noisy_pct:
            return
        if not said:
            say(f"    waiting up to {wait_s:.0f} s for the machine to quieten ({_noise(noise):.0f}% busy)")
            said = True


def _ancestors() -> set[int]:
    pids, pid = set(), os.getpid()
    while pid > 1:
        pids.add(pid)
        fields = proc_stats.stat_fields(pid)
        if fields is None:
            break
        pid = int(fields[1])
    return pids


def busy_processes(pattern: str = BUSY_PATTERN) -> list[str]:
    """Processes whose command line matches `pattern` (test suites and other benchmarks), not this run,
    what it started or what started it."""
    try:
        done = subprocess.run(["pgrep", "-fa", pattern], capture_output=True, text=True, timeout=10, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return []
    mine = _ancestors() | set(proc_stats.process_tree(os.getpid()))
    lines = []
    for line in done.stdout.splitlines():
        pid, _, command = line.partition(" ")
        if pid.isdigit() and int(pid) not in mine:
            lines.append(f"{pid} {command[:120]}")
    return lines


@dataclass(slots=True)
class Quiet:
    """How the wait for a quiet machine went before a target was measured."""

    quiet: bool
    waited_s: float
    load_1m: float
    busy: list[str] = field(default_factory=list)


class QuietBudget:
    """Waits for a load average below `max_load` (None: any) and no process matching `pattern`, up to
    `total_s` over the whole run; once the budget is spent, every target is measured at once, marked noisy."""

    def __init__(
        self,
        total_s: float,
        say: Callable[[str], None],
        *,
        max_load: float | None = QUIET_LOAD,
        pattern: str = BUSY_PATTERN,
        poll_s: float = 5.0,
    ) -> None:
        self.left_s = total_s
        self.say = say
        self.max_load, self.pattern, self.poll_s = max_load, pattern, poll_s

    async def wait(self) -> Quiet:
        started = time.monotonic()
        said = False
        while True:
            load = os.getloadavg()[0]
            busy = await asyncio.to_thread(busy_processes, self.pattern)
            waited = time.monotonic() - started
            if (self.max_load is None or load < self.max_load) and not busy:
                self.left_s -= waited
                return Quiet(True, round(waited, 1), round(load, 2))
            if waited >= self.left_s:
                self.left_s = 0.0
                self.say(f"    machine still busy (load {load:.2f}, {len(busy)} matching processes): measuring, noisy")
                return Quiet(False, round(waited, 1), round(load, 2), busy[:5])
            if not said:
                self.say(
                    f"    waiting up to {self.left_s:.0f} s for a quiet machine "
                    f"(load {load:.2f}, {len(busy)} processes matching {self.pattern!r})"
                )
                said = True
            await asyncio.sleep(self.poll_s)
