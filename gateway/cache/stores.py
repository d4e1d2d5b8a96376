"""Where cached answers live: Redis (shared by replicas) or an in-memory LRU (one process).

Both bound what they hold: an entry larger than `max_entry_bytes` is not stored; the memory store also
evicts least recently used entries past `max_bytes`; every Redis key gets a TTL (entries their own,
locks `lock_ttl`). Locks coalesce identical misses across replicas: one replica holds the lock and
calls the worker, the others wait for the entry.
"""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from typing import Any, Protocol

import structlog
from redis.exceptions import NoScriptError, RedisError

from gateway.shared_state.hot_path import HotPathRedis
from gateway.shared_state.redis_client import DEFAULT_KEY_PREFIX, unavailable
from gateway.shared_state.redis_wire import Arg, array_header, bulk, script_sha

GET_OR_LOCK_LUA = """
local entry = redis.call('GET', KEYS[1])
if entry then return entry end
if redis.call('SET', KEYS[2], '1', 'NX', 'PX', ARGV[1]) then return 1 end
return 0
"""
"""KEYS: the entry, its fill lock; ARGV: the lock's TTL in ms. The entry, or 1 (locked by this call), or 0."""
GET_OR_LOCK_SHA = script_sha(GET_OR_LOCK_LUA)
_GET_OR_LOCK = array_header(6) + bulk("EVALSHA") + bulk(GET_OR_LOCK_SHA) + bulk(2)
_EVAL_GET_OR_LOCK = array_header(6) + bulk("EVAL") + bulk(GET_OR_LOCK_LUA) + bulk(2)
_SET = array_header(5) + bulk("SET")
_PX = bulk("PX")
_DEL = array_header(2) + bulk("DEL")
_log = structlog.get_logger("gateway.cache")


class CacheStore(Protocol):
    async def get(self, key: str) -> bytes | None: ...

    async def put(self, key: str, value: bytes, ttl: float) -> bool:
        """Store; False when the entry is too large to keep."""
        ...

    async def get_or_lock(self, key: str, lock_ttl: float) -> tuple[bytes | None, bool]:
        """`get`, and on a miss take the fill lock of `key` for `lock_ttl` seconds, in one step (one round
        trip): (entry, False) on a hit, else (None, whether this caller took the fill lock)."""
        ...

    def put_and_unlock_soon(self, key: str, value: bytes | None, ttl: float) -> bool:
        """`put` (unless `value` is None), then release the fill lock, in one step, without waiting for the
        store (Redis: in the next write; a failure is logged): whether the entry is to be stored."""
        ...

    async def close(self) -> None: ...


class MemoryCacheStore:
    def __init__(self, *, max_bytes: int = 64 * 1024 * 1024, max_entry_bytes: int = 1024 * 1024) -> None:
        self._entries: OrderedDict[str, tuple[bytes, float]] = OrderedDict()
        self._locks: dict[str, float] = {}
        self._bytes = 0
        self.max_bytes = max_bytes
        self.max_entry_bytes = max_entry_bytes

    async def get(self, key: str) -> bytes | None:
        entry = self._entries.get(key)
        if entry is None:
            return None
        if entry[1] <= time.monotonic():
            self._drop(key)
            return None
        self._entries.move_to_end(key)
        return entry[0]

    async def put(self, key: str, value: bytes, ttl: float) -> bool:
        return self._put(key, value, ttl)

    def _put(self, key: str, value: bytes, ttl: float) -> bool:
        if len(value) > self.max_entry_bytes:
            return False
        self._drop(key)
        self._entries[key] = (value, time.monotonic() + ttl)
        self._bytes += len(value)
        while self._bytes > self.max_bytes and self._entries:
            self._drop(next(iter(self._entries)))
        return True

    async def get_or_lock(self, key: str, lock_ttl: float) -> tuple[bytes | None, bool]:
        value = await self.get(key)
        return (value, False) if value is not None else (None, self._lock(key, lock_ttl))

    def _lock(self, key: str, ttl: float) -> bool:
        now = time.monotonic()
        if self._locks.get(key, 0.0) > now:
            return False
        self._locks[key] = now + ttl
        return True

    def put_and_unlock_soon(self, key: str, value: bytes | None, ttl: float) -> bool:
        stored = value is not None and self._put(key, value, ttl)
        self._locks.pop(key, None)
        return stored

    async def close(self) -> None:
        self._entries.clear()

    def _drop(self, key: str) -> None:
        entry = self._entries.pop(key, None)
        if entry is not None:
            self._bytes -= len(entry[0])


class RedisCacheStore:
    """Cached answers in Redis, on the hot path's lean client; `timeout_s` bounds each call.

    An entry and its fill lock share a hash tag (`llmgw:cache:{<key>}`, `llmgw:cache:lock:{<key>}`), so
    the script and the pipeline that touch both run on one Redis Cluster slot."""

    def __init__(self, client: HotPathRedis, prefix: str = DEFAULT_KEY_PREFIX, *,
                 max_entry_bytes: int = 1024 * 1024, timeout_s: float = 1.0, close_client: bool = True) -> None:
        self._redis = client
        self._prefix = prefix + "cache:"
        self.max_entry_bytes = max_entry_bytes
        self._timeout_s = timeout_s
        self._close_client = close_client
        self._sending: set[asyncio.Task[None]] = set()

    def _entry(self, key: str) -> str:
        return f"{self._prefix}{{{key}}}"

    def _lock(self, key: str) -> str:
        return f"{self._prefix}lock:{{{key}}}"

    async def get(self, key: str) -> bytes | None:
        value = await self._call("cache get", "GET", self._entry(key))
        return value if isinstance(value, bytes) else None

    async def put(self, key: str, value: bytes, ttl: float) -> bool:
        if len(value) > self.max_entry_bytes:
            return False
        await self._call("cache put", "SET", self._entry(key), value, "PX", _ms(ttl))
        return True

    async def get_or_lock(self, key: str, lock_ttl: float) -> tuple[bytes | None, bool]:
        keys_and_args = bulk(self._entry(key)) + bulk(self._lock(key)) + bulk(_ms(lock_ttl))
        try:
            found = (await self._redis.request(_GET_OR_LOCK + keys_and_args, 1, self._timeout_s))[0]
            if isinstance(found, NoScriptError):  # a new or restarted Redis: EVAL caches the script
                found = (await self._redis.request(_EVAL_GET_OR_LOCK + keys_and_args, 1, self._timeout_s))[0]
        except (RedisError, OSError) as exc:
            raise unavailable("cache get", exc) from exc
        if isinstance(found, Exception):
            raise unavailable("cache get", found) from found
        return (found, False) if isinstance(found, bytes) else (None, found == 1)

    def put_and_unlock_soon(self, key: str, value: bytes | None, ttl: float) -> bool:
        stored = value is not None and len(value) <= self.max_entry_bytes
        data = _DEL + bulk(self._lock(key))
        count = 1
        if stored:
            assert value is not None
            data = _SET + bulk(self._entry(key)) + bulk(value) + _PX + bulk(_ms(ttl)) + data
            count = 2
        futures = self._redis.send_nowait(data, count)
        if futures is None:  # not connected: connect, then send
            task = asyncio.get_running_loop().create_task(self._put_and_unlock(data, count))
            self._sending.add(task)
            task.add_done_callback(self._sending.discard)
        else:
            futures[-1].add_done_callback(lambda _: _report_put(futures))
        return stored

    async def _put_and_unlock(self, data: bytes, count: int) -> None:
        try:
            _report_put(await self._redis.request(data, count, self._timeout_s))
        except (RedisError, OSError) as exc:
            _log.warning("cache_unavailable", error=str(unavailable("cache put", exc)))

    async def close(self) -> None:
        if self._close_client:
            await self._redis.close()

    async def _call(self, operation: str, *command: Arg) -> Any:
        try:
            return await self._redis.call(*command, timeout_s=self._timeout_s)
        except (RedisError, OSError) as exc:
            raise unavailable(operation, exc) from exc


def _report_put(replies: list[Any]) -> None:
    """Log a failed `put_and_unlock_soon` (its replies, or the futures of its replies)."""
    for reply in replies:
        if isinstance(reply, asyncio.Future):
            reply = reply.exception() if not reply.cancelled() else None
        if isinstance(reply, Exception):
            _log.warning("cache_unavailable", error=str(unavailable("cache put", reply)))
            return


def _ms(seconds: float) -> int:
    return max(1, int(seconds * 1000))
