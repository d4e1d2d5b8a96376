"""What the soak runs against: real Redis, a fleet of simulated vLLM workers and one `llm-gateway serve`
with everything on (a keys file with a limited key, Redis limits and cache, metrics, INFO logs to a file).

The fleet: `workers` simulators serving the model `soak`, one serving the long streams' model `soak-long`
(a reply of thousands of tokens at a GPU's pace: tens of seconds each), and one more serving the fault models
(`simulator/faults.py`: a request whose model is a fault name gets that fault). Fault models live on a
worker of their own so that outlier ejection, which acts per worker, never takes a healthy worker away
from the normal traffic; their short timeouts keep a stalled stream from holding a connection 30 s.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from benchmarks.harness import gateway, procs
from testkit.loopback import LOOPBACK, free_port
from testkit.redis_server import RedisServer, preferred_binary

MODEL = "soak"
LONG_MODEL = "soak-long"
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
LONG_ITL_S = 0.02
"""The long streams' pace: 50 tokens/s, a busy GPU's (the normal workers' 5 ms keeps short requests cheap)."""
LONG_SPREAD = 0.25
"""A long stream's length is its mean ± this share."""


def long_reply_tokens(mean_s: float) -> tuple[int, int]:
    """The range of the long worker's reply lengths, in tokens, for streams of `mean_s` seconds on average."""
    mean_tokens = mean_s / LONG_ITL_S
    return max(1, round(mean_tokens * (1 - LONG_SPREAD))), max(1, round(mean_tokens * (1 + LONG_SPREAD)))


@dataclass(slots=True)
class Fleet:
    """The started processes and where they answer."""

    workdir: Path
    gateway_url: str = ""
    redis_url: str = ""
    gateway: procs.Child | None = None
    redis: RedisServer | None = None
    children: list[procs.Child] = field(default_factory=list)

    @property
    def gateway_pid(self) -> int:
        if self.gateway is None:
            raise RuntimeError("the gateway is not running")
        return self.gateway.pid

    @property
    def gateway_log(self) -> Path:
        if self.gateway is None:
            raise RuntimeError("the gateway is not running")
        return self.gateway.log_path

    async def stop(self, say: Callable[[str], None]) -> None:
        for child in reversed(self.children):
            await procs.stop_or_say(child, say)
        self.children.clear()
        if self.redis is not None:
            await asyncio.to_thread(self.redis.close)
            self.redis = None


def catalog_text(normal_ports: list[int], fault_port: int, long_port: int) -> str:
    lines = ["models:", f"  - name: {MODEL}", f"  - name: {LONG_MODEL}"]
    lines += [f"  - name: {name}\n    timeouts: {FAULT_TIMEOUTS}" for name in FAULT_MODELS]
    lines += ["routing:", f"  default_model: {MODEL}", "workers:"]
    for index, port in enumerate(normal_ports):
        lines += [
            f"  - name: sim-{index}",
            "    kind: vllm",
            f"    base_url: http://{LOOPBACK}:{port}/v1",
            f"    models: [{MODEL}]",
        ]
    lines += [
        "  - name: sim-long",
        "    kind: vllm",
        f"    base_url: http://{LOOPBACK}:{long_port}/v1",
        f"    models: [{LONG_MODEL}]",
        "  - name: sim-faults",
        "    kind: vllm",
        f"    base_url: http://{LOOPBACK}:{fault_port}/v1",
        f"    models: [{', '.join(FAULT_MODELS)}]",
    ]
    return "\n".join(lines) + "\n"


def keys_text() -> str:
    secret_hash = hashlib.sha256(API_KEY.encode()).hexdigest()
    lines = ["keys:", f"  - id: {KEY_ID}", f"    secret_hash: {secret_hash}", "    scope: user", "    limits:"]
    lines += [f"      {name}: {value}" for name, value in LIMITS.items()]
    return "\n".join(lines) + "\n"


async def _start_simulators(fleet: Fleet, normal_ports: list[int], fault_port: int, long_port: int,
                            long_stream_s: float) -> None:
    options = ["--itl", str(SIMULATOR_ITL_S), "--ttft", str(SIMULATOR_TTFT_S), "--max-records", "1000"]
    low, high = long_reply_tokens(long_stream_s)
    long_options = [*options, "--itl", str(LONG_ITL_S), "--reply-tokens", str(low), str(high),
                    "--max-model-len", str(max(8192, high + 1024)), "--max-running", "1024"]
    fleet.children += await procs.start_together([
        *(gateway.start_simulator(f"sim-{i}", port, fleet.workdir, options, models=(MODEL,))
          for i, port in enumerate(normal_ports)),
        gateway.start_simulator("sim-long", long_port, fleet.workdir, long_options, models=(LONG_MODEL,)),
        gateway.start_simulator("sim-faults", fault_port, fleet.workdir, options, models=FAULT_MODELS),
    ])  # fmt: skip


async def _start_redis(fleet: Fleet) -> str:
    fleet.redis = RedisServer(binary=preferred_binary())
    await asyncio.to_thread(fleet.redis.start)
    return fleet.redis.url


async def start_fleet(workdir: Path, *, workers: int, redis_url: str | None, say: Callable[[str], None],
                      long_stream_s: float, gateway_env: Mapping[str, str] | None = None) -> Fleet:
    """Start Redis (unless `redis_url`), the simulators and the gateway (`gateway_env` added to its
    environment); stops what started on failure. `long_stream_s`: the long streams' mean length."""
    fleet = Fleet(workdir)
    try:
        fleet.redis_url = redis_url or await _start_redis(fleet)
        normal_ports = [free_port() for _ in range(workers)]
        fault_port, long_port = free_port(), free_port()
        await _start_simulators(fleet, normal_ports, fault_port, long_port, long_stream_s)
        catalog = workdir / "catalog.yaml"
        keys = workdir / "keys.yaml"
        await asyncio.to_thread(catalog.write_text, catalog_text(normal_ports, fault_port, long_port))
        await asyncio.to_thread(keys.write_text, keys_text())
        port = free_port()
        everything_on = {"LOG_LEVEL": "info", "GATEWAY_CACHE": "true", "GATEWAY_DRAIN_SECONDS": "0",
                         **(gateway_env or {})}
        fleet.gateway = await gateway.start_gateway(
            workdir, catalog, port, label="soak", keys_file=keys, redis_url=fleet.redis_url, extra_env=everything_on,
            ready_path="/readyz",
        )  # fmt: skip
        fleet.children.append(fleet.gateway)
        fleet.gateway_url = f"http://{LOOPBACK}:{port}"
    except BaseException:
        await fleet.stop(say)
        raise
    return fleet


def external_redis_url() -> str | None:
    """`REDIS_URL` from the environment, if the run should use that Redis instead of starting one."""
    return os.environ.get("REDIS_URL") or None
