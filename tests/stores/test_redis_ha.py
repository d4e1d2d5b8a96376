"""Redis Cluster and Sentinel against real servers: the hot path follows ASK and MOVED when a slot
migrates, limits stay exact through a cluster failover and a Sentinel failover, the control plane finds
the new primary too; and every script's and pipeline's keys share one slot (so no command is CROSSSLOT)."""

from __future__ import annotations

import asyncio
import time

import pytest

from gateway.app.store_factory import stores_from_settings
from gateway.auth import KeyLimits, RedisKeyStore, RedisUsageStore, new_key, new_secret
from gateway.cache.stores import CacheStore
from gateway.errors import StoreUnavailable
from gateway.limits import RedisLimitStore
from gateway.settings import load_settings
from gateway.shared_state.cluster_slots import key_slot
from gateway.shared_state.hot_path import HotPathRedis, connect_hot_path
from gateway.shared_state.redis_client import connect_redis
from testkit.loopback import LOOPBACK, free_port
from testkit.redis_cluster import RedisClusterServers, node_command
from testkit.redis_sentinel import RedisSentinelServers
from tests.stores.conftest import GENEROUS_TIMEOUTS, eventually, shape_url

LIMIT = KeyLimits(requests_per_minute=10)
RECOVERY_S = 15.0


@pytest.mark.parametrize("shape", ["cluster", "sentinel"])
async def test_the_gateways_stores_all_work_on_a_cluster_and_on_sentinel(request: pytest.FixtureRequest,
                                                                       shape: str) -> None:
    stores = stores_from_settings(load_settings({"REDIS_URL": shape_url(request, shape)}))
    key = new_key(new_secret())
    try:
        await stores.keys.add(key)
        assert (await stores.keys.find(key.secret_hash)) == key
        assert key in await stores.keys.all()
        assert (await stores.limits.admit(f"factory-{shape}", LIMIT, 1)).allowed
        entry = f"factory-{shape}-{time.time()}"
        assert await stores.cache.get_or_lock(entry, 5.0) == (None, True)
        assert stores.cache.put_and_unlock_soon(entry, b"answer", 60.0)
        await eventually(lambda: _cached(stores.cache, entry))
        session = f"key:{key.id}:morning"
        await stores.sessions.append(session, [{"role": "user", "content": "hi"}], context_type="chat",
                                     budget_tokens=1000, ttl_s=60.0)  # WATCH / MULTI on one key
        assert (await stores.sessions.get(session)) is not None and await stores.sessions.delete(session)
        overlay = await stores.overlays.get()
        await stores.overlays.put(overlay)
        stores.usage.count(key.id, "chat", 3, 2, False)
        assert isinstance(stores.usage, RedisUsageStore)
        await stores.usage.flush()  # a pipeline over one key's hash
        assert (await stores.usage.days(key.id, 2))[-1].requests == 1
        assert await stores.keys.revoke(key.id)
    finally:
        await stores.close()


async def _cached(cache: CacheStore, entry: str) -> bool:
    return await cache.get(entry) == b"answer"


@pytest.mark.parametrize("shape", ["cluster", "sentinel"])
async def test_a_dead_seed_or_sentinel_listed_first_is_skipped(request: pytest.FixtureRequest, shape: str) -> None:
    url = shape_url(request, shape)
    scheme, _, rest = url.partition("://")
    with_dead_first = f"{scheme}://{LOOPBACK}:{free_port()},{rest}"
    wire = connect_hot_path(with_dead_first, connect_timeout_s=1.0)
    client = connect_redis(with_dead_first, **GENEROUS_TIMEOUTS)
    try:
        assert await wire.call("SET", f"{{dead-seed}}{shape}", "1", "PX", 60_000) == b"OK"
        assert await client.get(f"{{dead-seed}}{shape}") == b"1"
    finally:
        await wire.close()
        await client.aclose()


@pytest.mark.parametrize("shape", ["cluster", "sentinel"])
async def test_a_burst_beyond_the_pool_waits_or_opens_connections(request: pytest.FixtureRequest,
                                                                  shape: str) -> None:
    client = connect_redis(shape_url(request, shape), max_connections=4, **GENEROUS_TIMEOUTS)
    try:
        await client.set("{burst}k", "v", px=60_000)
        assert await asyncio.gather(*(client.get("{burst}k") for _ in range(30))) == [b"v"] * 30
    finally:
        await client.aclose()


async def admitted(store: RedisLimitStore, attempts: int) -> int:
    return sum([(await store.admit("key_ha", LIMIT, 1)).allowed for _ in range(attempts)])


async def until_answered(store: RedisLimitStore) -> float:
    """Seconds until `store` decides again (StoreUnavailable meanwhile); the decision's `allowed`."""
    start = time.monotonic()
    while True:
        try:
            await store.usage("key_ha", LIMIT)
            return time.monotonic() - start
        except StoreUnavailable:
            assert time.monotonic() - start < RECOVERY_S, "the store did not recover"
            await asyncio.sleep(0.05)


async def test_the_hot_path_follows_ask_then_moved_as_a_slot_migrates(redis_cluster: RedisClusterServers) -> None:
    wire: HotPathRedis = connect_hot_path(redis_cluster.url, connect_timeout_s=5.0)
    try:
        assert await wire.call("GET", "{mig}k") is None  # reads the slot map
        slot = key_slot(b"{mig}k")
        source = redis_cluster.primary_for(b"{mig}k")
        target = next(n for n in redis_cluster.nodes[:3] if n is not source and redis_cluster.role(n) == "master")
        source_id, target_id = redis_cluster.node_id(source), redis_cluster.node_id(target)
        node_command(target.port, "CLUSTER", "SETSLOT", slot, "IMPORTING", source_id)
        node_command(source.port, "CLUSTER", "SETSLOT", slot, "MIGRATING", target_id)
        assert await wire.call("SET", "{mig}k", "v") == b"OK"  # ASK (absent on the source): ASKING + SET there
        assert node_command(source.port, "CLUSTER", "COUNTKEYSINSLOT", slot) == 0
        redis_cluster.move_slot(slot, target)
        assert await wire.call("GET", "{mig}k") == b"v"  # MOVED from the source, map refreshed
        assert await wire.pipeline([("SET", "{mig}j", "w"), ("GET", "{mig}j"), ("GET", "other")]) == [
            b"OK", b"w", None]
    finally:
        await wire.close()


async def test_limits_and_keys_survive_cluster_failovers(redis_cluster: RedisClusterServers) -> None:
    store = RedisLimitStore(connect_hot_path(redis_cluster.url, connect_timeout_s=1.0), window_s=600, timeout_s=1.0)
    keys = RedisKeyStore(connect_redis(redis_cluster.url, **GENEROUS_TIMEOUTS))
    secret = new_secret()
    key = new_key(secret)
    try:
        await keys.add(key)
        assert await admitted(store, 4) == 4
        primary = redis_cluster.primary_for(b"llmgw:rl:{key_ha}:req")
        redis_cluster.fail_over(redis_cluster.replica_of(primary))  # graceful: nothing is lost
        assert await admitted(store, 10) == 6  # exactly the limit across the failover
        assert (await keys.find(key.secret_hash)) is not None
        new_primary = redis_cluster.primary_for(b"llmgw:rl:{key_ha}:req")
        new_primary.kill()  # the old primary, now a replica, is promoted after the node timeout
        recovery_s = await until_answered(store)
        assert recovery_s < RECOVERY_S
        assert await admitted(store, 3) == 0  # the counters were replicated before the kill
        assert (await keys.find(key.secret_hash)) is not None
    finally:
        await store.close()
        await keys.close()


async def test_limits_and_keys_follow_a_sentinel_failover(redis_sentinel: RedisSentinelServers) -> None:
    store = RedisLimitStore(connect_hot_path(redis_sentinel.url, connect_timeout_s=1.0), window_s=600, timeout_s=1.0)
    keys = RedisKeyStore(connect_redis(redis_sentinel.url, **GENEROUS_TIMEOUTS))
    key = new_key(new_secret())
    try:
        await keys.add(key)
        assert await admitted(store, 4) == 4
        node_command(redis_sentinel.primary().port, "WAIT", 1, 2000)
        new_primary = redis_sentinel.fail_over()
        await until_answered(store)
        assert await admitted(store, 10) == 6
        assert node_command(new_primary.port, "EXISTS", "llmgw:rl:{key_ha}:req") == 1  # written to the new primary
        assert (await keys.find(key.secret_hash)) is not None
        await keys.revoke(key.id)  # a write: reaches the new primary, not READONLY on the old one
        assert (await keys.find(key.secret_hash)) is None
    finally:
        await store.close()
        await keys.close()
