"""CPU per limit check: redis-py's asyncio client (hiredis parser) against the hot path's own client.

One limit check is what the gateway sends per request with a rate limit: one EVALSHA of admit.lua
(5 keys, 13 arguments). Each client runs `--calls` of them against a fresh valkey-server (one node, and
with `--cluster` also a 3+3 cluster), one after another, then `--concurrency` at a time (as concurrent
requests would); the figure is this process's CPU time (`time.process_time`) per call, the server's
CPU left out.

    nice -n 19 python -m benchmarks.redis_clients [--calls 20000] [--concurrency 32] [--cluster]
"""

from __future__ import annotations

import argparse
import asyncio
import time
from collections.abc import Awaitable, Callable

import redis.asyncio
from redis.asyncio.cluster import ClusterNode, RedisCluster

from gateway.auth.api_keys import KeyLimits
from gateway.limits.redis_commands import ADMIT_LUA, ADMIT_SHA, LimitCommands
from gateway.shared_state.hot_path import connect_hot_path
from gateway.shared_state.redis_urls import parse_redis_url
from testkit.redis_cluster import RedisClusterServers
from testkit.redis_server import RedisServer

LIMITS = KeyLimits(requests_per_minute=10**9, tokens_per_minute=10**12)
Check = Callable[[int], Awaitable[object]]


def admit_args(commands: LimitCommands, subject: str, lease: str) -> list[object]:
    """admit.lua's keys and arguments as redis-py takes them (the same values `LimitCommands` encodes)."""
    keys = commands.keys(subject, lease)
    return [*keys, "admit", lease, 1, 60.0, 300.0, 0.0, LIMITS.requests_per_minute, LIMITS.tokens_per_minute,
            "", "", LIMITS.budget_period, 1.0, 60.0]


async def cpu_per_call(check: Check, calls: int, concurrency: int) -> float:
    """µs of this process's CPU per call (after a warm-up), `concurrency` calls at a time."""
    for i in range(500):
        await check(i)
    start = time.process_time()
    for first in range(0, calls, concurrency):
        if concurrency == 1:
            await check(first)
        else:
            await asyncio.gather(*(check(i) for i in range(first, min(calls, first + concurrency))))
    return (time.process_time() - start) / calls * 1e6


async def run(url: str, calls: int, concurrency: int) -> dict[str, float]:
    commands = LimitCommands("bench:", 60.0, 300.0)
    endpoints = parse_redis_url(url)
    if endpoints.kind == "cluster":
        redis_py: redis.asyncio.Redis | RedisCluster = RedisCluster(
            startup_nodes=[ClusterNode(host, port) for host, port in endpoints.nodes])
    else:
        redis_py = redis.asyncio.Redis.from_url(url)
    wire = connect_hot_path(url, connect_timeout_s=5.0)
    await redis_py.script_load(ADMIT_LUA)

    async def with_redis_py(i: int) -> object:
        return await redis_py.evalsha(ADMIT_SHA, 5, *admit_args(commands, f"s{i % 64}", f"l{i}"))  # type: ignore[arg-type]

    async def with_wire(i: int) -> object:
        data = commands.admit("admit", f"s{i % 64}", f"l{i}", LIMITS, 1, 0.0)
        return (await wire.request(data, 1, 5.0))[0]
    try:
        own = "ClusterWire" if endpoints.kind == "cluster" else "RedisWire"
        figures = {}
        for width in sorted({1, concurrency}):
            figures[f"redis-py x{width}"] = await cpu_per_call(with_redis_py, calls, width)
            figures[f"{own} x{width}"] = await cpu_per_call(with_wire, calls, width)
        return figures
    finally:
        await redis_py.aclose()
        await wire.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--calls", type=int, default=20_000)
    parser.add_argument("--concurrency", type=int, default=32, help="calls in flight in the second run")
    parser.add_argument("--cluster", action="store_true", help="also on a 3-primary, 3-replica cluster")
    options = parser.parse_args()
    with RedisServer() as server:
        results = {"single node": asyncio.run(run(server.url, options.calls, options.concurrency))}
    if options.cluster:
        with RedisClusterServers() as cluster:
            results["cluster"] = asyncio.run(run(cluster.url, options.calls, options.concurrency))
    print(f"CPU µs per limit check (EVALSHA admit.lua), {options.calls} calls, xN: N in flight:")
    for shape, figures in results.items():
        print(f"  {shape}: " + ", ".join(f"{name} {value:.1f}" for name, value in figures.items()))


if __name__ == "__main__":
    main()
