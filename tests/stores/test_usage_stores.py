"""Usage per key and day (`gateway.auth` usage stores), in memory and on a real Redis of each shape:
replicas' counts summed once flushed, a read that counts this process's unflushed requests once, the
Redis layout (one hash per key and day, hash-tagged by key, with a TTL), the background and final
flushes, and counts kept through a Redis that is down."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable

import pytest

from gateway.auth import MemoryUsageStore, RedisUsageStore, UsageStore
from gateway.auth.key_usage import DAY_S, RETENTION_DAYS, day_name, day_of
from gateway.errors import StoreUnavailable
from gateway.shared_state.redis_client import RedisClient, connect_redis
from testkit.redis_server import RedisServer
from tests.stores.conftest import GENEROUS_TIMEOUTS, REDIS_SHAPES, eventually, flush, shape_url

UsageStoreFactory = Callable[[], UsageStore]


@pytest.fixture(params=["memory", *REDIS_SHAPES])
async def usage_stores(request: pytest.FixtureRequest) -> AsyncIterator[UsageStoreFactory]:
    """Makes usage stores as replicas would: each Redis one has its own client on the same db; memory has
    one process, so every call returns the same store."""
    made: list[UsageStore] = []
    if request.param == "memory":
        memory = MemoryUsageStore()
        made.append(memory)

        def make() -> UsageStore:
            return memory
    else:
        url = shape_url(request, request.param)
        await flush(url)

        def make() -> UsageStore:
            store = RedisUsageStore(connect_redis(url, **GENEROUS_TIMEOUTS))
            made.append(store)
            return store
    yield make
    for store in made:
        await store.close()


async def flushed(store: UsageStore) -> None:
    if isinstance(store, RedisUsageStore):
        await store.flush()


def today() -> str:
    return day_name(day_of(time.time()))


async def test_replicas_counts_are_summed_per_day_and_model(usage_stores: UsageStoreFactory) -> None:
    one, two = usage_stores(), usage_stores()
    one.count("key_a", "chat", 10, 5, False)
    one.count("key_a", "quick", 3, 1, True)
    two.count("key_a", "chat", 7, 2, False)
    two.count("key_b", "chat", 100, 100, False)
    await flushed(one)
    await flushed(two)
    for store in (one, two):
        rows = await store.days("key_a", 3)
        assert [row.day for row in rows][-1] == today() and len(rows) == 3
        assert [row.requests for row in rows[:2]] == [0, 0]
        last = rows[-1]
        assert (last.requests, last.prompt_tokens, last.completion_tokens, last.errors) == (3, 20, 8, 1)
        assert {name: (m.requests, m.errors) for name, m in last.models.items()} == {"chat": (2, 0), "quick": (1, 1)}
    assert (await one.days("key_c", 1))[0].requests == 0


async def test_a_read_counts_this_replicas_unflushed_requests_once(usage_stores: UsageStoreFactory) -> None:
    store = usage_stores()
    store.count("key_a", "chat", 1, 1, False)
    await flushed(store)
    store.count("key_a", "chat", 1, 1, False)  # not flushed yet
    assert (await store.days("key_a", 1))[0].requests == 2
    await flushed(store)
    assert (await store.days("key_a", 1))[0].requests == 2


async def test_redis_keeps_one_hash_per_key_and_day_with_a_ttl(redis_client: RedisClient, redis_url: str) -> None:
    store = RedisUsageStore(connect_redis(redis_url, **GENEROUS_TIMEOUTS))
    try:
        store.count("key_a", "chat", 10, 5, False)
        store.count("key_a", "", 0, 0, True)
        await store.flush()
        name = f"llmgw:usage:{{key_a}}:{today()}"
        assert await redis_client.hgetall(name) == {
            b"requests:chat": b"1", b"prompt_tokens:chat": b"10", b"completion_tokens:chat": b"5",
            b"requests:": b"1", b"errors:": b"1"}
        assert RETENTION_DAYS * DAY_S - 60 < await redis_client.ttl(name) <= RETENTION_DAYS * DAY_S
    finally:
        await store.close()


async def test_counts_reach_redis_in_the_background_and_on_close(redis_client: RedisClient, redis_url: str) -> None:
    name = f"llmgw:usage:{{key_a}}:{today()}"

    async def counted(expected: int) -> bool:
        return int(await redis_client.hget(name, "requests:chat") or 0) == expected

    store = RedisUsageStore(connect_redis(redis_url, **GENEROUS_TIMEOUTS), flush_s=0.05)
    await store.start()
    store.count("key_a", "chat", 1, 1, False)
    await eventually(lambda: counted(1))
    store.count("key_a", "chat", 1, 1, False)
    idle = RedisUsageStore(connect_redis(redis_url, **GENEROUS_TIMEOUTS), flush_s=3600)
    await idle.start()
    idle.count("key_a", "chat", 1, 1, False)
    await idle.close()  # its interval never came: closing flushes
    await store.close()
    assert await counted(3)


def fast_failing(server: RedisServer) -> RedisClient:
    return connect_redis(server.url, connect_timeout_s=0.2, command_timeout_s=0.2, pool_timeout_s=0.2)


async def test_counts_survive_a_redis_that_is_down(redis_server: RedisServer) -> None:
    store = RedisUsageStore(fast_failing(redis_server))
    try:
        store.count("key_a", "chat", 10, 5, False)
        with redis_server.paused():
            with pytest.raises(StoreUnavailable):
                await store.flush()
            store.count("key_a", "chat", 10, 5, True)
            with pytest.raises(StoreUnavailable):
                await store.days("key_a", 1)
        await store.flush()
        [row] = await store.days("key_a", 1)
        assert (row.requests, row.prompt_tokens, row.completion_tokens, row.errors) == (2, 20, 10, 1)
    finally:
        await store.close()
