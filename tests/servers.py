"""Real servers on loopback for tests: an ASGI app under uvicorn in a thread of its own, and real
`llm-gateway serve` processes."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from types import TracebackType

import httpx
import uvicorn
from litestar.types import ASGIApp

from testkit.loopback import free_port


class ServerThread:
    """Runs an ASGI app under uvicorn (httptools) on 127.0.0.1 on a free port, in a daemon thread."""

    def __init__(self, app: ASGIApp) -> None:
        config = uvicorn.Config(app, host="127.0.0.1", port=0, loop="asyncio", http="httptools",
                                lifespan="on", access_log=False, log_level="warning")
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._run, daemon=True, name="test-server")
        self.port = 0
        self.loop: asyncio.AbstractEventLoop | None = None

    def _run(self) -> None:
        asyncio.run(self._serve())

    async def _serve(self) -> None:
        self.loop = asyncio.get_running_loop()
        await self._server.serve()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> ServerThread:
        self._thread.start()
        ready = threading.Event()
        while not ready.wait(0.01):
            if self._server.started:
                ready.set()
            elif not self._thread.is_alive():
                raise RuntimeError("the test server failed to start")
        self.port = self._server.servers[0].sockets[0].getsockname()[1]
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=10)


@contextmanager
def gateway_processes(catalog: Path, env: Mapping[str, str], *, count: int = 1, ready_path: str = "/livez",
                      ready_headers: Mapping[str, str] | None = None, stop_signal: int = signal.SIGTERM,
                      ) -> Iterator[list[tuple[str, subprocess.Popen[bytes]]]]:
    """`count` real `llm-gateway serve` processes (no local workers) on free ports, each ready (its
    `ready_path` answered 200) before this yields their URLs and processes; stopped at the end."""
    started: list[tuple[str, subprocess.Popen[bytes]]] = []
    try:
        for _ in range(count):
            port = free_port()
            process = subprocess.Popen(
                [sys.executable, "-m", "gateway", "serve", "--no-local-workers", "--config", str(catalog)],
                env={**os.environ, "LOG_LEVEL": "warning", **env, "GATEWAY_PORT": str(port)},
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            started.append((f"http://127.0.0.1:{port}", process))
        deadline = time.monotonic() + 30
        for url, _process in started:
            while True:
                try:
                    if httpx.get(url + ready_path, headers=dict(ready_headers or {}), timeout=1).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                assert time.monotonic() < deadline, f"the gateway at {url} did not start"
                threading.Event().wait(0.1)
        yield started
    finally:
        for _url, process in started:
            if process.poll() is None:
                process.send_signal(stop_signal)
        for _url, process in started:
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()


def wait_until(predicate: Callable[[], bool], timeout: float = 15.0) -> bool:
    """Poll `predicate` every 0.1 s until it holds (True) or `timeout` seconds passed (False)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        threading.Event().wait(0.1)
    return False
