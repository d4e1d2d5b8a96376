"""Allocation snapshots on demand: where a running server's memory sits, written to a directory each time the
process gets SIGUSR2, so that memory that grows over hours can be traced to what holds it (the soak's
memory drift: benchmarks/soak) instead of guessed at.

Opt-in, off by default, for diagnosis. `GATEWAY_TRACEMALLOC_DIR` names the directory (created if missing);
each SIGUSR2 then writes `<pid>-<n>.json`: resident memory, glibc malloc's heap (in use, free but kept,
mmapped) and Python's allocated blocks (`allocator_stats`), cheap enough to ask for every few seconds.
When the process also traces allocations (`PYTHONTRACEMALLOC=<frames>`, Python's own variable, set at
startup) each SIGUSR2 first writes `<pid>-<n>.tracemalloc` (`tracemalloc.Snapshot.load` reads it) and
the JSON adds the traced total and peak and tracemalloc's own overhead. The JSON is written last (under
a temporary name, then renamed), so a reader that sees it finds the snapshot whole. Tracing is costly
(at 10 frames the soak's capacity fell by 89 %), and a snapshot is taken on the event loop, which it
stalls while it is written (about a second at 10 frames).
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import time
import tracemalloc
from collections.abc import Mapping
from pathlib import Path

import structlog

from gateway.observability.allocator_stats import allocator_stats

_log = structlog.get_logger("gateway.observability.allocation_snapshots")

DIRECTORY_VARIABLE = "GATEWAY_TRACEMALLOC_DIR"
SNAPSHOT_SIGNAL = signal.SIGUSR2


class AllocationSnapshots:
    """Writes a tracemalloc snapshot to `directory` on each SIGUSR2 (`start` installs the handler on the
    running loop, `stop` removes it)."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.taken = 0
        self._loop: asyncio.AbstractEventLoop | None = None

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> AllocationSnapshots | None:
        """The snapshots `GATEWAY_TRACEMALLOC_DIR` asks for, or None (the default: unset)."""
        directory = env.get(DIRECTORY_VARIABLE, "").strip()
        return cls(Path(directory)) if directory else None

    async def start(self) -> None:
        """Startup hook: install the SIGUSR2 handler (the event loop's, so it runs between callbacks)."""
        loop = asyncio.get_running_loop()
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
            loop.add_signal_handler(SNAPSHOT_SIGNAL, self.take)
        except (OSError, RuntimeError, ValueError) as exc:  # a directory it cannot make; not the main thread
            _log.warning("allocation_snapshots_off", reason=f"{type(exc).__name__}: {exc}")
            return
        self._loop = loop
        frames = tracemalloc.get_traceback_limit() if tracemalloc.is_tracing() else 0
        _log.info("allocation_snapshots_on", directory=str(self.directory), signal=SNAPSHOT_SIGNAL.name,
                  frames=frames, pid=os.getpid(),
                  writes="allocator stats and tracemalloc snapshots" if frames else
                  "allocator stats (start with PYTHONTRACEMALLOC=<frames> for tracemalloc snapshots too)")

    async def stop(self) -> None:
        """Shutdown hook: remove the handler."""
        if self._loop is not None:
            self._loop.remove_signal_handler(SNAPSHOT_SIGNAL)
            self._loop = None

    def take(self) -> Path:
        """Write the allocator stats and, when allocations are traced, a snapshot first; the JSON's path."""
        started, wall = time.perf_counter(), time.time()
        self.taken += 1
        stem = self.directory / f"{os.getpid()}-{self.taken:04d}"
        facts: dict[str, object] = {"time": wall, **allocator_stats()}
        if tracemalloc.is_tracing():
            facts |= self._snapshot(stem.with_suffix(".tracemalloc"))
        facts["took_ms"] = round((time.perf_counter() - started) * 1000, 1)
        partial = stem.with_suffix(".json.partial")
        partial.write_text(json.dumps(facts))
        partial.replace(stem.with_suffix(".json"))
        _log.info("allocation_snapshot", **facts)
        return stem.with_suffix(".json")

    @staticmethod
    def _snapshot(path: Path) -> dict[str, object]:
        snapshot = tracemalloc.take_snapshot()
        traced, peak = tracemalloc.get_traced_memory()
        snapshot.dump(str(path))
        return {
            "snapshot": path.name,
            "traced_bytes": traced,
            "traced_peak_bytes": peak,
            "tracemalloc_overhead_bytes": tracemalloc.get_tracemalloc_memory(),
            "frames": tracemalloc.get_traceback_limit(),
        }
