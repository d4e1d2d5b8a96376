"""Allocation tracking for the soak (`--trace-allocations FRAMES`): the gateway runs with tracemalloc on
(`PYTHONTRACEMALLOC`) and writes a snapshot on each SIGUSR2 (`gateway/observability/allocation_snapshots.py`);
the soak asks for one at the end of warm-up, at intervals, at the end of the load and after the idle.

What the report gets: the traced Python memory at each snapshot and its drift (the same least-squares
slope as RSS's, over the snapshots from the end of warm-up to the end of the load), next to RSS's, and the
allocation sites that grew most between the end of warm-up and the end of the load, grouped by where our
code (gateway/, routing/) made them. RSS that drifts while traced memory does not points below Python's
objects: the allocator's arenas and fragmentation, or native libraries (uvloop, httptools, aiohttp's
C parser, hiredis).
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import time
import tracemalloc
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from benchmarks.soak.figures import drift_pct_per_h

DIRECTORY_VARIABLE = "GATEWAY_TRACEMALLOC_DIR"
SNAPSHOT_WAIT_S = 120.0
MIN_SNAPSHOT_GAP_S = 20.0
"""Snapshots stall the gateway (about a second at 10 frames): at most one this often."""
TOP_SITES = 15
PROJECT_DIRS = ("gateway", "routing")
IGNORED_FILES = ("<frozen importlib._bootstrap>", "<frozen importlib._bootstrap_external>", "<unknown>",
                 tracemalloc.__file__)  # fmt: skip


@dataclass(slots=True)
class Snapshot:
    label: str
    """`warm` (the end of warm-up), `load`, `end of load` or `idle`."""
    t_s: float
    """Seconds since the load started."""
    path: str
    traced_mb: float
    overhead_mb: float
    """tracemalloc's own memory (its traces): RSS carries it too."""
    took_ms: float


def directory_of(workdir: Path) -> Path:
    return workdir / "tracemalloc"


def gateway_env(frames: int | None, directory: Path) -> dict[str, str]:
    """What the gateway's environment needs for allocator stats (and, with `frames`, snapshots of `frames`
    frames) to `directory`."""
    traced = {} if frames is None else {"PYTHONTRACEMALLOC": str(frames)}
    return {DIRECTORY_VARIABLE: str(directory), **traced}


def _written(directory: Path) -> list[Path]:
    """The JSON files written so far, oldest first."""
    return sorted(directory.glob("*.json")) if directory.exists() else []


async def ask(pid: int, directory: Path, wait_s: float = SNAPSHOT_WAIT_S) -> dict[str, Any]:
    """Signal the gateway and wait for the JSON it writes (last, after any snapshot): its facts."""
    before = len(await asyncio.to_thread(_written, directory))
    os.kill(pid, signal.SIGUSR2)
    deadline = time.monotonic() + wait_s
    while time.monotonic() < deadline:
        found = await asyncio.to_thread(_written, directory)
        if len(found) > before:
            facts: dict[str, Any] = json.loads(await asyncio.to_thread(found[-1].read_text))
            return facts
        await asyncio.sleep(0.05)
    raise RuntimeError(f"the gateway wrote no allocation stats in {wait_s:g} s (GATEWAY_TRACEMALLOC_DIR unset?)")


async def take(pid: int, directory: Path, label: str, t_s: float) -> Snapshot:
    """A tracemalloc snapshot of the (traced) gateway."""
    facts = await ask(pid, directory)
    return Snapshot(label, round(t_s, 1), str(directory / facts["snapshot"]), round(facts["traced_bytes"] / 2**20, 2),
                    round(facts["tracemalloc_overhead_bytes"] / 2**20, 2), facts["took_ms"])  # fmt: skip


def _short(filename: str) -> str:
    """A frame's file, relative to site-packages, the standard library or the repository."""
    if "/site-packages/" in filename:
        return filename.split("/site-packages/", 1)[1]
    if "/lib/python3" in filename:
        return "stdlib/" + filename.split("/lib/python3", 1)[1].split("/", 1)[-1]
    for top in PROJECT_DIRS:
        if f"/{top}/" in filename:
            return top + "/" + filename.split(f"/{top}/", 1)[1]
    return filename


def _is_ours(filename: str) -> bool:
    return any(f"/{top}/" in filename and "/site-packages/" not in filename for top in PROJECT_DIRS)


def _site(traceback: tracemalloc.Traceback) -> tuple[str, str]:
    """(the innermost frame in our code, or `-`; the innermost frame): how growth is grouped."""
    frames = list(reversed(traceback))  # tracemalloc's order is the oldest call first
    ours = next((f for f in frames if _is_ours(f.filename)), None)
    inner = frames[0]
    our_frame = "-" if ours is None else f"{_short(ours.filename)}:{ours.lineno}"
    return our_frame, f"{_short(inner.filename)}:{inner.lineno}"


def _load(path: str) -> tracemalloc.Snapshot:
    return tracemalloc.Snapshot.load(path).filter_traces(
        [tracemalloc.Filter(False, name) for name in IGNORED_FILES]
    )


@dataclass(slots=True)
class Site:
    """Live memory allocated at one site (`our_frame`, `allocated_at`), summed over its tracebacks."""

    our_frame: str
    allocated_at: str
    size_diff_kb: float = 0.0
    count_diff: int = 0
    size_kb: float = 0.0
    count: int = 0
    traceback: list[str] = field(default_factory=list)
    """The first traceback of the site that grew (innermost frame first)."""

    def add(self, diff: tracemalloc.StatisticDiff) -> None:
        self.size_diff_kb += diff.size_diff / 1024
        self.count_diff += diff.count_diff
        self.size_kb += diff.size / 1024
        self.count += diff.count
        if not self.traceback and diff.size_diff > 0:
            self.traceback = [f"{_short(f.filename)}:{f.lineno}" for f in reversed(diff.traceback)]


def growth(base_path: str, end_path: str, top: int = TOP_SITES) -> list[Site]:
    """The allocation sites whose live memory grew most from `base_path` to `end_path`."""
    base, end = _load(base_path), _load(end_path)
    sites: dict[tuple[str, str], Site] = {}
    for diff in end.compare_to(base, "traceback"):
        key = _site(diff.traceback)
        sites.setdefault(key, Site(*key)).add(diff)
    ranked = sorted(sites.values(), key=lambda site: site.size_diff_kb, reverse=True)[:top]
    for site in ranked:
        site.size_diff_kb, site.size_kb = round(site.size_diff_kb, 1), round(site.size_kb, 1)
    return ranked


def report(snapshots: list[Snapshot], warmup_s: float) -> dict[str, object]:
    """The traced memory over the run, its drift, and the sites that grew from warm to the end of the load."""
    loaded = [s for s in snapshots if s.label in ("warm", "load", "end of load")]
    warm = next((s for s in snapshots if s.label == "warm"), None)
    end = next((s for s in snapshots if s.label == "end of load"), None)
    result: dict[str, object] = {
        "snapshots": [asdict(s) for s in snapshots],
        "traced_warm_mb": None if warm is None else warm.traced_mb,
        "traced_end_of_load_mb": None if end is None else end.traced_mb,
        "traced_drift_pct_per_h": drift_pct_per_h([(s.t_s, s.traced_mb) for s in loaded], warmup_s),
    }
    if warm is not None and end is not None:
        result["growth_warm_to_end_of_load"] = [asdict(site) for site in growth(warm.path, end.path)]
    return result


TRACED_RSS_CAVEAT = (
    "RSS of a traced run carries tracemalloc's own tables and each snapshot's copy of them (its traced peak), "
    "so its drift is no measure of the gateway's: judge RSS on an untraced run"
)


def verdict(traced_drift: float | None, threshold: float) -> str:
    """What the traced Python memory's drift says."""
    if traced_drift is None:
        return "not enough snapshots for the traced memory's drift"
    if traced_drift < threshold:
        return (f"traced Python memory drifts {traced_drift:g} %/h (under {threshold:g} %/h): no Python objects "
                "pile up; RSS that drifts on an untraced run is then memory below them (the allocator's arenas "
                f"and fragmentation, or native libraries). {TRACED_RSS_CAVEAT}")
    return (f"traced Python memory drifts {traced_drift:g} %/h: Python objects pile up; the sites below grew most. "
            f"{TRACED_RSS_CAVEAT}")


def markdown(result: dict[str, object], threshold: float) -> list[str]:
    """The allocation-tracking part of the soak's RESULTS.md section."""
    traced = result.get("traced_drift_pct_per_h")
    lines = [
        "",
        "#### Allocation tracking (tracemalloc)",
        "",
        verdict(traced if isinstance(traced, int | float) else None, threshold) + ".",
        f"Traced Python memory: {result.get('traced_warm_mb')} MB at the end of warm-up, "
        f"{result.get('traced_end_of_load_mb')} MB at the end of the load.",
    ]
    sites = result.get("growth_warm_to_end_of_load")
    if isinstance(sites, list) and sites:
        lines += [
            "",
            "Sites whose live memory grew most from the end of warm-up to the end of the load (grouped by the "
            "innermost frame in gateway/ or routing/):",
            "",
            "| our frame | allocated at | grew KB | grew blocks | live KB | live blocks |",
            "|---|---|---:|---:|---:|---:|",
            *(f"| `{s['our_frame']}` | `{s['allocated_at']}` | {s['size_diff_kb']:,} | {s['count_diff']:,} | "
              f"{s['size_kb']:,} | {s['count']:,} |" for s in sites if isinstance(s, dict)),
        ]  # fmt: skip
    return lines
