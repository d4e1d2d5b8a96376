"""One place that builds the Redis client and one that translates its errors.

The stores (`gateway.auth.redis_key_store`, `gateway.limits.redis_store`) share one `redis.asyncio.Redis`
built by `connect_redis`. Its timeouts are short on purpose: a Redis that is paused or gone must cost a
request at most `command_timeout_s` once, after which `gateway.limits.fallback` stops asking it until a
background probe sees it answer again.

Retries: one immediate retry on a *connection* error (a pooled connection left stale by a Redis
restart reconnects), none on a timeout (a frozen Redis must fail fast, not three times over).

`REDIS_URL` may also name a Redis Cluster or a Sentinel-managed primary (`gateway.shared_state.redis_urls`):
`connect_redis` then builds redis-py's `RedisCluster` (slot map, MOVED/ASK) or a client whose pool asks
the Sentinels for the primary on every new connection (so a failover is followed on the next connect),
with the same timeouts. The stores type their client as `RedisClient` and use only commands both have.

Every call into redis-py sits inside `translate_redis_errors`, so the rest of the gateway only ever
sees `StoreUnavailable`, never `redis.exceptions.*`, `OSError` or `TimeoutError`.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import redis.asyncio
from redis.asyncio.cluster import ClusterNode, RedisCluster
from redis.asyncio.connection import BlockingConnectionPool
from redis.asyncio.retry import Retry
from redis.asyncio.sentinel import Sentinel, SentinelConnectionPool, SentinelManagedSSLConnection
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisClusterException, RedisError

from gateway.errors import StoreUnavailable
from gateway.shared_state.redis_urls import RedisEndpoints, parse_redis_url

DEFAULT_KEY_PREFIX = "llmgw:"
CLIENT_NAME = "llm-gateway"
CLUSTER_POOL_FACTOR = 8
RedisClient = redis.asyncio.Redis | RedisCluster
"""What the control plane's stores are given: one server's (or Sentinel's primary's) client, or a cluster's."""


def connect_redis(url: str, *, connect_timeout_s: float = 0.5, command_timeout_s: float | None = 1.0,
                  health_check_interval_s: int = 10, max_connections: int = 32,
                  pool_timeout_s: float = 1.0) -> RedisClient:
    """A client for `url` (redis://, rediss://, unix://, redis+cluster://, redis+sentinel://) that fails fast.

    `connect_timeout_s`: TCP connect (a dead host); `command_timeout_s`: waiting for a reply (a paused
    server; None: no socket timeout, for a caller that bounds each of its calls itself, as the limit
    store does); `health_check_interval_s`: a connection idle this long is PINGed before reuse;
    `max_connections`: the pool's size: a burst of requests shares these connections (one EVALSHA
    takes well under a millisecond) instead of opening one each; `pool_timeout_s`: how long a command
    waits for a free connection (one server or Sentinel; a cluster's pools do not wait, see
    `_cluster_client`). No connection is opened until the first command. Raises `RedisUrlError` for a URL it cannot
    read.
    """
    endpoints = parse_redis_url(url)
    options: dict[str, Any] = {
        "socket_connect_timeout": connect_timeout_s, "socket_timeout": command_timeout_s,
        "health_check_interval": health_check_interval_s, "client_name": CLIENT_NAME,
        "retry": Retry(NoBackoff(), retries=1, supported_errors=(RedisConnectionError,))}
    if endpoints.kind == "cluster":
        return _cluster_client(endpoints, max_connections=max_connections, **options)
    if endpoints.kind == "sentinel":
        return _sentinel_client(endpoints, max_connections=max_connections, pool_timeout_s=pool_timeout_s, **options)
    pool = redis.asyncio.BlockingConnectionPool.from_url(
        url,
        max_connections=max_connections,
        timeout=pool_timeout_s,
        **options,
    )
    return redis.asyncio.Redis.from_pool(pool)


def _cluster_client(endpoints: RedisEndpoints, *, max_connections: int, **options: Any) -> RedisCluster:
    """redis-py's cluster client: it reads the slot map from the seed nodes on the first command and
    again after a MOVED or a lost node. Its pools (one per node) raise rather than wait when full, so
    each may open `CLUSTER_POOL_FACTOR` times `max_connections`: a burst opens connections, not errors."""
    return RedisCluster(startup_nodes=[ClusterNode(host, port) for host, port in endpoints.nodes],
                        username=endpoints.username, password=endpoints.password, ssl=endpoints.tls,
                        max_connections=max_connections * CLUSTER_POOL_FACTOR, **options)


class _BlockingSentinelPool(SentinelConnectionPool, BlockingConnectionPool):
    """Sentinel's pool (the primary's address asked on each new connection) that waits up to `timeout`
    for a free connection when full, as the single server's pool does, instead of raising."""


class _SentinelManagedRedis(redis.asyncio.Redis):
    """The primary's client, which also closes its connections to the Sentinels when closed."""

    async def aclose(self, close_connection_pool: bool | None = None) -> None:
        await super().aclose(close_connection_pool)
        pool = self.connection_pool
        if isinstance(pool, SentinelConnectionPool):
            for sentinel in pool.sentinel_manager.sentinels:
                await sentinel.aclose()


def _sentinel_client(endpoints: RedisEndpoints, *, max_connections: int, pool_timeout_s: float,
                     **options: Any) -> redis.asyncio.Redis:
    """A client of the primary that the Sentinels name: each new connection asks them where it is, and a
    connection to a server that is no longer the primary (READONLY, or lost) is dropped."""
    assert endpoints.service is not None  # parse_redis_url requires it for a Sentinel URL
    sentinel_options = {"socket_connect_timeout": options["socket_connect_timeout"],
                        "socket_timeout": options["socket_connect_timeout"],
                        "username": endpoints.sentinel_username, "password": endpoints.sentinel_password}
    sentinel = Sentinel(list(endpoints.nodes), sentinel_kwargs=sentinel_options)
    if endpoints.tls:
        options["connection_class"] = SentinelManagedSSLConnection
    client: redis.asyncio.Redis = sentinel.master_for(
        endpoints.service, redis_class=_SentinelManagedRedis, connection_pool_class=_BlockingSentinelPool,
        username=endpoints.username, password=endpoints.password, db=endpoints.db,
        max_connections=max_connections, timeout=pool_timeout_s, **options)
    return client


@contextmanager
def translate_redis_errors(operation: str, *, retry_after_s: float = 1.0) -> Iterator[None]:
    """Run the body; turn any Redis, socket or timeout error into `StoreUnavailable`.

    The message names the operation and the error's class and text (host and port, never a password:
    redis-py does not put credentials in its messages)."""
    try:
        yield
    except (RedisError, RedisClusterException, OSError) as exc:  # builtin TimeoutError is an OSError
        raise unavailable(operation, exc, retry_after_s=retry_after_s) from exc


def unavailable(operation: str, exc: BaseException, *, retry_after_s: float = 1.0) -> StoreUnavailable:
    """The `StoreUnavailable` that `translate_redis_errors` raises for `exc` (for a hot path that
    catches the errors itself rather than enter a context manager per call)."""
    return StoreUnavailable(f"redis {operation} failed: {type(exc).__name__}: {str(exc)[:200]}",
                            retry_after_s=retry_after_s)
