"""The server's garbage collection once started: the startup heap frozen, young collections rarer."""

from __future__ import annotations

import gc

from gateway.app.gc_tuning import YOUNG_THRESHOLD, freeze_startup_heap


async def test_startup_freezes_the_heap_and_makes_young_collections_rarer() -> None:
    before = gc.get_threshold()
    try:
        await freeze_startup_heap()
        assert gc.get_freeze_count() > 0
        assert gc.get_threshold() == (YOUNG_THRESHOLD, before[1], before[2])
    finally:
        gc.unfreeze()
        gc.set_threshold(*before)
