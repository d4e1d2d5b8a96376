"""The hot path's Redis client, whatever `REDIS_URL` names: `RedisWire` for one server, `ClusterWire` for
a Redis Cluster, `SentinelWire` for a Sentinel-managed primary. The stores of the hot path (limits, the
response cache) take any of them as a `HotPathRedis`: the same calls, commands already in RESP."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any, Protocol

from gateway.shared_state.cluster_wire import ClusterWire
from gateway.shared_state.redis_urls import parse_redis_url
from gateway.shared_state.redis_wire import Arg, Command, RedisWire
from gateway.shared_state.sentinel_wire import SentinelWire


class HotPathRedis(Protocol):
    """What `RedisWire` offers (see there): one command, a pipeline, commands in RESP with or without
    waiting for their replies."""

    async def call(self, *command: Arg, timeout_s: float | None = None) -> Any: ...

    async def pipeline(self, commands: Sequence[Command], timeout_s: float | None = None) -> list[Any]: ...

    async def request(self, data: bytes, count: int, timeout_s: float | None = None) -> list[Any]: ...

    def send_nowait(self, data: bytes, count: int) -> list[asyncio.Future[Any]] | None: ...

    async def close(self) -> None: ...


def connect_hot_path(url: str, *, connect_timeout_s: float = 0.5, stale_after_s: float = 5.0,
                     client_name: str = "llm-gateway") -> HotPathRedis:
    """The client for `url` (no connection is opened until the first call); `RedisUrlError` for a URL
    that cannot be read."""
    endpoints = parse_redis_url(url)
    options: dict[str, Any] = {"connect_timeout_s": connect_timeout_s, "stale_after_s": stale_after_s,
                               "client_name": client_name}
    if endpoints.kind == "cluster":
        return ClusterWire(endpoints, **options)
    if endpoints.kind == "sentinel":
        return SentinelWire(endpoints, **options)
    return RedisWire(url, **options)
