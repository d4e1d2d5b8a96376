"""The response cache: lookups, coalescing of identical misses, and storing what may be stored.

Coalescing: the first miss for a key leads (it calls the worker); identical requests meanwhile wait
for its answer instead of calling too — in this process through a future, across replicas through a
lock in the store and polling for the entry — for at most `coalesce_wait_s`, then fall through to a
call of their own. The cache never fails a request: a store error is a miss (and a metric).
"""

from __future__ import annotations

import asyncio
import enum
from dataclasses import dataclass

import structlog

from gateway.cache.answers import CachedAnswer, finish_reasons, pack, unpack
from gateway.cache.plan import CachePlan
from gateway.cache.stores import CacheStore
from gateway.errors import StoreUnavailable
from gateway.observability.metrics import GatewayMetrics, LabelledChildren

_log = structlog.get_logger("gateway.cache")


class Role(enum.Enum):
    HIT = "hit"
    LEADER = "leader"
    """Call the worker, then `fill` (always, with None on failure)."""
    FOLLOWER_SERVED = "coalesced"
    FALL_THROUGH = "fall_through"
    """Waited in vain: call the worker, and `fill` too (the entry may still be stored)."""


@dataclass(frozen=True, slots=True)
class Turn:
    role: Role
    answer: CachedAnswer | None = None


class ResponseCache:
    def __init__(self, store: CacheStore, metrics: GatewayMetrics, *, default_ttl: float,
                 coalesce_wait_s: float = 10.0, poll_s: float = 0.05) -> None:
        self.store = store
        self.default_ttl = default_ttl
        self._metrics = metrics
        self._wait = coalesce_wait_s
        self._poll = poll_s
        self._leading: dict[str, asyncio.Future[CachedAnswer | None]] = {}
        self._results = LabelledChildren(metrics.cache)

    def count(self, result: str) -> None:
        self._results(result).inc()
        if result == "hit" or result == "coalesced":
            self._metrics.seed.cache_hits += 1
        elif result == "miss":
            self._metrics.seed.cache_misses += 1

    async def lookup(self, plan: CachePlan) -> CachedAnswer | None:
        try:
            raw = await self.store.get(plan.key)
        except StoreUnavailable as exc:
            _log.warning("cache_unavailable", error=str(exc))
            return None
        return unpack(raw) if raw is not None else None

    async def consult(self, plan: CachePlan) -> Turn:
        """The entry, or this request's turn after a miss, with one store call: follow this process's
        request already asking for the same key; else look up and, on a miss, take the fill lock in one
        step: lead, or (another replica holds the lock) wait for its entry."""
        leading = self._leading.get(plan.key)
        if leading is not None:
            try:
                answer = await asyncio.wait_for(asyncio.shield(leading), self._wait)
            except TimeoutError:
                return Turn(Role.FALL_THROUGH)
            return Turn(Role.FOLLOWER_SERVED, answer) if answer is not None else Turn(Role.FALL_THROUGH)
        future: asyncio.Future[CachedAnswer | None] = asyncio.get_running_loop().create_future()
        self._leading[plan.key] = future
        try:
            raw, locked = await self.store.get_or_lock(plan.key, self._wait)
        except StoreUnavailable as exc:
            _log.warning("cache_unavailable", error=str(exc))
            raw, locked = None, True  # no shared lock: lead in this process
        if raw is not None:
            answer = unpack(raw)
            self._settle_future(plan.key, answer)  # requests that came meanwhile get it too
            return Turn(Role.HIT, answer)
        if locked:
            return Turn(Role.LEADER)
        answer = await self._await_entry(plan)  # another replica leads
        self._settle_future(plan.key, answer)
        return Turn(Role.FOLLOWER_SERVED, answer) if answer is not None else Turn(Role.FALL_THROUGH)

    async def _await_entry(self, plan: CachePlan) -> CachedAnswer | None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._wait
        while loop.time() < deadline:
            await asyncio.sleep(self._poll)
            answer = await self.lookup(plan)
            if answer is not None:
                return answer
        return None

    def fill(self, plan: CachePlan, answer: CachedAnswer | None) -> None:
        """The leader's outcome: store a complete answer (unless no-store, or cut by max_tokens), release
        the lock and hand the answer to the requests waiting in this process. The store call is not
        waited for (a failure is logged)."""
        if answer is not None and not plan.store_truncated and "length" in finish_reasons(answer):
            answer = None
        packed = pack(answer) if answer is not None and plan.store else None
        if self.store.put_and_unlock_soon(plan.key, packed, plan.ttl) and packed is not None:
            self._metrics.cache_bytes.inc(len(packed))
        self._settle_future(plan.key, answer)

    async def refresh(self, plan: CachePlan, answer: CachedAnswer | None) -> None:
        """A `no-cache` request's answer replaces the entry (no lock was taken, nobody waits on it)."""
        if answer is None or not plan.store or (not plan.store_truncated and "length" in finish_reasons(answer)):
            return
        try:
            packed = pack(answer)
            if await self.store.put(plan.key, packed, plan.ttl):
                self._metrics.cache_bytes.inc(len(packed))
        except StoreUnavailable as exc:
            _log.warning("cache_unavailable", error=str(exc))

    def _settle_future(self, key: str, answer: CachedAnswer | None) -> None:
        future = self._leading.pop(key, None)
        if future is not None and not future.done():
            future.set_result(answer)
