"""How much the rest of the machine ran during a measurement, to tell noise from a real change.

Two figures per run, from /proc, as a percentage of one core over the run's wall time:
- other CPU: the machine's busy time (user, nice, system, irq, softirq of /proc/stat) minus the
  benchmark's own (the runner and everything it started, wrk included, and kernel threads, which
  mostly do the loopback traffic's work). Tick accounting differs slightly between the two sources,
  so a few percent is noise of the measure itself.
- steal: the time the hypervisor ran something else on the machine's vCPUs.
On a shared 2-core box a few tens of percent already move the figures.
"""

from __future__ import annotations

import os
import resource
import time
from dataclasses import dataclass

from benchmarks.harness import proc_stats

_TICKS = os.sysconf("SC_CLK_TCK")
_KTHREADD = 2


@dataclass(frozen=True, slots=True)
class Snapshot:
    at: float
    busy_ticks: int
    steal_ticks: int
    own_ticks: dict[int, int]
    """pid -> utime + stime of the runner, its live descendants and the kernel threads."""
    reaped_s: float
    """CPU seconds of the runner's reaped children (wrk, once a run is over)."""


@dataclass(frozen=True, slots=True)
class Interference:
    other_cpu_pct: float
    """CPU used by processes outside the benchmark, % of one core."""
    steal_pct: float
    """Time the hypervisor gave the machine's vCPUs to others, % of one core."""


def _processes() -> dict[int, tuple[int, int]]:
    """pid -> (parent pid, utime + stime in ticks)."""
    table: dict[int, tuple[int, int]] = {}
    for pid in proc_stats.all_pids():
        fields = proc_stats.stat_fields(pid)
        if fields is not None:
            table[pid] = (int(fields[1]), int(fields[11]) + int(fields[12]))
    return table


def _own_ticks() -> dict[int, int]:
    processes = _processes()
    children: dict[int, list[int]] = {}
    for pid, (ppid, _) in processes.items():
        children.setdefault(ppid, []).append(pid)
    own: dict[int, int] = {}
    todo = [os.getpid(), _KTHREADD]
    while todo:
        pid = todo.pop()
        if pid in processes:
            own[pid] = processes[pid][1]
        todo.extend(children.get(pid, []))
    return own


def _machine_ticks() -> tuple[int, int]:
    """(busy, steal) ticks summed over all CPUs."""
    with open("/proc/stat") as stat:
        fields = [int(f) for f in stat.readline().split()[1:]]
    fields += [0] * (8 - len(fields))
    user, nice, system, _idle, _iowait, irq, softirq, steal = fields[:8]
    return user + nice + system + irq + softirq, steal


def snapshot() -> Snapshot:
    busy, steal = _machine_ticks()
    reaped = resource.getrusage(resource.RUSAGE_CHILDREN)
    return Snapshot(
        at=time.monotonic(),
        busy_ticks=busy,
        steal_ticks=steal,
        own_ticks=_own_ticks(),
        reaped_s=reaped.ru_utime + reaped.ru_stime,
    )


def between(before: Snapshot, after: Snapshot) -> Interference:
    """What ran beside the benchmark from `before` to `after`."""
    wall = max(after.at - before.at, 1e-9)
    own = sum(max(0, ticks - before.own_ticks.get(pid, 0)) for pid, ticks in after.own_ticks.items())
    own_s = own / _TICKS + (after.reaped_s - before.reaped_s)
    busy_s = (after.busy_ticks - before.busy_ticks) / _TICKS
    steal_s = max(0, after.steal_ticks - before.steal_ticks) / _TICKS
    return Interference(
        other_cpu_pct=100.0 * max(0.0, busy_s - own_s) / wall,
        steal_pct=100.0 * steal_s / wall,
    )
