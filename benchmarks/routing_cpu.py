"""CPU load of one routing-benchmark run, from /proc (used by `benchmarks.routing_bench`; run that).

`CpuMeter.start()` before the load and `stop()` after it give: how busy the machine's cores were
(share of all cores, from /proc/stat, whoever used them: other engineers' work counts too), and the
CPU time the run's own process groups used (the gateway, the simulators, this client), as a share of
one core. A machine near 100% busy delays every process, so a run's TTFT then says more about the box
than about the policy.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

_TICKS = os.sysconf("SC_CLK_TCK")


def _machine_jiffies() -> tuple[int, int]:
    """(busy, total) jiffies of all cores since boot."""
    fields = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)  # idle + iowait
    total = sum(fields[:8])  # guest time is already counted in user
    return total - idle, total


def group_cpu_seconds(pgid: int) -> float:
    """CPU seconds (user + system) used so far by the live processes of process group `pgid`."""
    seconds = 0.0
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError, ValueError, IndexError):
            stat = (entry / "stat").read_text()
            after = stat[stat.rindex(")") + 2:].split()  # fields from the 3rd (state) on
            if int(after[2]) == pgid:  # field 5: the process group
                seconds += (int(after[11]) + int(after[12])) / _TICKS  # fields 14, 15: utime, stime
    return seconds


@dataclass
class CpuMeter:
    """Machine and per-group CPU use between `start` and `stop`."""

    groups: Mapping[str, Sequence[int]] = field(default_factory=dict)
    """Label -> process group ids (a benchmark child's pid: each child leads its own group)."""
    _wall: float = 0.0
    _machine: tuple[int, int] = (0, 0)
    _own: float = 0.0
    _group_start: dict[str, float] = field(default_factory=dict)

    def start(self) -> None:
        self._wall = time.monotonic()
        self._machine = _machine_jiffies()
        times = os.times()
        self._own = times.user + times.system
        self._group_start = {label: self._seconds(pgids) for label, pgids in self.groups.items()}

    def stop(self) -> dict[str, float]:
        """`machine_busy` (0-1, of all cores), `load_average`, and per label (plus `client`) the CPU
        used as a share of one core."""
        wall = max(time.monotonic() - self._wall, 1e-9)
        busy, total = _machine_jiffies()
        times = os.times()
        result = {
            "machine_busy": round((busy - self._machine[0]) / max(total - self._machine[1], 1), 3),
            "load_average": round(os.getloadavg()[0], 2),
            "client_core_share": round((times.user + times.system - self._own) / wall, 3),
        }
        for label, pgids in self.groups.items():
            result[f"{label}_core_share"] = round((self._seconds(pgids) - self._group_start[label]) / wall, 3)
        return result

    @staticmethod
    def _seconds(pgids: Sequence[int]) -> float:
        return sum(group_cpu_seconds(pgid) for pgid in pgids)
