"""Garbage collection for a long-running server: what exists once the app has started (modules, the app,
catalogs, compiled patterns: about 100,000 objects) is moved out of the collector's reach with
`gc.freeze()`, so the collections that requests trigger walk only what requests allocate. Full
collections over the whole heap stalled the event loop for tens of milliseconds (p99 100 ms at
concurrency 8 before, about 15 ms after, on the benchmark box) and cost about a tenth of the CPU."""

from __future__ import annotations

import gc

YOUNG_THRESHOLD = 20_000
"""Allocations (less deallocations) between young collections: Python's 700 made each new stream's
setup (aiohttp's request and response, about a thousand objects that live as long as the stream) set
off collections that, with hundreds of streams open, walked every stream's objects: 8 % of the CPU at
500 streams (benchmarks/streaming_scale)."""


async def freeze_startup_heap() -> None:
    """An `on_startup` hook, run last: collect what startup left behind, then freeze the rest."""
    gc.collect()
    gc.freeze()
    _, older, oldest = gc.get_threshold()
    gc.set_threshold(YOUNG_THRESHOLD, older, oldest)
