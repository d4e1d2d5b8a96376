"""Where a process's memory sits, as the allocators see it: resident memory, glibc malloc's heap (in use, free
but kept, mmapped blocks, what `malloc_trim` could give back from the top) and the blocks Python's own
allocator (pymalloc) has handed out. Read by `allocation_snapshots` on SIGUSR2: RSS that grows while what
is in use does not is memory the allocators keep (fragmentation), not objects that pile up.
"""

from __future__ import annotations

import ctypes
import gc
import os
import sys
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
    }
