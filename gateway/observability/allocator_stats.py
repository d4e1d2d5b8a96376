"""Where a process's memory sits, as the allocators see it: resident memory, glibc malloc's heap (in use, free
but kept, mmapped blocks, what `malloc_trim` could give back from the top) and Python's own allocator
(pymalloc: the blocks it has handed out, the bytes they hold, the 1 MiB arenas it keeps for them). Read
by `allocation_snapshots` on SIGUSR2: RSS that grows while what is in use does not is memory the
allocators keep (fragmentation), not objects that pile up.
"""

from __future__ import annotations

import ctypes
import gc
import os
import sys
import tempfile
from collections.abc import Callable
from functools import cache
from typing import cast

_PAGE = os.sysconf("SC_PAGE_SIZE")


class _MallInfo2(ctypes.Structure):
    """glibc's `struct mallinfo2` (glibc 2.33 on): sizes in bytes, over every malloc arena."""

    _fields_ = [(name, ctypes.c_size_t) for name in (
        "arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks", "fordblks", "keepcost")]


@cache
def _mallinfo2() -> Callable[[], _MallInfo2] | None:
    """glibc's `mallinfo2`, or None (another C library, or an older glibc)."""
    try:
        function = ctypes.CDLL(None).mallinfo2
    except (AttributeError, OSError):
        return None
    function.restype = _MallInfo2
    function.argtypes = []
    return cast("Callable[[], _MallInfo2]", function)


def resident_bytes() -> int:
    with open("/proc/self/statm", encoding="ascii") as statm:
        return int(statm.read().split()[1]) * _PAGE


_PYMALLOC_FIGURES = {
    "# arenas allocated current": "pymalloc_arenas",
    "# arenas highwater mark": "pymalloc_arenas_highwater",
    "# bytes in allocated blocks": "pymalloc_allocated_bytes",
    "# bytes in available blocks": "pymalloc_free_block_bytes",
}


def pymalloc_stats() -> dict[str, int]:
    """Python's allocator, from `sys._debugmallocstats()` (the only place it says how many 1 MiB arenas it
    holds against the bytes its blocks hold): that function writes to C's stderr, so stderr is pointed at
    a temporary file while it runs (on the event loop's thread, which writes the log lines: none is lost;
    another thread writing to stderr meanwhile would write into the file). Its unused pools are
    `pymalloc_unused_pool_bytes`; 0s where the output is not the expected one."""
    sys.stderr.flush()
    with tempfile.TemporaryFile() as out:
        saved = os.dup(2)
        try:
            os.dup2(out.fileno(), 2)
            sys._debugmallocstats()
        finally:
            os.dup2(saved, 2)
            os.close(saved)
        out.seek(0)
        text = out.read().decode("ascii", errors="replace")
    figures = dict.fromkeys([*_PYMALLOC_FIGURES.values(), "pymalloc_unused_pool_bytes"], 0)
    for line in text.splitlines():
        label, _, value = line.partition("=")
        name = _PYMALLOC_FIGURES.get(label.strip())
        if name is None and label.strip().endswith("unused pools * 16384 bytes"):
            name = "pymalloc_unused_pool_bytes"
        if name is not None and value.strip().replace(",", "").isdigit():
            figures[name] = int(value.strip().replace(",", ""))
    return figures


def allocator_stats() -> dict[str, int | None]:
    """The process's memory by allocator, in bytes (glibc's fields None where glibc's `mallinfo2` is missing)."""
    mallinfo2 = _mallinfo2()
    info = mallinfo2() if mallinfo2 is not None else None
    return {
        "rss_bytes": resident_bytes(),
        "malloc_in_use_bytes": None if info is None else info.uordblks,
        "malloc_free_kept_bytes": None if info is None else info.fordblks,
        "malloc_heap_bytes": None if info is None else info.arena,
        "malloc_mmapped_bytes": None if info is None else info.hblkhd,
        "malloc_trimmable_bytes": None if info is None else info.keepcost,
        "python_blocks": sys.getallocatedblocks(),
        "gc_objects": len(gc.get_objects()),
        **pymalloc_stats(),
    }
