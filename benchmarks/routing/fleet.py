"""What one (workload, policy) pair of the routing suite runs against: a fresh fleet of simulated vLLM
workers (empty KV caches) and one gateway or several independent replicas whose catalog routes the model
`bench` to them with the policy, all started by the harness's launcher; and the simulators' prefix-cache
counters afterwards."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import AsyncIterator
from pathlib import Path

import httpx

from benchmarks.harness import gateway, procs
from benchmarks.routing.fleet_settings import FleetSettings
from testkit.loopback import LOOPBACK, free_port

POLICIES = ("round_robin", "least_outstanding", "prefix_affinity")
"""Run on every workload by default."""
SESSION_POLICY = "session_affinity"
"""Also run, by default, on the workloads whose requests carry a user id (it keys on it)."""
PRECISE = "prefix_affinity_precise"
"""Prefix affinity from the workers' KV events (every simulator publishes them): run on request only."""
PREFIX_OPTIONS: dict[str, float | int] = {"balance_abs": 16, "balance_rel": 1.5, "match_threshold": 0.3,
                                          "load_factor": 2.0}
"""balance_abs 16 (as in the prod catalog): about 2.5x the mean outstanding requests per worker at
concurrency 48, so SGLang's imbalance rule only fires on real pile-ups; balance_rel and match_threshold
are SGLang's defaults. load_factor 2.0: the bounded-load guard at the skewed target itself (no worker over
2x the mean); in a sweep on the skewed workload (time scale 4), 1.25 and 1.5 spread the hot group and
some cold ones to more workers than needed (3.1 and 1.9 workers per group, 199 and 121 first-visit misses
against 73 at 2.0) and lost throughput."""
HEALTH_INTERVAL_S = 1.0
_METRICS = ("vllm:prefix_cache_hits_total", "vllm:prefix_cache_queries_total",
            "vllm:e2e_request_latency_seconds_count")


def catalog_text(policy: str, options: dict[str, float | int], ports: list[int], logdir: Path) -> str:
    lines = ["models:", "  - name: bench", f"    policy: {policy}"]
    if policy in ("prefix_affinity", PRECISE):
        lines.append(f"    policy_options: {json.dumps(options)}")
    lines += ["routing:", "  default_model: bench", "health:", f"  interval: {HEALTH_INTERVAL_S}", "workers:"]
    for index, port in enumerate(ports):
        lines += [f"  - name: sim-{index}", "    kind: vllm", f"    base_url: http://{LOOPBACK}:{port}/v1",
                  "    models: [{name: bench, upstream_id: sim-model}]"]
        if policy == PRECISE:
            lines.append(f"    kv_events: {{endpoint: '{kv_endpoint(logdir, index)}', tokenizer: simulator}}")
    return "\n".join(lines) + "\n"


def kv_endpoint(logdir: Path, index: int) -> str:
    """Where simulator `index` publishes its KV events: a Unix socket in the run's directory (no port to find).
    Every simulator publishes, whatever the policy, so every policy pays the same."""
    return f"ipc://{logdir.resolve()}/sim-{index}.kv"


@contextlib.asynccontextmanager
async def fleet(settings: FleetSettings, logdir: Path) -> AsyncIterator[tuple[list[int], list[int]]]:
    """`settings.workers` simulated vLLM workers, each in its own process; yields their ports and pids."""
    ports = [free_port() for _ in range(settings.workers)]
    children = await procs.start_together([
        gateway.start_simulator(f"sim-{index}", port, logdir, ["--seed", str(index), *settings.simulate_args(),
                                "--kv-events-endpoint", kv_endpoint(logdir, index)], models=("sim-model",))
        for index, port in enumerate(ports)
    ])  # fmt: skip
    try:
        yield ports, [child.pid for child in children]
    finally:
        await asyncio.gather(*(child.stop() for child in children), return_exceptions=True)


async def _wait_for_scrapes(url: str, workers: int) -> None:
    """The policy learns each worker's num_gpu_blocks from the first scrape: wait until all are seen."""
    probe = {"model": "bench", "messages": [{"role": "user", "content": "probe"}]}
    deadline = time.monotonic() + 10 * HEALTH_INTERVAL_S + 5
    async with httpx.AsyncClient(trust_env=False, timeout=5) as client:
        while True:
            answer = (await client.post(url + "/v1/routing/explain", json=probe)).json()
            seen = [w for w in answer["candidates"][0]["workers"] if w["waiting"] is not None]
            if len(seen) == workers:
                return
            if time.monotonic() > deadline:
                raise RuntimeError(f"the gateway scraped {len(seen)} of {workers} workers: {answer}")
            await asyncio.sleep(0.1)


@contextlib.asynccontextmanager
async def routing_gateways(catalog: str, logdir: Path, workers: int,
                           replicas: int = 1) -> AsyncIterator[tuple[list[str], list[int]]]:
    """`replicas` gateways serving `catalog`, each on its own (no shared state: each routes from what it
    sees); yields their URLs and pids once every one has scraped every worker's load once."""
    path = logdir / "catalog.yaml"
    path.write_text(catalog)
    ports = [free_port() for _ in range(replicas)]
    # Anonymous loopback clients, no per-caller rate limit: the benchmark measures routing, not admission.
    children = await procs.start_together([
        gateway.start_gateway(logdir, path, port, label=f"routing-{index}", extra_env={"RATE_LIMIT_RPM": "0"})
        for index, port in enumerate(ports)
    ])  # fmt: skip
    urls = [f"http://{LOOPBACK}:{port}" for port in ports]
    try:
        await asyncio.gather(*(_wait_for_scrapes(url, workers) for url in urls))
        yield urls, [child.pid for child in children]
    finally:
        await asyncio.gather(*(child.stop() for child in children), return_exceptions=True)


async def simulator_counters(ports: list[int]) -> list[dict[str, float]]:
    """Each simulator's prefix-cache counters (tokens) and finished requests, from its /metrics."""
    counters = []
    async with httpx.AsyncClient(trust_env=False, timeout=5) as client:
        for port in ports:
            text = (await client.get(f"http://{LOOPBACK}:{port}/metrics")).text
            values = dict.fromkeys(_METRICS, 0.0)
            for line in text.splitlines():
                name = line.split("{", 1)[0].split(" ", 1)[0]
                if name in values:
                    values[name] += float(line.rsplit(" ", 1)[1])
            counters.append({"hits": values[_METRICS[0]], "queries": values[_METRICS[1]],
                             "finished": values[_METRICS[2]]})
    return counters
