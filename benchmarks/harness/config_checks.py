"""Whether a running gateway really is in the configuration it is measured as: its answers before the
runs, its cache lookups (from `/metrics`) after them."""

from __future__ import annotations

import asyncio
import re
import time

import httpx

from benchmarks.harness import gateway
from benchmarks.harness.configs import GatewayConfig
from benchmarks.load import workloads


def _headers(key: str | None = None) -> dict[str, str]:
    return {"Authorization": f"Bearer {key or gateway.API_KEY}", "Content-Type": "application/json"}


async def check(url: str, config: GatewayConfig) -> None:
    """Before a configuration is measured: its answers show it is the one named. Chat completions answer
    200 with choices; with keys, a wrong key gets 401; with limits, answers carry `x-ratelimit-*`; the
    cache answers `miss` to two different miss-workload bodies and `hit` to a repeated hit-workload body,
    and is absent when off; the console answers only with an admin key; with the request log line, the log
    grows (checked by the caller)."""
    workload = workloads.WORKLOADS[config.workload]
    nonce = workloads.new_nonce()
    async with httpx.AsyncClient(trust_env=False, timeout=10.0) as client:
        answers = [
            await client.post(url, content=workload.body(f"check-{nonce}", n), headers=_headers()) for n in range(2)
        ]
        wrong = None
        if config.keys:
            wrong = await client.post(url, content=workload.body(), headers=_headers("not-the-bench-key"))
        console = await client.get(url.rsplit("/v1/", 1)[0] + "/console/signin")
    if (console.status_code == 200) != config.console:
        raise RuntimeError(f"{config.name}: /console answered {console.status_code}, the console should be "
                           f"{'on' if config.console else 'off'}")
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
