"""The shared-state stores, chosen by configuration: Redis when REDIS_URL is set (any number of
replicas), in memory otherwise (one process, the embedded default)."""

from __future__ import annotations

from dataclasses import dataclass

from gateway.keys import KeyStore, MemoryKeyStore, RedisKeyStore
from gateway.limits import FallbackLimitStore, LimitStore, MemoryLimitStore, RedisLimitStore
from gateway.redis_connection import connect_redis
from gateway.settings import Settings


@dataclass(slots=True)
class StateStores:
    keys: KeyStore
    limits: LimitStore

    async def close(self) -> None:
        await self.keys.close()
        await self.limits.close()


def stores_from_settings(settings: Settings) -> StateStores:
    if settings.redis_url is None:
        return StateStores(keys=MemoryKeyStore(), limits=MemoryLimitStore())
    keys = RedisKeyStore(connect_redis(settings.redis_url))
    limits = FallbackLimitStore(RedisLimitStore(connect_redis(settings.redis_url)),
                                fail_open=settings.rate_limit_fail_open)
    return StateStores(keys=keys, limits=limits)
