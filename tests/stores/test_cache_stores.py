"""Cache stores, memory and real Redis: a lookup that takes the fill lock on a miss in one step, and a
fill that stores and unlocks in one step (one round trip each on Redis)."""

from __future__ import annotations

from collections.abc import AsyncIterator, MutableMapping
from typing import Any

import pytest
from structlog.testing import capture_logs

from gateway.cache.stores import CacheStore, MemoryCacheStore, RedisCacheStore
from gateway.shared_state.hot_path import connect_hot_path
from gateway.shared_state.redis_client import DEFAULT_KEY_PREFIX, RedisClient, connect_redis
from gateway.shared_state.redis_wire import RedisWire
from testkit.redis_server import RedisServer
from tests.stores.conftest import GENEROUS_TIMEOUTS, REDIS_SHAPES, eventually, flush, shape_url, ttl_less_keys


@pytest.fixture(params=["memory", *REDIS_SHAPES])
async def store(request: pytest.FixtureRequest) -> AsyncIterator[CacheStore]:
    if request.param == "memory":
        yield MemoryCacheStore(max_entry_bytes=64)
        return
    url = shape_url(request, request.param)
    await flush(url)
    made = RedisCacheStore(connect_hot_path(url, connect_timeout_s=5.0), max_entry_bytes=64, timeout_s=5.0)
    yield made
    await made.close()
    client: RedisClient = connect_redis(url, **GENEROUS_TIMEOUTS)
    try:
        assert await ttl_less_keys(client, f"{DEFAULT_KEY_PREFIX}cache:*") == []
    finally:
        await client.aclose()


async def test_a_miss_takes_the_lock_once_and_a_fill_releases_it(store: CacheStore) -> None:
    assert await store.get_or_lock("k", 10.0) == (None, True)  # the leader
    assert await store.get_or_lock("k", 10.0) == (None, False)  # another replica: wait for the entry
    assert store.put_and_unlock_soon("k", b"answer", 60.0)
    assert await store.get_or_lock("k", 10.0) == (b"answer", False)  # a hit takes no lock


async def test_a_failed_or_oversize_fill_stores_nothing_and_unlocks(store: CacheStore) -> None:
    assert await store.get_or_lock("k", 10.0) == (None, True)
    assert not store.put_and_unlock_soon("k", None, 60.0)  # the leader's call failed
    assert await store.get_or_lock("k", 10.0) == (None, True)  # so the next miss leads
    assert not store.put_and_unlock_soon("k", b"x" * 65, 60.0)  # larger than max_entry_bytes
    assert await store.get_or_lock("k", 10.0) == (None, True)


async def test_a_fill_before_any_call_connects_then_stores(redis_url: str) -> None:
    store = RedisCacheStore(connect_hot_path(redis_url, connect_timeout_s=5.0), timeout_s=5.0)
    try:
        assert store.put_and_unlock_soon("early", b"answer", 60.0)  # no connection yet: sent once connected
        await eventually(lambda: _holds(store, "early", b"answer"))
    finally:
        await store.close()


async def test_a_fill_redis_refuses_is_logged(redis_server: RedisServer) -> None:
    store = RedisCacheStore(RedisWire(redis_server.url, connect_timeout_s=1.0), timeout_s=1.0)
    try:
        assert await store.get_or_lock("k", 10.0) == (None, True)
        redis_server.kill()
        with capture_logs() as logs:
            assert store.put_and_unlock_soon("k", b"answer", 60.0)
            await eventually(lambda: _logged(logs))
        assert logs[0]["event"] == "cache_unavailable" and "cache put failed" in logs[0]["error"]
    finally:
        await store.close()


async def _holds(store: CacheStore, key: str, value: bytes) -> bool:
    return await store.get(key) == value


async def _logged(logs: list[MutableMapping[str, Any]]) -> bool:
    return bool(logs)
