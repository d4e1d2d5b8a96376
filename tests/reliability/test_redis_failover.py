"""Reliability figures 17 (Redis Cluster) and 18 (Sentinel): three gateway processes share the Redis; a
key is limited to N requests a minute; load runs and the primary holding the key's counters is killed.
Meanwhile two tenants ask the same cacheable questions, one after the other. Measured: requests admitted
against N, 5xx answers (none in fail-open mode), cross-tenant cache hits (none), and how long until every
replica decides through Redis again.

Over N by design, within a stated bound: while Redis cannot answer, each replica admits on its own
(fail-open, up to N each), and Redis, once back, counts only what it saw (a killed primary may also lose
its last writes). So at most N x (1 + replicas) are admitted in the minute of a failover."""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from simulator import SimulatorThread
from testkit.figures import record_figure
from testkit.redis_cluster import RedisClusterServers
from testkit.redis_sentinel import RedisSentinelServers
from tests.conftest import catalog_yaml
from tests.servers import gateway_processes

ADMIN = "sk-gw-admin-for-failover-tests"
CHAT = {"model": "chat", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 8}
LIMIT = 60
REPLICAS = 3
BOUND = LIMIT * (1 + REPLICAS)
"""The most a failover can admit in the minute: Redis's count, plus what each replica admitted alone."""
PACE_S = 0.1
LOAD_S = 14.0
KILL_AT_S = 3.0
_DEGRADED = re.compile(r"^llm_gateway_limits_degraded (\S+)$", re.MULTILINE)


def bearer(secret: str) -> dict[str, str]:
    return {"authorization": f"Bearer {secret}"}


async def degraded(client: httpx.AsyncClient, url: str) -> bool:
    found = _DEGRADED.search((await client.get(url + "/metrics")).text)
    return found is not None and float(found.group(1)) > 0


def _cacheable(question: str) -> dict[str, object]:
    return {"model": "chat", "messages": [{"role": "user", "content": question}], "temperature": 0, "max_tokens": 64}


async def cross_tenant_hits(client: httpx.AsyncClient, urls: list[str], alpha: str, beta: str,
                            until: float) -> tuple[int, int, int]:
    """Until `until`: a new question asked by tenant alpha, then the same one by tenant beta, then by alpha
    again, each on another replica; (questions, beta's answers from the cache, which could only be
    alpha's entry, alpha's second answers from the cache, which show the cache at work)."""
    asked = cross = same = 0
    while time.monotonic() < until:
        body = _cacheable(f"failover question {asked}")
        answers = [await client.post(urls[(asked + turn) % len(urls)] + "/v1/chat/completions", json=body,
                                     headers=bearer(secret)) for turn, secret in enumerate((alpha, beta, alpha))]
        cross += answers[1].headers.get("x-gateway-cache") == "hit"
        same += answers[2].headers.get("x-gateway-cache") == "hit"
        asked += 1
        await asyncio.sleep(PACE_S * 3)
    return asked, cross, same


async def run_load(urls: list[str], secret: str, kill: Callable[[], None]) -> tuple[list[int], float]:
    """Statuses of a request every `PACE_S` (round robin over the replicas) for `LOAD_S`, the primary
    killed at `KILL_AT_S`; and seconds from the kill until no replica is degraded any more."""
    statuses: list[int] = []
    async with httpx.AsyncClient(timeout=30) as client:
        async def one(i: int) -> None:
            response = await client.post(urls[i % len(urls)] + "/v1/chat/completions", json=CHAT,
                                         headers=bearer(secret))
            statuses.append(response.status_code)
        start = time.monotonic()
        sent: list[asyncio.Task[None]] = []
        killed_at: float | None = None
        recovered_at: float | None = None
        seen_degraded = False
        i = 0
        while time.monotonic() - start < LOAD_S:
            sent.append(asyncio.create_task(one(i)))
            i += 1
            if killed_at is None and time.monotonic() - start >= KILL_AT_S:
                await asyncio.to_thread(kill)
                killed_at = time.monotonic()
            if killed_at is not None and recovered_at is None and i % 3 == 0:
                states = await asyncio.gather(*(degraded(client, url) for url in urls))
                seen_degraded = seen_degraded or any(states)
                if seen_degraded and not any(states):
                    recovered_at = time.monotonic()
            await asyncio.sleep(PACE_S)
        await asyncio.gather(*sent)
    assert killed_at is not None
    return statuses, (recovered_at - killed_at) if recovered_at is not None else float("inf")


@dataclass
class Failover:
    requests: int
    admitted: int
    errors: int
    recovery_s: float
    questions: int
    cross_tenant_hits: int
    same_tenant_hits: int


def _key(url: str, spec: dict[str, object]) -> dict[str, str]:
    created = httpx.post(url + "/admin/keys", json=spec, headers=bearer(ADMIN), timeout=10)
    assert created.status_code == 201, created.text
    return dict(created.json())


async def _measure(urls: list[str], limited: dict[str, str], kill: Callable[[], None], alpha: str,
                   beta: str) -> tuple[list[int], float, tuple[int, int, int]]:
    async with httpx.AsyncClient(timeout=30) as client:
        tenants = asyncio.create_task(cross_tenant_hits(client, urls, alpha, beta, time.monotonic() + LOAD_S))
        statuses, recovery_s = await run_load(urls, limited["secret"], kill)
        return statuses, recovery_s, await tenants


def failover_under_load(vllm_sim: SimulatorThread, redis_url: str, tmp_path: Path,
                        primary_of: Callable[[str], Callable[[], None]]) -> Failover:
    """`run_load` behind three gateways on `redis_url`, two tenants asking the same questions meanwhile;
    `primary_of(key id)` gives what kills the primary holding that key's counters."""
    catalog = tmp_path / "models.yaml"
    catalog.write_text(catalog_yaml([("w", vllm_sim.url)]))
    env = {"REDIS_URL": redis_url, "GATEWAY_ADMIN_KEY": ADMIN, "GATEWAY_REDIS_TIMEOUT": "0.5"}
    with gateway_processes(catalog, env, count=REPLICAS, ready_path="/v1/models",
                           ready_headers=bearer(ADMIN)) as started:
        urls = [url for url, _process in started]
        limited = _key(urls[0], {"limits": {"requests_per_minute": LIMIT}})
        alpha, beta = (_key(urls[0], {"metadata": {"team": team}})["secret"] for team in ("alpha", "beta"))
        statuses, recovery_s, (questions, cross, same) = asyncio.run(
            _measure(urls, limited, primary_of(limited["id"]), alpha, beta))
    result = Failover(len(statuses), statuses.count(200), sum(status >= 500 for status in statuses), recovery_s,
                      questions, cross, same)
    print(f"\n{result}")  # shown with -s
    return result


def record(figure: int, result: Failover) -> None:
    """The figure's records, then its assertions."""
    record_figure(figure, f"admitted of {result.requests} requests over {REPLICAS} replicas, key limited to "
                  f"{LIMIT}/min, primary killed", result.admitted, met=LIMIT <= result.admitted <= BOUND,
                  threshold=f"{LIMIT} to {BOUND} (Redis's count plus what each replica admitted alone while "
                            "it could not reach Redis)")
    record_figure(figure, "5xx answers during the failover (fail-open)", result.errors, threshold="0",
                  met=result.errors == 0)
    record_figure(figure, f"another tenant's identical question answered from the cache ({result.questions} "
                  f"questions; the same tenant's: {result.same_tenant_hits})", result.cross_tenant_hits,
                  threshold="0 (and the same tenant's > 0: the cache at work)",
                  met=result.cross_tenant_hits == 0 < result.same_tenant_hits)
    record_figure(figure, "every replica back on Redis after the kill", round(result.recovery_s, 2), unit="s",
                  threshold="recorded (< 15 s)", met=result.recovery_s < 15.0)
    assert result.errors == 0  # fail-open: the outage never reaches the client
    assert LIMIT <= result.admitted <= BOUND
    assert result.cross_tenant_hits == 0 < result.same_tenant_hits
    assert result.recovery_s < 15.0


@pytest.mark.figure(17)
def test_a_killed_cluster_primary_under_load(vllm_sim: SimulatorThread, redis_cluster: RedisClusterServers,
                                             tmp_path: Path) -> None:
    def primary_of(key_id: str) -> Callable[[], None]:
        return redis_cluster.primary_for(f"llmgw:rl:{{key:{key_id}}}:req".encode()).kill
    record(17, failover_under_load(vllm_sim, redis_cluster.url, tmp_path, primary_of))


@pytest.mark.figure(18)
def test_a_killed_sentinel_primary_under_load(vllm_sim: SimulatorThread, redis_sentinel: RedisSentinelServers,
                                              tmp_path: Path) -> None:
    record(18, failover_under_load(vllm_sim, redis_sentinel.url, tmp_path,
                                   lambda _key_id: redis_sentinel.primary().kill))
