"""What the gateway's Redis stores of JSON documents share (stored responses, coaching sessions): a client
they may or may not own, one key prefix, a clock for TTLs, and reading, deleting and closing with Redis's
errors translated. Each store adds its own key names and writes."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Generic, TypeVar

import msgspec

from gateway.shared_state.redis_client import DEFAULT_KEY_PREFIX, RedisClient, translate_redis_errors

T = TypeVar("T")


class RedisJsonStore(Generic[T]):
    """Documents of type `kind` as JSON values. `close_client`: close `redis` in `close` (False when the
    client is shared and closed by its owner)."""

    def __init__(self, redis: RedisClient, kind: type[T], prefix: str = DEFAULT_KEY_PREFIX, *,
                 close_client: bool = True, clock: Callable[[], float] = time.time) -> None:
        self._redis = redis
        self._prefix = prefix
        self._close_client = close_client
        self._clock = clock
        self._decoder = msgspec.json.Decoder(kind)

    async def _read(self, name: str, operation: str) -> T | None:
        with translate_redis_errors(operation):
            raw = await self._redis.get(name)
        return None if raw is None else self._decoder.decode(raw)

    async def _remove(self, name: str, operation: str) -> bool:
        with translate_redis_errors(operation):
            return bool(await self._redis.delete(name))

    async def close(self) -> None:
        if not self._close_client:
            return
        with translate_redis_errors("close"):
            await self._redis.aclose()
