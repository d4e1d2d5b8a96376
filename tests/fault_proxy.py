"""A fault-injecting TCP proxy for reliability tests (Toxiproxy cannot be installed here).

`FaultProxy(target_port)` listens on a free loopback port and forwards every connection to the target
(a worker, Redis), on its own event loop in a daemon thread. Faults are set at runtime from any thread
and apply at once to every open and future connection:

| call                      | effect                                                                   |
|---------------------------|--------------------------------------------------------------------------|
| `set_latency(s)`          | each chunk, either way, is held `s` seconds before it is forwarded      |
| `limit_bandwidth(bps)`    | each direction forwards at most `bps` bytes per second                  |
| `stall()` / `resume()`    | nothing is forwarded, sockets stay open (a frozen peer); then carry on  |
| `truncate_after(n)`       | after `n` bytes from the target on a connection: FIN to the client, RST to the target |
| `reset()`                 | RST both sides of every open connection (the listener stays)            |
| `kill()` / `revive()`     | close the listener and RST every connection (a dead peer); listen again on the same port |
| `clear()`                 | every fault off                                                          |
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import struct
import threading
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, TypeVar

_T = TypeVar("_T")
_READ_SIZE = 65536
_BANDWIDTH_SLICE_S = 0.05
"""With a bandwidth limit, data goes out in pieces of this many seconds' worth."""


def _abort(writer: asyncio.StreamWriter) -> None:
    """Close with an RST (SO_LINGER 0) rather than a FIN."""
    sock = writer.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()


@dataclass(eq=False)
class _Connection:
    """One proxied connection: the client's side, the target's side, and the two pumps between them."""

    client: asyncio.StreamWriter
    target: asyncio.StreamWriter
    sent_to_client: int = 0
    pumps: list[asyncio.Task[None]] = field(default_factory=list)

    def reset(self) -> None:
        for task in self.pumps:
            task.cancel()
        _abort(self.client)
        _abort(self.target)

    def cut(self, current: asyncio.Task[None] | None) -> None:
        """End the connection as a truncated answer: a clean FIN to the client, an RST to the target."""
        for task in self.pumps:
            if task is not current:
                task.cancel()
        self.client.close()
        _abort(self.target)


class FaultProxy:
    """A TCP proxy from 127.0.0.1:`port` to `target_host`:`target_port` whose faults tests switch at
    runtime; a context manager (started on enter, stopped on exit)."""

    def __init__(self, target_port: int, target_host: str = "127.0.0.1", *, start_timeout: float = 10.0) -> None:
        self.target = (target_host, target_port)
        self.port = 0
        self._start_timeout = start_timeout
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._stopped: asyncio.Event | None = None
        self._server: asyncio.Server | None = None
        self._connections: set[_Connection] = set()
        self._flowing: asyncio.Event | None = None
        self._latency_s = 0.0
        self._bandwidth: float | None = None
        self._truncate_after: int | None = None
        self.connections_total = 0
        """Connections accepted so far (the target reached)."""
        self.bytes_to_client = 0
        self.bytes_to_target = 0

    @property
    def url(self) -> str:
        """`http://127.0.0.1:<port>`, for an HTTP target."""
        return f"http://127.0.0.1:{self.port}"

    @property
    def open_connections(self) -> int:
        return self._call(lambda: len(self._connections))

    # Faults, settable from any thread.

    def set_latency(self, seconds: float) -> None:
        self._call(lambda: setattr(self, "_latency_s", seconds))

    def limit_bandwidth(self, bytes_per_second: float | None) -> None:
        """None: no limit."""
        if bytes_per_second is not None and bytes_per_second <= 0:
            raise ValueError("bytes_per_second must be positive")
        self._call(lambda: setattr(self, "_bandwidth", bytes_per_second))

    def truncate_after(self, nbytes: int | None) -> None:
        """Counted per connection from its start, target to client; None: no truncation."""
        self._call(lambda: setattr(self, "_truncate_after", nbytes))

    def stall(self) -> None:
        self._call(lambda: self._events().clear())

    def resume(self) -> None:
        self._call(lambda: self._events().set())

    def reset(self) -> int:
        """RST every open connection; how many there were."""

        def reset_all() -> int:
            connections = list(self._connections)
            for connection in connections:
                connection.reset()
            return len(connections)

        return self._call(reset_all)

    def kill(self) -> int:
        """Stop listening (new connections are refused) and RST every open one; how many there were."""

        def close_listener() -> None:
            if self._server is not None:
                self._server.close()
                self._server = None

        self._call(close_listener)
        return self.reset()

    def revive(self) -> None:
        """Listen again on the same port."""
        self._await(self._listen())

    def clear(self) -> None:
        def clear_all() -> None:
            self._latency_s, self._bandwidth, self._truncate_after = 0.0, None, None
            self._events().set()

        self._call(clear_all)

    # Lifecycle.

    def __enter__(self) -> FaultProxy:
        self._thread = threading.Thread(target=self._run, daemon=True, name=f"fault-proxy-{self.target[1]}")
        self._thread.start()
        if not self._ready.wait(self._start_timeout) or self.port == 0:
            raise RuntimeError("the fault proxy did not start")
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        if self._loop is not None and self._stopped is not None and self._thread is not None:
            with contextlib.suppress(RuntimeError):  # the loop is already gone
                self._loop.call_soon_threadsafe(self._stopped.set)
            self._thread.join(timeout=self._start_timeout)

    def _run(self) -> None:
        asyncio.run(self._main())

    async def _main(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stopped = asyncio.Event()
        self._flowing = asyncio.Event()
        self._flowing.set()
        try:
            await self._listen()
        finally:
            self._ready.set()
        await self._stopped.wait()
        if self._server is not None:
            self._server.close()
        for connection in list(self._connections):
            connection.reset()
        await asyncio.sleep(0)

    async def _listen(self) -> None:
        if self._server is None:
            self._server = await asyncio.start_server(self._serve, "127.0.0.1", self.port, reuse_address=True)
            self.port = self._server.sockets[0].getsockname()[1]

    def _events(self) -> asyncio.Event:
        assert self._flowing is not None
        return self._flowing

    def _call(self, function: Callable[[], _T]) -> _T:
        """Run `function` on the proxy's loop and wait for its result."""

        async def run() -> _T:
            return function()

        return self._await(run())

    def _await(self, coroutine: Coroutine[Any, Any, _T]) -> _T:
        if self._loop is None:
            coroutine.close()
            raise RuntimeError("the fault proxy is not running")
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop).result(timeout=self._start_timeout)

    # Forwarding.

    async def _serve(self, client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter) -> None:
        try:
            target_reader, target_writer = await asyncio.open_connection(*self.target)
        except OSError:
            _abort(client_writer)  # the target is down: so are we
            return
        connection = _Connection(client_writer, target_writer)
        self._connections.add(connection)
        self.connections_total += 1
        connection.pumps = [asyncio.create_task(self._pump(client_reader, target_writer, connection, False)),
                            asyncio.create_task(self._pump(target_reader, client_writer, connection, True))]
        try:
            await asyncio.gather(*connection.pumps, return_exceptions=True)
        finally:
            self._connections.discard(connection)
            client_writer.close()
            target_writer.close()

    async def _pump(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, connection: _Connection,
                    to_client: bool) -> None:
        flowing = self._events()
        try:
            while data := await reader.read(_READ_SIZE):
                await flowing.wait()
                if self._latency_s > 0:
                    await asyncio.sleep(self._latency_s)
                    await flowing.wait()
                if to_client and self._truncate_after is not None:
                    room = self._truncate_after - connection.sent_to_client
                    if len(data) >= room:
                        await self._write(writer, data[:max(room, 0)], to_client)
                        connection.sent_to_client += max(room, 0)
                        connection.cut(asyncio.current_task())
                        return
                await self._write(writer, data, to_client)
                if to_client:
                    connection.sent_to_client += len(data)
            if writer.can_write_eof():
                writer.write_eof()  # pass the half-close on
        except OSError:
            connection.reset()

    async def _write(self, writer: asyncio.StreamWriter, data: bytes, to_client: bool) -> None:
        rate = self._bandwidth
        step = max(1, len(data) if rate is None else int(rate * _BANDWIDTH_SLICE_S))
        for start in range(0, len(data), step):
            piece = data[start:start + step]
            writer.write(piece)
            await writer.drain()
            if to_client:
                self.bytes_to_client += len(piece)
            else:
                self.bytes_to_target += len(piece)
            if rate is not None:
                await asyncio.sleep(len(piece) / rate)
