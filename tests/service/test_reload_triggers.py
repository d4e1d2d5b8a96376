"""Hot reload by file change (polled) and by SIGHUP, on a real `llm-gateway serve` process."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from simulator import SimulatorThread
from testkit.loopback import free_port
from tests.conftest import catalog_yaml
from tests.servers import wait_until


def _models(url: str) -> list[str] | None:
    try:
        return [m["id"] for m in httpx.get(url + "/v1/models", timeout=1).json()["data"]]
    except httpx.HTTPError:
        return None


@pytest.fixture
def served(vllm_sim: SimulatorThread, tmp_path: Path) -> Iterator[tuple[str, Path, int]]:
    path = tmp_path / "models.yaml"
    path.write_text(catalog_yaml([("w", vllm_sim.url)], extra_models=("aaaa",)))
    port = free_port()
    env = {**os.environ, "GATEWAY_PORT": str(port), "LOG_LEVEL": "warning"}
    process = subprocess.Popen([sys.executable, "-m", "gateway", "serve", "--no-local-workers", "--config", str(path)],
                               env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    try:
        assert wait_until(lambda: _models(url) is not None), "the gateway did not start"
        yield url, path, process.pid
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=15)


def test_a_changed_file_is_reloaded(served: tuple[str, Path, int]) -> None:
    url, path, _pid = served
    path.write_text(path.read_text().replace("aaaa", "bbbb"))
    assert wait_until(lambda: "bbbb" in (_models(url) or []))


def test_sighup_reloads(served: tuple[str, Path, int]) -> None:
    url, path, pid = served
    stat = path.stat()
    # Same size and modification time: only the signal can make the gateway notice.
    path.write_text(path.read_text().replace("aaaa", "cccc"))
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    threading.Event().wait(2.5)  # longer than the file poll: prove the poll did not see it
    assert "aaaa" in (_models(url) or [])
    os.kill(pid, signal.SIGHUP)
    assert wait_until(lambda: "cccc" in (_models(url) or []))
