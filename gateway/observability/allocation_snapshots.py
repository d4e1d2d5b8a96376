"""Allocation snapshots on demand: what tracemalloc sees of a running server's Python heap, written to a
directory each time the process gets SIGUSR2, so that memory that grows over hours can be traced to the
lines that allocated it (the soak's memory drift: benchmarks/soak) instead of guessed at.

Opt-in, off by default, and for diagnosis only. Both must hold at startup:

- the process traces allocations: `PYTHONTRACEMALLOC=<frames>` in its environment (Python's own
  variable; 1 frame per allocation is cheap, 10 about halves the throughput), and
- `GATEWAY_TRACEMALLOC_DIR` names a directory (created if missing).

Each SIGUSR2 then writes `<pid>-<n>.tracemalloc` (`tracemalloc.Snapshot.load` reads it) and `<pid>-<n>.json`
(the traced total and peak, tracemalloc's own overhead, when and how long it took): the JSON last, so a
reader that sees it finds the snapshot whole. A snapshot is taken on the event loop and stalls it while
it is written (from tens of milliseconds to about a second, with the heap's size and the frames).
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
        """Startup hook: install the SIGUSR2 handler, unless allocations are not traced (then say how to)."""
        if not tracemalloc.is_tracing():
            _log.warning("allocation_snapshots_off", reason=f"{DIRECTORY_VARIABLE} is set but allocations are "
                         "not traced: start the process with PYTHONTRACEMALLOC=<frames>, e.g. 10")
            return
        loop = asyncio.get_running_loop()
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
            loop.add_signal_handler(SNAPSHOT_SIGNAL, self.take)
        except (OSError, RuntimeError, ValueError) as exc:  # a directory it cannot make; not the main thread
            _log.warning("allocation_snapshots_off", reason=f"{type(exc).__name__}: {exc}")
            return
        self._loop = loop
        _log.info("allocation_snapshots_on", directory=str(self.directory), signal=SNAPSHOT_SIGNAL.name,
                  frames=tracemalloc.get_traceback_limit(), pid=os.getpid())

    async def stop(self) -> None:
        """Shutdown hook: remove the handler."""
        if self._loop is not None:
            self._loop.remove_signal_handler(SNAPSHOT_SIGNAL)
            self._loop = None

    def take(self) -> Path:
        """Take one snapshot now and write it with its JSON beside it; the snapshot's path."""
        started, wall = time.perf_counter(), time.time()
        snapshot = tracemalloc.take_snapshot()
        traced, peak = tracemalloc.get_traced_memory()
        self.taken += 1
        stem = self.directory / f"{os.getpid()}-{self.taken:04d}"
        path = stem.with_suffix(".tracemalloc")
        snapshot.dump(str(path))
        facts = {
            "snapshot": path.name,
            "time": wall,
            "traced_bytes": traced,
            "traced_peak_bytes": peak,
            "tracemalloc_overhead_bytes": tracemalloc.get_tracemalloc_memory(),
            "frames": tracemalloc.get_traceback_limit(),
            "took_ms": round((time.perf_counter() - started) * 1000, 1),
        }
        partial = stem.with_suffix(".json.partial")
        partial.write_text(json.dumps(facts))
        partial.replace(stem.with_suffix(".json"))
        _log.info("allocation_snapshot", **facts)
        return path
