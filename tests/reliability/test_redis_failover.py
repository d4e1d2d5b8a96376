"""Three gateway processes share a Redis Cluster (or a Sentinel-managed primary); a key is limited to N
requests a minute; load runs and the primary holding the key's counters is killed. Measured: requests
admitted against N, 5xx answers (none in fail-open mode), and how long until every replica decides
through Redis again. (The measurements behind reliability figures for clusters and Sentinel; not
recorded as figures yet.)

Over N by design: while Redis cannot answer, each replica admits on its own (fail-open, up to N each),
and Redis, once back, counts only what it saw (a killed primary may also lose its last writes)."""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Callable
from pathlib import Path

import httpx

from simulator import SimulatorThread
from testkit.redis_cluster import RedisClusterServers
from testkit.redis_sentinel import RedisSentinelServers
from tests.conftest import catalog_yaml
from tests.servers import gateway_processes

ADMIN = "sk-gw-admin-for-failover-tests"
CHAT = {"model": "chat", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 8}
LIMIT = 60
PACE_S = 0.1
LOAD_S = 14.0
KILL_AT_S = 3.0
_DEGRADED = re.compile(r"^llm_gateway_limits_degraded (\S+)$", re.MULTILINE)


def bearer(secret: str) -> dict[str, str]:
    return {"authorization": f"Bearer {secret}"}


async def degraded(client: httpx.AsyncClient, url: str) -> bool:
    found = _DEGRADED.search((await client.get(url + "/metrics")).text)
    return found is not None and float(found.group(1)) > 0


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


def failover_under_load(vllm_sim: SimulatorThread, redis_url: str, tmp_path: Path,
                        primary_of: Callable[[str], Callable[[], None]]) -> tuple[int, int, int, float]:
    """(requests, admitted, 5xx, recovery seconds) of `run_load` behind three gateways on `redis_url`;
    `primary_of(key id)` gives what kills the primary holding that key's counters."""
    catalog = tmp_path / "models.yaml"
    catalog.write_text(catalog_yaml([("w", vllm_sim.url)]))
    env = {"REDIS_URL": redis_url, "GATEWAY_ADMIN_KEY": ADMIN, "GATEWAY_REDIS_TIMEOUT": "0.5"}
    with gateway_processes(catalog, env, count=3, ready_path="/v1/models", ready_headers=bearer(ADMIN)) as started:
        urls = [url for url, _process in started]
        created = httpx.post(urls[0] + "/admin/keys", json={"limits": {"requests_per_minute": LIMIT}},
                             headers=bearer(ADMIN), timeout=10)
        assert created.status_code == 201, created.text
        statuses, recovery_s = asyncio.run(run_load(urls, created.json()["secret"],
                                                    primary_of(created.json()["id"])))
    admitted, errors = statuses.count(200), sum(status >= 500 for status in statuses)
    print(f"\n{len(statuses)} requests, {admitted} admitted (limit {LIMIT}), {errors} 5xx, every replica "
          f"back on Redis {recovery_s:.2f} s after the kill")  # shown with -s
    assert errors == 0, sorted(set(statuses))  # fail-open: the outage never reaches the client
    assert LIMIT <= admitted <= 3 * LIMIT  # over the limit only by what replicas admitted on their own
    assert recovery_s < 15.0
    return len(statuses), admitted, errors, recovery_s


def test_a_killed_cluster_primary_under_load(vllm_sim: SimulatorThread, redis_cluster: RedisClusterServers,
                                             tmp_path: Path) -> None:
    def primary_of(key_id: str) -> Callable[[], None]:
        return redis_cluster.primary_for(f"llmgw:rl:{{key:{key_id}}}:req".encode()).kill
    failover_under_load(vllm_sim, redis_cluster.url, tmp_path, primary_of)


def test_a_killed_sentinel_primary_under_load(vllm_sim: SimulatorThread, redis_sentinel: RedisSentinelServers,
                                              tmp_path: Path) -> None:
    failover_under_load(vllm_sim, redis_sentinel.url, tmp_path, lambda _key_id: redis_sentinel.primary().kill)
