"""Stored responses (`gateway.responses_store`), on memory and a real Redis: kept per tenant, never
readable by another, forgotten on delete and at their expiry."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import pytest
import redis.asyncio

from gateway.responses_store import MemoryResponseStore, RedisResponseStore, ResponseStore, StoredResponse
from gateway.shared_state.redis_client import connect_redis
from tests.stores.conftest import GENEROUS_TIMEOUTS, REDIS_SHAPES, flush, shape_url


@pytest.fixture(params=["memory", *REDIS_SHAPES])
async def store(request: pytest.FixtureRequest) -> AsyncIterator[ResponseStore]:
    made: ResponseStore
    if request.param == "memory":
        made = MemoryResponseStore()
    else:
        url = shape_url(request, request.param)
        await flush(url)
        made = RedisResponseStore(connect_redis(url, **GENEROUS_TIMEOUTS))
    yield made
    await made.close()


def stored(text: str, ttl_s: float = 60.0) -> StoredResponse:
    return StoredResponse(response={"id": "resp_1", "object": "response", "model": "chat"},
                          messages=[{"role": "user", "content": "hi"}, {"role": "assistant", "content": text}],
                          expires_at=time.time() + ttl_s)


async def test_a_response_is_kept_for_its_tenant_only(store: ResponseStore) -> None:
    await store.put("team-a", "resp_1", stored("hello"))
    kept = await store.get("team-a", "resp_1")
    assert kept is not None and kept.messages[-1]["content"] == "hello" and kept.response["id"] == "resp_1"
    assert await store.get("team-b", "resp_1") is None
    assert not await store.delete("team-b", "resp_1")
    assert await store.delete("team-a", "resp_1")
    assert await store.get("team-a", "resp_1") is None
    assert not await store.delete("team-a", "resp_1")


async def test_a_response_expires(store: ResponseStore) -> None:
    await store.put("t", "resp_2", stored("soon gone", ttl_s=0.2))
    assert await store.get("t", "resp_2") is not None
    await asyncio.sleep(0.4)
    assert await store.get("t", "resp_2") is None


async def test_redis_keeps_each_response_under_its_tenant_with_a_ttl(redis_client: redis.asyncio.Redis,
                                                                    redis_url: str) -> None:
    store = RedisResponseStore(connect_redis(redis_url, **GENEROUS_TIMEOUTS))
    try:
        await store.put("team-a", "resp_3", stored("x", ttl_s=3600))
        assert 3_500_000 < await redis_client.pttl("llmgw:response:team-a:resp_3") <= 3_600_000
    finally:
        await store.close()


async def test_memory_keeps_the_newest() -> None:
    store = MemoryResponseStore(max_responses=2)
    for i in range(3):
        await store.put("t", f"resp_{i}", stored(str(i)))
    assert await store.get("t", "resp_0") is None
    assert await store.get("t", "resp_2") is not None
