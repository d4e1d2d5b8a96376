"""Allocation snapshots on SIGUSR2 (`gateway.observability.allocation_snapshots`), on a real `llm-gateway
serve` process: the allocator stats each time, and a snapshot tracemalloc can read when allocations are
traced."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tracemalloc
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

from simulator import SimulatorThread
from testkit.loopback import free_port
from tests.conftest import catalog_yaml
from tests.servers import wait_until


def _ready(url: str) -> bool:
    try:
        return httpx.get(url + "/livez", timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


@contextmanager
def _gateway(tmp_path: Path, sim: SimulatorThread, env: dict[str, str]) -> Iterator[tuple[str, int, Path]]:
    catalog = tmp_path / "models.yaml"
    catalog.write_text(catalog_yaml([("w", sim.url)]))
    port = free_port()
    log = tmp_path / "gateway.log"
    inherited = {name: value for name, value in os.environ.items() if name != "PYTHONTRACEMALLOC"}
    full_env = {**inherited, "GATEWAY_PORT": str(port), "LOG_LEVEL": "info", **env}
    with log.open("w") as out:
        process = subprocess.Popen([sys.executable, "-m", "gateway", "serve", "--no-local-workers", "--config",
                                    str(catalog)], env=full_env, stdout=out, stderr=out)
    url = f"http://127.0.0.1:{port}"
    try:
        assert wait_until(lambda: _ready(url), timeout=180), "the gateway did not start"  # tracing slows imports
        yield url, process.pid, log
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=15)


def test_sigusr2_writes_a_snapshot_tracemalloc_can_read(vllm_sim: SimulatorThread, tmp_path: Path) -> None:
    snapshots = tmp_path / "snapshots"
    env = {"PYTHONTRACEMALLOC": "2", "GATEWAY_TRACEMALLOC_DIR": str(snapshots)}
    with _gateway(tmp_path, vllm_sim, env) as (url, pid, _log):
        httpx.post(url + "/v1/chat/completions", timeout=10,
                   json={"model": "m", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 4})
        os.kill(pid, signal.SIGUSR2)
        assert wait_until(lambda: len(list(snapshots.glob("*.json"))) == 1, timeout=30)
        os.kill(pid, signal.SIGUSR2)
        assert wait_until(lambda: len(list(snapshots.glob("*.json"))) == 2, timeout=30)
        assert _ready(url)  # the process goes on serving

    first, second = sorted(snapshots.glob("*.json"))
    facts = json.loads(first.read_text())
    assert facts["snapshot"] == f"{pid}-0001.tracemalloc" and second.name == f"{pid}-0002.json"
    assert facts["frames"] == 2 and facts["traced_bytes"] > 0
    assert facts["rss_bytes"] > facts["malloc_in_use_bytes"] > 0 and facts["python_blocks"] > 0
    snapshot = tracemalloc.Snapshot.load(str(snapshots / facts["snapshot"]))
    assert snapshot.traceback_limit == 2
    assert sum(stat.size for stat in snapshot.statistics("filename")) > 0
    assert not list(snapshots.glob("*.partial"))


def test_without_tracing_sigusr2_writes_the_allocator_stats_alone(vllm_sim: SimulatorThread,
                                                                    tmp_path: Path) -> None:
    snapshots = tmp_path / "snapshots"
    with _gateway(tmp_path, vllm_sim, {"GATEWAY_TRACEMALLOC_DIR": str(snapshots)}) as (url, pid, _log):
        os.kill(pid, signal.SIGUSR2)
        assert wait_until(lambda: len(list(snapshots.glob("*.json"))) == 1, timeout=30)
        assert _ready(url)

    [written] = snapshots.iterdir()
    facts = json.loads(written.read_text())
    assert written.name == f"{pid}-0001.json" and "snapshot" not in facts and "traced_bytes" not in facts
    assert facts["rss_bytes"] > facts["malloc_in_use_bytes"] > 0
    assert facts["malloc_free_kept_bytes"] >= 0 and facts["gc_objects"] > 0
    assert facts["pymalloc_arenas"] > 0 and 0 < facts["pymalloc_allocated_bytes"] < facts["pymalloc_arenas"] * 2**20
