"""One place that builds the Redis client and one that translates its errors.

The stores (`gateway.auth.redis_key_store`, `gateway.limits.redis_store`) share one `redis.asyncio.Redis`
built by `connect_redis`. Its timeouts are short on purpose: a Redis that is paused or gone must cost a
request at most `command_timeout_s` once, after which `gateway.limits.fallback` stops asking it until a
background probe sees it answer again.

Retries: one immediate retry on a *connection* error (a pooled connection left stale by a Redis
restart reconnects), none on a timeout (a frozen Redis must fail fast, not three times over).

Every call into redis-py sits inside `translate_redis_errors`, so the rest of the gateway only ever
sees `StoreUnavailable`, never `redis.exceptions.*`, `OSError` or `TimeoutError`.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import redis.asyncio
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError

from gateway.errors import StoreUnavailable

DEFAULT_KEY_PREFIX = "llmgw:"


def connect_redis(url: str, *, connect_timeout_s: float = 0.5, command_timeout_s: float | None = 1.0,
                  health_check_interval_s: int = 10, max_connections: int = 32,
                  pool_timeout_s: float = 1.0) -> redis.asyncio.Redis:
    """A client for `url` (redis://, rediss://, unix://) that fails fast.

    `connect_timeout_s`: TCP connect (a dead host); `command_timeout_s`: waiting for a reply (a paused
    server; None: no socket timeout, for a caller that bounds each of its calls itself, as the limit
    store does); `health_check_interval_s`: a connection idle this long is PINGed before reuse;
    `max_connections`: the pool's size: a burst of requests shares these connections (one EVALSHA
    takes well under a millisecond) instead of opening one each; `pool_timeout_s`: how long a command
    waits for a free connection. No connection is opened until the first command.
    """
    pool = redis.asyncio.BlockingConnectionPool.from_url(
        url,
        max_connections=max_connections,
        timeout=pool_timeout_s,
        socket_connect_timeout=connect_timeout_s,
        socket_timeout=command_timeout_s,
        health_check_interval=health_check_interval_s,
        retry=Retry(NoBackoff(), retries=1, supported_errors=(RedisConnectionError,)),
        client_name="llm-gateway",
    )
    return redis.asyncio.Redis.from_pool(pool)


@contextmanager
def translate_redis_errors(operation: str, *, retry_after_s: float = 1.0) -> Iterator[None]:
    """Run the body; turn any Redis, socket or timeout error into `StoreUnavailable`.

    The message names the operation and the error's class and text (host and port, never a password:
    redis-py does not put credentials in its messages)."""
    try:
        yield
    except (RedisError, OSError) as exc:  # builtin TimeoutError is an OSError
        raise unavailable(operation, exc, retry_after_s=retry_after_s) from exc


def unavailable(operation: str, exc: BaseException, *, retry_after_s: float = 1.0) -> StoreUnavailable:
    """The `StoreUnavailable` that `translate_redis_errors` raises for `exc` (for a hot path that
    catches the errors itself rather than enter a context manager per call)."""
    return StoreUnavailable(f"redis {operation} failed: {type(exc).__name__}: {str(exc)[:200]}",
                            retry_after_s=retry_after_s)
