"""What /proc says about the processes of a run: their process trees, CPU ticks, resident memory and
open file descriptors (Linux only, like the benchmarks)."""

from __future__ import annotations

import os
from pathlib import Path


def stat_fields(pid: int) -> list[str] | None:
    """The fields of /proc/PID/stat after the command name, or None if the process is gone: [0] is
    field 3 (state), [1] the parent pid, [2] the process group, [11] and [12] utime and stime in ticks."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # The command name (field 2) may hold spaces and parentheses: split after the last ')'.
    return stat[stat.rfind(")") + 2 :].split()


def all_pids() -> list[int]:
    """Every process visible in /proc (some may be gone by the time they are read)."""
    return [int(entry.name) for entry in Path("/proc").iterdir() if entry.name.isdigit()]


def _parent_pids() -> dict[int, int]:
    """pid -> parent pid for every process visible in /proc."""
    parents: dict[int, int] = {}
    for pid in all_pids():
        fields = stat_fields(pid)
        if fields is not None:
            parents[pid] = int(fields[1])
    return parents


def process_tree(root: int) -> list[int]:
    """`root` and all its live descendants."""
    children: dict[int, list[int]] = {}
    for pid, ppid in _parent_pids().items():
        children.setdefault(ppid, []).append(pid)
    tree, todo = [], [root]
    while todo:
        pid = todo.pop()
        tree.append(pid)
        todo.extend(children.get(pid, []))
    return tree


def cpu_ticks(pid: int) -> int:
    """utime + stime of `pid` in clock ticks (0 once it is gone)."""
    fields = stat_fields(pid)
    return 0 if fields is None else int(fields[11]) + int(fields[12])


def _status_kb(pid: int, field_name: str) -> int:
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return 0
    for line in status.splitlines():
        if line.startswith(field_name + ":"):
            return int(line.split()[1])
    return 0


def peak_rss_bytes(root: int) -> int:
    """Sum of the peak resident set (VmHWM) of `root` and its live descendants."""
    return sum(_status_kb(pid, "VmHWM") for pid in process_tree(root)) * 1024


def rss_bytes(root: int) -> int:
    """Resident memory (VmRSS) of `root` and its live descendants."""
    return sum(_status_kb(pid, "VmRSS") for pid in process_tree(root)) * 1024


def open_fds(root: int) -> int:
    """Open file descriptors of `root` and its live descendants."""
    total = 0
    for pid in process_tree(root):
        try:
            total += len(os.listdir(f"/proc/{pid}/fd"))
        except OSError:
            continue
    return total
