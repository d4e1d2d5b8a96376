"""Where the CPU went during one measurement: the gateway, the upstream, Redis and the load generator.

Each role is a process tree (its root's pid); the load generator (wrk, the open-loop client) is a child
of the runner that exits when its run ends, so its CPU is read from the runner's reaped children. The
figures are % of one core over the measurement's wall time: on a 2-core box the roles add up to at most
200 %, which is what limits a run where the gateway has more than one process.
"""

from __future__ import annotations

import os
import resource
import time
from collections.abc import Mapping
from dataclasses import dataclass

from benchmarks import procs

_TICKS = os.sysconf("SC_CLK_TCK")
LOAD_GENERATOR = "load generator"


@dataclass(frozen=True, slots=True)
class Reading:
    at: float
    ticks: dict[str, dict[int, int]]
    """role -> pid -> utime + stime (ticks) of every live process of the role's tree."""
    reaped_s: float


def _process_ticks(pid: int) -> int:
    fields = procs.stat_fields(pid)
    return 0 if fields is None else int(fields[11]) + int(fields[12])


def read(roots: Mapping[str, int]) -> Reading:
    """A reading of each role's tree (blocking: call it with asyncio.to_thread)."""
    ticks = {role: {pid: _process_ticks(pid) for pid in procs.process_tree(root)} for role, root in roots.items()}
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return Reading(at=time.monotonic(), ticks=ticks, reaped_s=usage.ru_utime + usage.ru_stime)


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
