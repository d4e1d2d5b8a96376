"""The gateway configurations the benchmarks measure: what each turns on, its goals, and how to check
that a running gateway really is in it.

Every configuration is `bare` plus the features it names; metrics are always on (the gateway has no
switch for them), so every row pays for them. What the cache does is decided by the workload: the
`cache-miss` workload changes the user message on every request (so each one is looked up, forwarded and
stored), the `cache-hit` workload sends one constant `temperature: 0` body.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path

import httpx

from benchmarks import gateway_server, procs, redis_server, workloads


@dataclass(frozen=True, slots=True)
class Goal:
    min_requests_per_s: float
    max_overhead_p50_ms: float | None = None
    """Gateway p50 minus direct p50 at concurrency 1."""
    max_overhead_p99_ms: float | None = None
    source: str = ""
    """The issue that set it."""


@dataclass(frozen=True, slots=True)
class GatewayConfig:
    name: str
    description: str
    keys: bool = False
    """A keys file with the bench key (`bench-key`); without it the gateway runs in open mode."""
    limits: bool = False
    """Never-refusing limits on that key, counted in a Redis the benchmark starts."""
    cache: bool = False
    """GATEWAY_CACHE=true (else false: the cache is off, not merely bypassed)."""
    cache_in_redis: bool = False
    """The cache in Redis (REDIS_URL) rather than in the process's memory."""
    log_requests: bool = False
    """LOG_LEVEL=info: one JSON log line per request (to the gateway's log file); else warning."""
    workload: str = "plain"
    goal: Goal | None = None

    @property
    def redis(self) -> bool:
        return self.limits or self.cache_in_redis

    @property
    def script(self) -> Path:
        return workloads.WORKLOADS[self.workload].script

    def environment(self, workers: int = 1) -> dict[str, str]:
        """The variables that put `llm-gateway serve` in this configuration (besides keys and Redis)."""
        return {
            "GATEWAY_CACHE": "true" if self.cache else "false",
            "LOG_LEVEL": "info" if self.log_requests else "warning",
            "GATEWAY_WORKERS": str(workers),
            "GATEWAY_DRAIN_SECONDS": "0",  # stop at once between configurations
        }


BARE_GOAL = Goal(2500.0, 0.5, source="issue 2")
CHECKED_GOAL = Goal(1500.0, 1.0, source="issue 5")
ALL_FEATURES_GOAL = Goal(1500.0, 1.0, 3.0, source="issue 11")
CACHE_HIT_GOAL = Goal(3000.0, source="issue 6")

CONFIGS: dict[str, GatewayConfig] = {
    config.name: config
    for config in (
        GatewayConfig("bare", "open mode, cache off, LOG_LEVEL=warning", goal=BARE_GOAL),
        GatewayConfig("auth", "keys file, one key, no limits: SHA-256 + constant-time compare", keys=True,
                      goal=CHECKED_GOAL),
        GatewayConfig("limits", "auth + never-refusing limits in Redis: admit script before, settle after",
                      keys=True, limits=True, goal=CHECKED_GOAL),
        GatewayConfig("cache-miss", "open mode, in-memory cache, every request a miss (looked up, forwarded, stored)",
                      cache=True, workload="cache-miss"),
        GatewayConfig("cache-hit", "open mode, in-memory cache, every request after the first a hit",
                      cache=True, workload="cache-hit", goal=CACHE_HIT_GOAL),
        GatewayConfig("logs", "open mode, LOG_LEVEL=info: the request's JSON log line (metrics: always on)",
                      log_requests=True),
        GatewayConfig("all", "all features on: auth + Redis limits + cache miss in Redis + metrics + log line",
                      keys=True, limits=True, cache=True, cache_in_redis=True, log_requests=True,
                      workload="cache-miss", goal=ALL_FEATURES_GOAL),
        GatewayConfig("cache-miss-redis", "open mode, cache in Redis, every request a miss", cache=True,
                      cache_in_redis=True, workload="cache-miss"),
        GatewayConfig("cache-hit-redis", "open mode, cache in Redis, every request after the first a hit",
                      cache=True, cache_in_redis=True, workload="cache-hit", goal=CACHE_HIT_GOAL),
    )
}  # fmt: skip
DEFAULT_CONFIGS = ("bare", "auth", "limits", "cache-miss", "cache-hit", "logs", "all")


@dataclass(slots=True)
class Setup:
    """What a started configuration needs besides the catalog: its keys file, its Redis."""

    config: GatewayConfig
    keys_file: Path | None = None
    redis_url: str | None = None
    redis: procs.Child | None = None
    redis_port: int | None = None


@contextlib.asynccontextmanager
async def prepared(
    config: GatewayConfig, workdir: Path, say: Callable[[str], None] | None = None
) -> AsyncIterator[Setup]:
    """The keys file and (when the configuration needs one) a fresh Redis, stopped on the way out."""
    setup = Setup(config)
    if config.keys:
        setup.keys_file = gateway_server.write_keys_file(workdir, limits=config.limits)
    if not config.redis:
        yield setup
        return
    port = procs.free_port()
    if say is not None:
        say(f"starting Redis ({redis_server.redis_binary()}) on port {port}")
    setup.redis = await redis_server.start_redis(workdir / f"redis-{config.name}", port)
    setup.redis_port, setup.redis_url = port, f"redis://{procs.LOOPBACK}:{port}/0"
    try:
        yield setup
    finally:
        await setup.redis.stop()


def _headers(key: str | None = None) -> dict[str, str]:
    return {"Authorization": f"Bearer {key or gateway_server.API_KEY}", "Content-Type": "application/json"}


async def check(url: str, config: GatewayConfig) -> None:
    """Before a configuration is measured: its answers show it is the one named. Chat completions answer
    200 with choices; with keys, a wrong key gets 401; with limits, answers carry `x-ratelimit-*`; the
    cache answers `miss` to two different miss-workload bodies and `hit` to a repeated hit-workload body,
    and is absent when off; with the request log line, the log grows (checked by the caller)."""
    workload = workloads.WORKLOADS[config.workload]
    nonce = workloads.new_nonce()
    async with httpx.AsyncClient(trust_env=False, timeout=10.0) as client:
        answers = [
            await client.post(url, content=workload.body(f"check-{nonce}", n), headers=_headers()) for n in range(2)
        ]
        wrong = None
        if config.keys:
            wrong = await client.post(url, content=workload.body(), headers=_headers("not-the-bench-key"))
    for response in answers:
        if response.status_code != 200:
            raise RuntimeError(f"{config.name}: POST {url} answered {response.status_code}: {response.text[:500]}")
        body = response.json()
        if not (isinstance(body, dict) and body.get("choices")):
            raise RuntimeError(f"{config.name}: POST {url} answered without choices: {response.text[:500]}")
    if wrong is not None and wrong.status_code != 401:
        raise RuntimeError(f"{config.name}: POST {url} with a wrong key answered {wrong.status_code}, expected 401")
    limited = "x-ratelimit-limit-requests" in answers[0].headers
    if limited != config.limits:
        raise RuntimeError(
            f"{config.name}: the answer {'carries' if limited else 'lacks'} x-ratelimit-* headers "
            f"({dict(answers[0].headers)})"
        )
    cache = [response.headers.get("x-gateway-cache") for response in answers]
    if config.cache and config.workload == "cache-hit":
        await _wait_for_hit(url, workload.body(), cache)
    elif cache != expected_cache_headers(config):
        raise RuntimeError(f"{config.name}: x-gateway-cache was {cache}, expected {expected_cache_headers(config)}")


def expected_cache_headers(config: GatewayConfig) -> list[str | None]:
    """`x-gateway-cache` of two requests of the configuration's (non-hit) workload."""
    if not config.cache:
        return [None, None]
    return ["bypass", "bypass"] if config.workload == "plain" else ["miss", "miss"]


async def _wait_for_hit(url: str, body: bytes, seen: list[str | None], timeout_s: float = 10.0) -> None:
    """The answer is stored once the first request's answer is (asynchronously) filled in: repeat it
    until the cache answers `hit`."""
    deadline = time.monotonic() + timeout_s
    async with httpx.AsyncClient(trust_env=False, timeout=10.0) as client:
        while "hit" not in seen:
            if time.monotonic() > deadline:
                raise RuntimeError(f"the cache never answered a repeated request: x-gateway-cache {seen}")
            response = await client.post(url, content=body, headers=_headers())
            seen.append(response.headers.get("x-gateway-cache"))
            await asyncio.sleep(0.05)


_CACHE_LINE = re.compile(r'^llm_gateway_cache_requests_total\{[^}]*result="(\w+)"[^}]*\}\s+([0-9.e+]+)$', re.MULTILINE)


async def cache_counts(base_url: str) -> dict[str, int]:
    """The gateway's cache lookups so far, by result (`GET /metrics`, summed over label sets)."""
    async with httpx.AsyncClient(trust_env=False, timeout=10.0) as client:
        response = await client.get(f"{base_url}/metrics")
    response.raise_for_status()
    counts: dict[str, int] = {}
    for result, value in _CACHE_LINE.findall(response.text):
        counts[result] = counts.get(result, 0) + round(float(value))
    return counts


def counts_between(before: dict[str, int], after: dict[str, int]) -> dict[str, int]:
    return {name: after[name] - before.get(name, 0) for name in sorted(after) if after[name] != before.get(name, 0)}


def verify_cache(config: GatewayConfig, counts: dict[str, int], requests: int) -> str | None:
    """Why the cache lookups during a measurement do not fit the configuration, or None when they do."""
    if not config.cache or requests == 0:
        return None
    hits, misses = counts.get("hit", 0) + counts.get("coalesced", 0), counts.get("miss", 0)
    if config.workload == "cache-miss" and hits:
        return f"{hits} of {requests} requests were answered from the cache, expected none ({counts})"
    if config.workload == "cache-hit" and misses > max(4, requests // 100):
        return f"{misses} of {requests} requests missed the cache, expected (almost) none ({counts})"
    return None
