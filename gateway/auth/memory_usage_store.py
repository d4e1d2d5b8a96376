"""Usage per key and day in this process's memory: the embedded (single-process) `UsageStore`; the
tally is the store, so nothing runs in the background and nothing outlives the process."""

from __future__ import annotations

import time
from collections.abc import Callable

from gateway.auth.key_usage import RETENTION_DAYS, DayUsage, UsageTally, usage_rows


class MemoryUsageStore:
    """`clock`: unix time. Days older than `RETENTION_DAYS` are dropped as a new day starts."""

    def __init__(self, *, clock: Callable[[], float] = time.time) -> None:
        self._tally = UsageTally(clock=clock, retention_days=RETENTION_DAYS)
        self.count = self._tally.count
        """`UsageStore.count`, bound once (the per-request call goes straight to the tally)."""

    async def days(self, key_id: str, days: int) -> list[DayUsage]:
        today = self._tally.today()
        counts = self._tally.of_key(key_id)
        return usage_rows(today - days + 1, today, ((day, model, c) for (day, model), c in counts.items()))

    async def start(self) -> None:
        pass

    async def close(self) -> None:
        pass
