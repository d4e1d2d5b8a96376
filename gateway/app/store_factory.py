"""The shared-state stores, chosen by configuration: Redis when REDIS_URL is set (any number of
replicas), in memory otherwise (one process, the embedded default)."""

from __future__ import annotations

from dataclasses import dataclass

from gateway.auth import KeyStore, MemoryKeyStore, MemoryUsageStore, RedisKeyStore, RedisUsageStore, UsageStore
from gateway.cache.stores import CacheStore, MemoryCacheStore, RedisCacheStore
from gateway.coaching.sessions import MemorySessionStore, RedisSessionStore, SessionStore
from gateway.limits import FallbackLimitStore, LimitStore, MemoryLimitStore, RedisLimitStore
from gateway.responses_store import MemoryResponseStore, RedisResponseStore, ResponseStore
from gateway.settings import Settings, SettingsError
from gateway.shared_state.hot_path import connect_hot_path
from gateway.shared_state.redis_client import RedisClient, connect_redis
from gateway.shared_state.redis_urls import RedisUrlError, parse_redis_url
from gateway.workers.overlay import MemoryOverlayStore, OverlayStore, RedisOverlayStore


@dataclass(slots=True)
class StateStores:
    keys: KeyStore
    limits: LimitStore
    cache: CacheStore
    overlays: OverlayStore
    sessions: SessionStore
    responses: ResponseStore
    usage: UsageStore

    async def close(self) -> None:
        await self.usage.close()
        await self.overlays.close()
        await self.keys.close()
        await self.limits.close()
        await self.cache.close()
        await self.sessions.close()
        await self.responses.close()


def stores_from_settings(settings: Settings) -> StateStores:
    if settings.redis_url is None:
        return StateStores(keys=MemoryKeyStore(), limits=MemoryLimitStore(),
                           cache=MemoryCacheStore(max_bytes=settings.cache_max_bytes,
                                                  max_entry_bytes=settings.cache_max_entry_bytes),
                           overlays=MemoryOverlayStore(), sessions=MemorySessionStore(),
                           responses=MemoryResponseStore(), usage=MemoryUsageStore())
    url, timeout = settings.redis_url, settings.redis_timeout_s
    try:
        parse_redis_url(url)
    except RedisUrlError as exc:
        raise SettingsError(str(exc)) from None

    def client() -> RedisClient:
        return connect_redis(url, command_timeout_s=timeout, pool_timeout_s=timeout)

    # The hot path's stores share one lean multiplexed connection (one per primary of a cluster) and
    # bound each call themselves.
    hot_path = connect_hot_path(url, connect_timeout_s=timeout)
    limits = FallbackLimitStore(RedisLimitStore(hot_path, timeout_s=timeout), fail_open=settings.rate_limit_fail_open)
    cache = RedisCacheStore(hot_path, max_entry_bytes=settings.cache_max_entry_bytes, timeout_s=timeout)
    return StateStores(keys=RedisKeyStore(client()), limits=limits, cache=cache, overlays=RedisOverlayStore(client()),
                       sessions=RedisSessionStore(client()), responses=RedisResponseStore(client()),
                       usage=RedisUsageStore(client(), flush_s=settings.usage_flush_s))
