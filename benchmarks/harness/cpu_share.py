"""Where the CPU went during one measurement: the gateway, the upstream, Redis, the simulators and the
load generator, and how busy the whole machine was.

Each role is one or more process trees (their roots' pids). A load generator that is a child of the
runner and exits when its run ends (wrk, the open-loop client) is read from the runner's reaped
children; Python clients that run inside the runner are the runner's own CPU. Shares are % of one core
over the measurement's wall time: on a 2-core box the roles add up to at most 200 %, which is what
limits a run where the gateway has more than one process.
"""

from __future__ import annotations

import os
import resource
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from benchmarks.harness import proc_stats

_TICKS = os.sysconf("SC_CLK_TCK")
LOAD_GENERATOR = "load generator"

Roots = Mapping[str, int | Sequence[int]]
"""role -> the pid (or pids) at the root of its process trees."""


@dataclass(frozen=True, slots=True)
class Reading:
    at: float
    ticks: dict[str, dict[int, int]]
    """role -> pid -> utime + stime (ticks) of every live process of the role's trees."""
    reaped_s: float
    """CPU seconds of the runner's reaped children (wrk, once a run is over)."""
    own_s: float
    """CPU seconds of the runner itself (its Python clients)."""
    machine_busy: int
    machine_total: int
    """Jiffies of all cores since boot: busy (all but idle and iowait) and in all."""


def _machine_jiffies() -> tuple[int, int]:
    fields = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)  # idle + iowait
    total = sum(fields[:8])  # guest time is already counted in user
    return total - idle, total


def _trees(roots: int | Sequence[int]) -> set[int]:
    return {pid for root in ([roots] if isinstance(roots, int) else roots) for pid in proc_stats.process_tree(root)}


def read(roots: Roots) -> Reading:
    """A reading of each role's trees (blocking: call it with asyncio.to_thread)."""
    ticks = {role: {pid: proc_stats.cpu_ticks(pid) for pid in _trees(pids)} for role, pids in roots.items()}
    reaped = resource.getrusage(resource.RUSAGE_CHILDREN)
    own = os.times()
    busy, total = _machine_jiffies()
    return Reading(
        at=time.monotonic(),
        ticks=ticks,
        reaped_s=reaped.ru_utime + reaped.ru_stime,
        own_s=own.user + own.system,
        machine_busy=busy,
        machine_total=total,
    )


def between(before: Reading, after: Reading) -> dict[str, float]:
    """% of one core per role (and the load generator) from `before` to `after`."""
    wall = max(after.at - before.at, 1e-9)
    shares: dict[str, float] = {}
    for role, pids in after.ticks.items():
        old = before.ticks.get(role, {})
        used = sum(max(0, ticks - old.get(pid, 0)) for pid, ticks in pids.items())
        shares[role] = round(100.0 * used / _TICKS / wall, 1)
    shares[LOAD_GENERATOR] = round(100.0 * max(0.0, after.reaped_s - before.reaped_s) / wall, 1)
    return shares


def runner_share(before: Reading, after: Reading) -> float:
    """The runner's own CPU (its Python clients) as a share of one core (0-1)."""
    return (after.own_s - before.own_s) / max(after.at - before.at, 1e-9)


def machine_busy(before: Reading, after: Reading) -> float:
    """How busy all the machine's cores were (0-1), whoever used them: other work on the box counts."""
    return (after.machine_busy - before.machine_busy) / max(after.machine_total - before.machine_total, 1)
