"""What the soak runs against: real Redis, a fleet of simulated vLLM workers and one `llm-gateway serve`
with everything on (a keys file with a limited key, Redis limits and cache, metrics, INFO logs to a file).

The fleet: `workers` simulators serving the model `soak`, and one more serving the fault models
(`simulator/faults.py`: a request whose model is a fault name gets that fault). Fault models live on a
worker of their own so that outlier ejection, which acts per worker, never takes a healthy worker away
from the normal traffic; their short timeouts keep a stalled stream from holding a connection 30 s.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path

from benchmarks import gateway_server, procs, redis_server

MODEL = "soak"
FAULT_MODELS = ("error-500", "drop-mid-stream", "stall-after-3", "mid-stream-error", "slow", "never-answer")
API_KEY = "soak-key"
KEY_ID = "key_soak"
AUTH_HEADERS = {"Authorization": f"Bearer {API_KEY}"}

LIMITS = {
    "requests_per_minute": 100_000_000,
    "tokens_per_minute": 10_000_000_000,
    "max_concurrent": 10_000,
    "token_budget": 1_000_000_000_000,
    "budget_period": "day",
}
"""Every kind of limit, each far above what a run can use: they are counted in Redis on every request
but never refuse (a 429 in the results means these were too low)."""

FAULT_TIMEOUTS = "{connect: 2, first_byte: 2, idle: 1, total: 10}"
SIMULATOR_ITL_S = 0.005
SIMULATOR_TTFT_S = 0.01


@dataclass(slots=True)
class Fleet:
    """The started processes and where they answer."""

    workdir: Path
    gateway_url: str = ""
    redis_url: str = ""
    gateway: procs.Child | None = None
    gateway_log: Path | None = None
    children: list[procs.Child] = field(default_factory=list)

    @property
    def gateway_pid(self) -> int:
        if self.gateway is None:
            raise RuntimeError("the gateway is not running")
        return self.gateway.pid

    async def stop(self) -> None:
        for child in reversed(self.children):
            try:
                await child.stop()
            except Exception as exc:  # keep stopping the others
                print(f"could not stop {child.name} (pid {child.pid}): {exc}", file=sys.stderr, flush=True)
        self.children.clear()


def catalog_text(normal_ports: list[int], fault_port: int) -> str:
    lines = ["models:", f"  - name: {MODEL}"]
    lines += [f"  - name: {name}\n    timeouts: {FAULT_TIMEOUTS}" for name in FAULT_MODELS]
    lines += ["routing:", f"  default_model: {MODEL}", "workers:"]
    for index, port in enumerate(normal_ports):
        lines += [
            f"  - name: sim-{index}",
            "    kind: vllm",
            f"    base_url: http://{procs.LOOPBACK}:{port}/v1",
            f"    models: [{MODEL}]",
        ]
    lines += [
        "  - name: sim-faults",
        "    kind: vllm",
        f"    base_url: http://{procs.LOOPBACK}:{fault_port}/v1",
        f"    models: [{', '.join(FAULT_MODELS)}]",
    ]
    return "\n".join(lines) + "\n"


def keys_text() -> str:
    secret_hash = hashlib.sha256(API_KEY.encode()).hexdigest()
    lines = ["keys:", f"  - id: {KEY_ID}", f"    secret_hash: {secret_hash}", "    scope: user", "    limits:"]
    lines += [f"      {name}: {value}" for name, value in LIMITS.items()]
    return "\n".join(lines) + "\n"


def _entry() -> list[str]:
    script = gateway_server.BIN / "llm-gateway"
    return [str(script)] if script.exists() else [sys.executable, "-m", "gateway"]


async def _start_simulator(fleet: Fleet, name: str, port: int, models: tuple[str, ...]) -> None:
    argv = [
        *_entry(),
        "simulate",
        "--kind",
        "vllm",
        "--host",
        procs.LOOPBACK,
        "--port",
        str(port),
        "--itl",
        str(SIMULATOR_ITL_S),
        "--ttft",
        str(SIMULATOR_TTFT_S),
        "--max-records",
        "1000",
    ]
    for model in models:
        argv += ["--model", model]
    child = await procs.start(name, argv, fleet.workdir / f"{name}.log", cwd=gateway_server.ROOT)
    fleet.children.append(child)
    await procs.wait_until_ready(child, f"http://{procs.LOOPBACK}:{port}/health", timeout_s=60.0)


async def start_fleet(workdir: Path, *, workers: int, redis_url: str | None) -> Fleet:
    """Start Redis (unless `redis_url`), the simulators and the gateway; stops what started on failure."""
    fleet = Fleet(workdir)
    try:
        if redis_url is None:
            port = procs.free_port()
            fleet.children.append(await redis_server.start_redis(workdir / "redis", port))
            redis_url = f"redis://{procs.LOOPBACK}:{port}/0"
        fleet.redis_url = redis_url
        normal_ports = [procs.free_port() for _ in range(workers)]
        fault_port = procs.free_port()
        await asyncio.gather(
            *(_start_simulator(fleet, f"sim-{i}", p, (MODEL,)) for i, p in enumerate(normal_ports)),
            _start_simulator(fleet, "sim-faults", fault_port, FAULT_MODELS),
        )
        catalog = workdir / "catalog.yaml"
        keys = workdir / "keys.yaml"
        await asyncio.to_thread(catalog.write_text, catalog_text(normal_ports, fault_port))
        await asyncio.to_thread(keys.write_text, keys_text())
        port = procs.free_port()
        env = gateway_server.environment(catalog, port, keys_file=keys, redis_url=redis_url)
        env.update(LOG_LEVEL="info", GATEWAY_CACHE="true", GATEWAY_DRAIN_SECONDS="0")
        env.pop("PROMETHEUS_MULTIPROC_DIR", None)
        fleet.gateway_log = workdir / "gateway.log"
        fleet.gateway = await procs.start(
            "gateway", gateway_server.argv("serve", port), fleet.gateway_log, env=env, cwd=gateway_server.ROOT
        )
        fleet.children.append(fleet.gateway)
        fleet.gateway_url = f"http://{procs.LOOPBACK}:{port}"
        await procs.wait_until_ready(fleet.gateway, fleet.gateway_url + "/readyz", timeout_s=60.0)
    except BaseException:
        await fleet.stop()
        raise
    return fleet


def external_redis_url() -> str | None:
    """`REDIS_URL` from the environment, if the run should use that Redis instead of starting one."""
    return os.environ.get("REDIS_URL") or None
