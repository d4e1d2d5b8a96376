"""Usage per key and day in Redis, summed over every replica.

Requests are counted in this process's memory (`UsageTally`); every `flush_s` seconds a background
task sends what was counted since the last flush as one pipeline of HINCRBY, and once more when the
gateway stops. So a request costs no Redis call, and each replica's counts reach Redis within
`flush_s`. A flush that fails (Redis down) puts its counts back, to go with the next one (so a flush
that Redis applied but whose answer was lost, a timeout, is counted twice: usage errs on the high side).

Layout (`prefix` defaults to `llmgw:`; the key id in braces is a Redis Cluster hash tag, so all the
days of a key live on one node and a read of N days is one round trip):

    llmgw:usage:{<key id>}:<YYYY-MM-DD>   hash   <field>:<model> -> count, for each field of
                                                 `FIELDS` and model ("" when the request named none)

Each hash expires `RETENTION_DAYS` after its last write. A read sums Redis's counts and those of this
process not yet flushed; it waits for a flush under way, so a batch is never counted twice or missed.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable, Iterator, Mapping

import structlog

from gateway.auth.key_usage import (
    DAY_S,
    FIELDS,
    RETENTION_DAYS,
    Counts,
    DayUsage,
    Slot,
    UsageTally,
    day_name,
    usage_rows,
)
from gateway.errors import StoreUnavailable
from gateway.shared_state.redis_client import DEFAULT_KEY_PREFIX, RedisClient, translate_redis_errors

DEFAULT_FLUSH_S = 5.0
_log = structlog.get_logger("gateway.usage")


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


class RedisUsageStore:
    """A `UsageStore` on `redis` (built by `gateway.shared_state.redis_client.connect_redis`, closed by
    `close`). `flush_s`: seconds between flushes; `clock`: unix time."""

    def __init__(self, redis: RedisClient, prefix: str = DEFAULT_KEY_PREFIX, *, flush_s: float = DEFAULT_FLUSH_S,
                 clock: Callable[[], float] = time.time) -> None:
        self._redis = redis
        self._prefix = prefix
        self._flush_s = flush_s
        self._clock = clock
        self._pending = UsageTally(clock=clock)
        self.count = self._pending.count
        """`UsageStore.count`, bound once (the per-request call goes straight to the tally)."""
        self._flushing = asyncio.Lock()
        self._task: asyncio.Task[None] | None = None
        self._failing = False

    def _name(self, key_id: str, day: int) -> str:
        return f"{self._prefix}usage:{{{key_id}}}:{day_name(day)}"

    async def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._flush_every_interval(), name="usage-flush")

    async def _flush_every_interval(self) -> None:
        while True:
            await asyncio.sleep(self._flush_s)
            await self._flush_logging_failures()

    async def _flush_logging_failures(self) -> None:
        """Flush; log the first failure of a run of them and the recovery (not one line per interval)."""
        try:
            await self.flush()
        except StoreUnavailable as exc:
            if not self._failing:
                _log.warning("usage_flush_failed", error=exc.message, kept="in memory")
            self._failing = True
            return
        if self._failing:
            _log.info("usage_flush_recovered")
        self._failing = False

    async def flush(self) -> None:
        """Send what was counted since the last flush (raises `StoreUnavailable`, the counts kept)."""
        async with self._flushing:
            batch = self._pending.take()
            if not batch:
                return
            try:
                await self._send(batch)
            except StoreUnavailable:
                self._pending.add(batch)
                raise

    async def _send(self, batch: Mapping[Slot, Counts]) -> None:
        names: set[str] = set()
        with translate_redis_errors("flush key usage"):
            async with self._redis.pipeline(transaction=False) as pipe:
                for (key_id, day, model), counts in batch.items():
                    name = self._name(key_id, day)
                    names.add(name)
                    for field, value in zip(FIELDS, counts, strict=True):
                        if value:
                            pipe.hincrby(name, f"{field}:{model}", value)
                for name in names:
                    pipe.expire(name, RETENTION_DAYS * DAY_S)
                await pipe.execute()

    async def days(self, key_id: str, days: int) -> list[DayUsage]:
        today = self._pending.today()
        first = today - days + 1
        async with self._flushing:  # a batch under way is in neither Redis nor the tally until it is sent
            with translate_redis_errors("read key usage"):
                async with self._redis.pipeline(transaction=False) as pipe:
                    for day in range(first, today + 1):
                        pipe.hgetall(self._name(key_id, day))
                    stored = await pipe.execute()
            pending = self._pending.of_key(key_id)
        counts = list(_parse(first, stored))
        counts += [(day, model, values) for (day, model), values in pending.items()]
        return usage_rows(first, today, counts)

    async def close(self) -> None:
        """Stop flushing, flush what is left (logged if Redis is down: those counts are lost), close."""
        async with self._flushing:  # never cut a flush short: its counts could be sent twice
            if self._task is not None:
                self._task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await self._task
                self._task = None
        try:
            await self.flush()
        except StoreUnavailable as exc:
            _log.warning("usage_flush_failed", error=exc.message, kept="no (stopping)")
        with translate_redis_errors("close"):
            await self._redis.aclose()


def _parse(first_day: int, hashes: list[dict[bytes | str, bytes | str]]) -> Iterator[tuple[int, str, Counts]]:
    """(day, model, counts) from the days' hashes, read in order from `first_day`."""
    for offset, fields in enumerate(hashes):
        for raw_field, raw_value in fields.items():
            field, _, model = _text(raw_field).partition(":")
            if field in FIELDS:
                counts = [0] * len(FIELDS)
                counts[FIELDS.index(field)] = int(raw_value)
                yield first_day + offset, model, counts
