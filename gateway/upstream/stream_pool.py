"""Opens streamed requests to workers on pooled keep-alive connections (`stream_connection`): the
request is written, the response's headers awaited within the try's wait, a non-2xx answer read and
raised as the protocol's rejection, a 2xx one handed back open for a relay to read or push.

Idle connections are kept per worker origin and closed after `IDLE_SECONDS` unused (the worker may
close them first: they leave the pool then). A connection reused from the pool that the worker closed
just as the request went out fails before any byte of answer: the request is sent once more on a new
connection, as browsers do (nothing of it reached the worker's model).
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Mapping
from urllib.parse import urlsplit

from gateway.errors import GatewayError, UpstreamTimeout, WorkerUnreachable
from gateway.upstream.stream_connection import UpstreamStream

IDLE_SECONDS = 15.0
"""How long an unused connection to a worker stays open (aiohttp's default too)."""

_MAX_ERROR_BODY = 64 * 1024


class _Origin:
    """A worker's address, parsed once: where to connect, and the request line's and Host's parts."""

    __slots__ = ("host", "host_header", "key", "path", "port", "tls")

    def __init__(self, url: str) -> None:
        parts = urlsplit(url)
        self.tls = parts.scheme == "https"
        self.host = parts.hostname or "localhost"
        self.port = parts.port or (443 if self.tls else 80)
        default = (self.tls and self.port == 443) or (not self.tls and self.port == 80)
        self.host_header = (parts.netloc.rsplit("@", 1)[-1]) if not default else self.host
        self.path = parts.path.rstrip("/")
        self.key = f"{parts.scheme}://{self.host}:{self.port}"


class StreamPool:
    """Keep-alive connections to workers for streamed requests, per origin."""

    def __init__(self) -> None:
        self._idle: dict[str, list[tuple[float, UpstreamStream]]] = {}
        self._origins: dict[str, _Origin] = {}
        self._sweep: asyncio.TimerHandle | None = None
        self._tls: ssl.SSLContext | None = None
        self._closed = False
        self._open: set[UpstreamStream] = set()
        """Every connection not yet closed, pooled or busy (closed with the pool)."""

    async def open(self, url: str, path: str, body: bytes, headers: Mapping[str, str], *, worker_name: str,
                   wait: float, connect_timeout: float) -> UpstreamStream:
        """POST `body` to `url` + `path` and wait at most `wait` s for the response's headers (at most
        `connect_timeout` of it to connect). Returns the open response, whatever its status."""
        origin = self._origins.get(url)
        if origin is None:
            origin = self._origins[url] = _Origin(url)
        request = _request_bytes(origin, path, body, headers)
        try:
            async with asyncio.timeout(wait):
                reused = self._take_idle(origin.key)
                if reused is not None:
                    try:
                        return await self._exchange(reused, request, worker_name)
                    except WorkerUnreachable:
                        if reused.status:  # an answer had begun: not a stale connection
                            raise
                connection = await self._connect(origin, worker_name, connect_timeout)
                return await self._exchange(connection, request, worker_name)
        except TimeoutError:
            raise UpstreamTimeout(f"worker {worker_name!r} did not answer within {wait:.3g} s") from None

    async def read_error(self, response: UpstreamStream, wait: float) -> bytes:
        """The body of a non-2xx answer (its first 64 KiB), read within `wait` s; then the connection is
        pooled again or closed."""
        try:
            async with asyncio.timeout(wait):
                body = await response.read_all()
        except (TimeoutError, GatewayError):
            response.close()
            return b""
        response.finish()
        return body[:_MAX_ERROR_BODY]

    async def close(self) -> None:
        """Close every connection, and let the loop finish closing their sockets (a loop closed right after
        would leave them to the garbage collector)."""
        self._closed = True
        for connection in list(self._open):
            connection.close()
        self._idle.clear()
        if self._sweep is not None:
            self._sweep.cancel()
        for _ in range(10):
            if not self._open:
                return
            await asyncio.sleep(0)

    async def _exchange(self, connection: UpstreamStream, request: bytes, worker_name: str) -> UpstreamStream:
        head = connection.send(request, worker_name)
        try:
            await head
        except BaseException:
            if not head.done():
                head.cancel()
            connection.close()
            raise
        return connection

    async def _connect(self, origin: _Origin, worker_name: str, connect_s: float) -> UpstreamStream:
        loop = asyncio.get_running_loop()
        tls = self._tls_context() if origin.tls else None
        try:
            async with asyncio.timeout(connect_s):
                _, connection = await loop.create_connection(
                    lambda: UpstreamStream(origin.key, self._release, self._open.discard), origin.host,
                    origin.port, ssl=tls, server_hostname=origin.host if tls else None)
        except TimeoutError:
            raise UpstreamTimeout(f"could not connect to worker {worker_name!r} within {connect_s:g} s") from None
        except OSError as exc:
            reason = exc.strerror or type(exc).__name__
            raise WorkerUnreachable(f"worker {worker_name!r} is unreachable ({reason})") from None
        if self._closed:
            connection.close()
            raise WorkerUnreachable(f"worker {worker_name!r}: the gateway is stopping")
        self._open.add(connection)
        return connection

    def _take_idle(self, key: str) -> UpstreamStream | None:
        connections = self._idle.get(key)
        while connections:
            _, connection = connections.pop()
            if connection.reusable:
                return connection
        return None

    def _release(self, connection: UpstreamStream) -> None:
        if self._closed:
            connection.close()
            return
        loop = asyncio.get_running_loop()
        self._idle.setdefault(connection.origin, []).append((loop.time(), connection))
        if self._sweep is None:
            self._sweep = loop.call_later(IDLE_SECONDS / 3, self._close_idle)

    def _close_idle(self) -> None:
        """Close the connections unused for `IDLE_SECONDS` (and forget the ones the worker closed)."""
        self._sweep = None
        now = asyncio.get_running_loop().time()
        for key, connections in list(self._idle.items()):
            kept = []
            for since, connection in connections:
                if now - since >= IDLE_SECONDS:
                    connection.close()
                elif connection.reusable:
                    kept.append((since, connection))
            if kept:
                self._idle[key] = kept
            else:
                del self._idle[key]
        if self._idle:
            self._sweep = asyncio.get_running_loop().call_later(IDLE_SECONDS / 3, self._close_idle)

    def _tls_context(self) -> ssl.SSLContext:
        if self._tls is None:
            self._tls = ssl.create_default_context()
        return self._tls


def _request_bytes(origin: _Origin, path: str, body: bytes, headers: Mapping[str, str]) -> bytes:
    """The request's head and body. A header value with a line break is left out (it would forge a
    header); the body is always sized."""
    lines = [f"POST {origin.path}{path} HTTP/1.1", f"Host: {origin.host_header}", "Accept-Encoding: identity",
             f"Content-Length: {len(body)}"]
    for name, value in headers.items():
        if "\r" not in value and "\n" not in value and name.lower() not in _OURS:
            lines.append(f"{name}: {value}")
    lines.append("\r\n")
    return "\r\n".join(lines).encode("latin-1", "replace") + body


_OURS = frozenset({"host", "content-length", "accept-encoding", "transfer-encoding"})
