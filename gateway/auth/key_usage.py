"""What each API key used, per UTC day (and per model): requests, prompt and completion tokens, errors.

A request is counted when it finishes (`gateway.http.request_observer`), by `UsageTally.count`: one
dict lookup and four additions, nothing awaited, so the hot path stays as it was. Where the counts go
from there is the store's business: `MemoryUsageStore` keeps them (one process), `RedisUsageStore`
adds them to Redis every few seconds in the background (every replica's counts summed there).

Days are whole UTC days, numbered from the epoch (`day_of`) so that counting one costs a division.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Protocol

import msgspec

DAY_S = 86400
RETENTION_DAYS = 35
"""How many days of usage are kept (and may be asked for): a month and a few days to spare."""
FIELDS = ("requests", "prompt_tokens", "completion_tokens", "errors")
"""The counts of one key, day and model, in the order a tally keeps them."""

Counts = list[int]
"""A tally's counts, in `FIELDS` order."""
Slot = tuple[str, int, str]
"""(key id, day number, model): what one set of counts is for (model "": the request named none)."""


def day_of(unix_s: float) -> int:
    return int(unix_s // DAY_S)


def day_name(day: int) -> str:
    """The ISO date of day number `day` (UTC)."""
    return (dt.date(1970, 1, 1) + dt.timedelta(days=day)).isoformat()


class UsageTally:
    """Counts by day, then (key id, model), in memory. `clock`: unix time. `retention_days`: days older
    than this are dropped when a new day starts (None: kept until taken)."""

    def __init__(self, *, clock: Callable[[], float] = time.time, retention_days: int | None = None) -> None:
        self._clock = clock
        self._retention_days = retention_days
        self._days: dict[int, dict[tuple[str, str], Counts]] = {}
        self._today = day_of(clock())
        self._today_counts = self._days.setdefault(self._today, {})

    def count(self, key_id: str, model: str, prompt_tokens: int, completion_tokens: int, error: bool) -> None:
        """One finished request of `key_id` (called per request: keep it this small)."""
        day = int(self._clock() // DAY_S)
        if day != self._today:
            self._new_day(day)
        counts = self._today_counts.get((key_id, model))
        if counts is None:
            self._today_counts[(key_id, model)] = [1, prompt_tokens, completion_tokens, int(error)]
        else:
            counts[0] += 1
            counts[1] += prompt_tokens
            counts[2] += completion_tokens
            counts[3] += error

    def _new_day(self, day: int) -> None:
        """Count into `day` from now on; drop the days past the retention (a few dicts, not every count)."""
        self._today = day
        self._today_counts = self._days.setdefault(day, {})
        if self._retention_days is not None:
            for old in [d for d in self._days if d <= day - self._retention_days]:
                del self._days[old]

    def take(self) -> dict[Slot, Counts]:
        """Every count so far, leaving the tally empty (what a flush sends)."""
        taken, self._days = self._days, {}
        self._today_counts = self._days.setdefault(self._today, {})
        return {(key_id, day, model): counts for day, of_day in taken.items()
                for (key_id, model), counts in of_day.items()}

    def add(self, counts: Mapping[Slot, Counts]) -> None:
        """Add `counts` back (a flush that failed): nothing counted is lost."""
        for (key_id, day, model), more in counts.items():
            mine = self._days.setdefault(day, {}).setdefault((key_id, model), [0] * len(FIELDS))
            for index, value in enumerate(more):
                mine[index] += value

    def of_key(self, key_id: str) -> dict[tuple[int, str], Counts]:
        """The counts of one key by (day, model)."""
        return {(day, model): counts for day, of_day in self._days.items()
                for (key, model), counts in of_day.items() if key == key_id}

    def today(self) -> int:
        return day_of(self._clock())


class ModelUsage(msgspec.Struct, kw_only=True):
    requests: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    errors: int = 0
    """Requests answered with a 4xx or 5xx status, or left by their client (499)."""


class DayUsage(msgspec.Struct, kw_only=True):
    """One key's usage on one UTC day: the totals, and the same per model."""

    day: str
    """The ISO date (UTC)."""
    requests: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    errors: int = 0
    models: dict[str, ModelUsage] = {}


def usage_rows(first_day: int, last_day: int, counts: Iterable[tuple[int, str, Counts]]) -> list[DayUsage]:
    """A row for every day from `first_day` to `last_day` (oldest first; zeros where nothing was used),
    from (day, model, counts) triples (the same day and model may come more than once: they are summed)."""
    rows = {day: DayUsage(day=day_name(day), models={}) for day in range(first_day, last_day + 1)}
    for day, model, values in counts:
        row = rows.get(day)
        if row is None:
            continue
        per_model = row.models.setdefault(model, ModelUsage())
        for name, value in zip(FIELDS, values, strict=True):
            setattr(row, name, getattr(row, name) + value)
            setattr(per_model, name, getattr(per_model, name) + value)
    return list(rows.values())


class UsageStore(Protocol):
    """Where usage per key and day is kept (`gateway.auth.memory_usage_store`, `.redis_usage_store`)."""

    def count(self, key_id: str, model: str, prompt_tokens: int, completion_tokens: int, error: bool) -> None:
        """One finished request (synchronous and in memory: it runs once per request)."""
        ...

    async def days(self, key_id: str, days: int) -> list[DayUsage]:
        """The last `days` UTC days of `key_id`'s usage (today included, oldest first)."""
        ...

    async def start(self) -> None:
        """Begin any background work (on the server's event loop)."""
        ...

    async def close(self) -> None:
        """Stop the background work, writing what is still in memory."""
        ...
