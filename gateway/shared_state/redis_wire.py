"""A lean Redis client for the data plane's hot path (rate limits, the response cache).

Every request that has limits or a Redis cache talks to Redis once or twice. redis-py spends about
0.2 ms of CPU on a two-script pipeline (packing arguments, its connection pool, its retry and timeout
wrappers); this client spends a fraction of that:

- one TCP (or unix) connection, *multiplexed*: concurrent callers queue their commands on it and each
  gets its reply in order (Redis answers a connection's commands in order), so there is no pool to
  check out from; a command with nothing else in flight is written at once, and under load what the
  callers of one event-loop iteration queue goes out in one write (replies that arrive together are
  read together);
- RESP is encoded here by hand and replies are parsed by hiredis (C);
- a deadline per call is one timer (`timeout_s`), not a task or a context manager. A caller that
  gives up (deadline, cancellation) leaves its replies to be read and dropped, so order is kept. If the oldest
  command has waited `stale_after_s` (the server is gone without a FIN), the connection is dropped:
  everything in flight fails and the next call connects again.

Errors are redis-py's classes, so `gateway.shared_state.redis_client.translate_redis_errors` covers both
clients: a lost or refused connection raises `ConnectionError`; an error reply is returned in its
place (`ResponseError`, `NoScriptError` for NOSCRIPT) by `pipeline`, and raised by `call`.
The control plane (keys, overlays, sessions, admin) keeps using redis-py.
"""

from __future__ import annotations

import asyncio
import hashlib
import ssl
import time
from collections import deque
from collections.abc import Sequence
from typing import Any, cast
from urllib.parse import parse_qs, unquote, urlsplit

import hiredis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import NoScriptError, ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

Arg = str | bytes | int | float
Command = Sequence[Arg]


def bulk(arg: Arg) -> bytes:
    """One argument as a RESP bulk string (floats as `repr`, which Redis and Lua read back exactly)."""
    if isinstance(arg, bytes):
        data = arg
    elif isinstance(arg, str):
        data = arg.encode()
    else:
        data = repr(arg).encode() if isinstance(arg, float) else b"%d" % arg
    return b"$%d\r\n%s\r\n" % (len(data), data)


def array_header(length: int) -> bytes:
    """What precedes a command's `length` bulk strings."""
    return b"*%d\r\n" % length


def encode_command(command: Command) -> bytes:
    """One command in RESP (an array of bulk strings)."""
    return array_header(len(command)) + b"".join(map(bulk, command))


def _expire(futures: list[asyncio.Future[Any]], timeout_s: float) -> None:
    for future in futures:
        if not future.done():
            future.set_exception(RedisTimeoutError(f"no reply from redis within {timeout_s:g} s"))


def _retrieved(futures: list[asyncio.Future[Any]]) -> None:
    """Mark the failures of futures nobody will await as seen (asyncio logs unseen ones)."""
    for future in futures:
        if future.done() and not future.cancelled():
            future.exception()


def script_sha(script: str) -> str:
    """The SHA1 Redis names a Lua script by (EVALSHA)."""
    return hashlib.sha1(script.encode(), usedforsecurity=False).hexdigest()


def _reply_error(message: str) -> ResponseError:
    if message.startswith("NOSCRIPT"):
        return NoScriptError(message)
    return ResponseError(message)


class _Protocol(asyncio.Protocol):
    """The connection: writes what it is given, resolves the waiting futures in order."""

    def __init__(self) -> None:
        self.loop = asyncio.get_running_loop()
        self.transport: asyncio.Transport | None = None
        self.waiting: deque[tuple[asyncio.Future[Any], float]] = deque()
        self.lost: BaseException | None = None
        self._outgoing: list[bytes] = []
        self._reader = hiredis.Reader(replyError=_reply_error, notEnoughData=_Protocol)

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's transports are not asyncio's classes

    def write_soon(self, data: bytes, *, alone: bool) -> None:
        """Write `data` now when `alone` (nothing else is in flight: nobody to share a write with), else
        queue it: what the callers of this loop iteration queue goes out in one write."""
        if alone and not self._outgoing:
            if self.transport is not None and self.lost is None:
                self.transport.write(data)
            return
        if not self._outgoing:
            self.loop.call_soon(self._flush)
        self._outgoing.append(data)

    def _flush(self) -> None:
        data, self._outgoing = b"".join(self._outgoing), []
        if self.transport is not None and self.lost is None:
            self.transport.write(data)

    def data_received(self, data: bytes) -> None:
        self._reader.feed(data)
        while (reply := self._reader.gets()) is not _Protocol:
            if not self.waiting:  # a reply nobody asked for: the stream is out of step
                self.abort(RedisConnectionError("redis sent a reply nobody was waiting for"))
                return
            future, _ = self.waiting.popleft()
            if not future.done():
                future.set_result(reply)

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost = exc or RedisConnectionError("connection closed by the server")
        self.fail_waiting(self.lost)

    def fail_waiting(self, exc: BaseException) -> None:
        while self.waiting:
            future, _ = self.waiting.popleft()
            if not future.done():
                future.set_exception(RedisConnectionError(f"redis connection lost: {exc}"))
                future.exception()  # its caller may have gone: don't log it as unseen

    def abort(self, exc: BaseException) -> None:
        self.lost = exc
        self.fail_waiting(exc)
        if self.transport is not None:
            self.transport.abort()


class RedisWire:
    """A multiplexed connection to the Redis at `url` (redis://, rediss://, unix://; user, password and
    database from the URL, as redis-py reads them; or an address already read). No connection is opened
    until the first call. A cluster or Sentinel URL: `gateway.shared_state.hot_path.connect_hot_path`."""

    def __init__(self, url: str | RedisAddress, *, connect_timeout_s: float = 0.5, stale_after_s: float = 5.0,
                 client_name: str = "llm-gateway") -> None:
        self._target = url if isinstance(url, RedisAddress) else RedisAddress.from_url(url)
        self._connect_timeout_s = connect_timeout_s
        self._stale_after_s = stale_after_s
        self._client_name = client_name
        self._protocol: _Protocol | None = None
        self._connecting: asyncio.Lock | None = None

    async def call(self, *command: Arg, timeout_s: float | None = None) -> Any:
        """Send one command; its reply (an error reply is raised)."""
        reply = (await self.request(encode_command(command), 1, timeout_s))[0]
        if isinstance(reply, ResponseError):
            raise reply
        return reply

    async def pipeline(self, commands: Sequence[Command], timeout_s: float | None = None) -> list[Any]:
        """Send `commands` in one write; their replies in order, an error reply in its command's place."""
        return await self.request(b"".join(encode_command(c) for c in commands), len(commands), timeout_s)

    async def request(self, data: bytes, count: int, timeout_s: float | None = None) -> list[Any]:
        """Send `count` commands already in RESP (`encode_command`, `bulk`); their replies, an error reply
        in its command's place. `timeout_s`: raise redis-py's `TimeoutError` if the replies take longer
        (connecting included)."""
        protocol = self._protocol
        if protocol is None or protocol.lost is not None or (
                protocol.waiting and time.monotonic() - protocol.waiting[0][1] >= self._stale_after_s):
            protocol = await self._reconnect(protocol, timeout_s)
        futures = self._send(protocol, data, count)
        expiry = None if timeout_s is None else protocol.loop.call_later(timeout_s, _expire, futures, timeout_s)
        try:
            await futures[-1]  # replies come in order: when the last is in, all are
        except BaseException:
            _retrieved(futures)
            raise
        finally:
            if expiry is not None:
                expiry.cancel()
        return [future.result() for future in futures]

    def send_nowait(self, data: bytes, count: int) -> list[asyncio.Future[Any]] | None:
        """`request` for a caller that does not wait: the futures of the replies (no deadline; a silent
        server is dropped after `stale_after_s`), or None when the connection is not open (then use
        `request`, which connects)."""
        protocol = self._protocol
        if protocol is None or protocol.lost is not None:
            return None
        return self._send(protocol, data, count)

    async def close(self) -> None:
        protocol, self._protocol = self._protocol, None
        if protocol is not None and protocol.transport is not None:
            protocol.fail_waiting(RedisConnectionError("client closed"))
            protocol.transport.close()

    def _send(self, protocol: _Protocol, data: bytes, count: int) -> list[asyncio.Future[Any]]:
        if protocol.transport is None:
            raise RedisConnectionError("redis connection is not open")
        now = time.monotonic()
        futures = [protocol.loop.create_future() for _ in range(count)]
        alone = not protocol.waiting
        protocol.waiting.extend((future, now) for future in futures)
        protocol.write_soon(data, alone=alone)
        return futures

    async def _reconnect(self, protocol: _Protocol | None, timeout_s: float | None) -> _Protocol:
        if protocol is not None and protocol.lost is None:  # silent for too long: give up on it
            protocol.abort(RedisConnectionError(f"no reply from redis in {self._stale_after_s:g} s"))
        if self._connecting is None:
            self._connecting = asyncio.Lock()
        try:
            async with asyncio.timeout(timeout_s), self._connecting:
                if self._protocol is protocol or self._protocol is None:  # nobody reconnected meanwhile
                    self._protocol = await self._connect()
                return self._protocol
        except TimeoutError as exc:
            raise RedisTimeoutError(f"connecting to redis took over {timeout_s:g} s") from exc

    async def _connect(self) -> _Protocol:
        loop = asyncio.get_running_loop()
        target = self._target
        try:
            async with asyncio.timeout(self._connect_timeout_s):
                if target.path is not None:
                    _, protocol = await loop.create_unix_connection(_Protocol, target.path)
                else:
                    _, protocol = await loop.create_connection(
                        _Protocol, target.host, target.port, ssl=target.ssl_context())
                try:
                    await self._handshake(protocol)
                except BaseException as exc:
                    protocol.abort(exc)
                    raise
        except TimeoutError as exc:
            raise RedisConnectionError(f"connecting to redis timed out after {self._connect_timeout_s:g} s") from exc
        except OSError as exc:
            raise RedisConnectionError(f"connecting to redis failed: {exc}") from exc
        return protocol

    async def _handshake(self, protocol: _Protocol) -> None:
        handshake = self._target.handshake(self._client_name)
        futures = self._send(protocol, b"".join(encode_command(c) for c in handshake), len(handshake))
        for future in futures:
            reply = await future
            if isinstance(reply, ResponseError):
                raise RedisConnectionError(f"redis refused the connection's set-up: {reply}")


class RedisAddress:
    """Where and how to connect, from a redis URL."""

    def __init__(self, *, host: str, port: int, path: str | None, tls: bool, username: str | None,
                 password: str | None, db: int) -> None:
        self.host, self.port, self.path, self.tls = host, port, path, tls
        self.username, self.password, self.db = username, password, db

    @classmethod
    def from_url(cls, url: str) -> RedisAddress:
        parts = urlsplit(url)
        query = parse_qs(parts.query)
        username = unquote(parts.username) if parts.username else None
        password = unquote(parts.password) if parts.password else None
        if "password" in query:
            password = query["password"][0]
        db = int(query["db"][0]) if "db" in query else 0
        if parts.scheme == "unix":
            return cls(host="", port=0, path=parts.path, tls=False, username=username, password=password, db=db)
        if parts.scheme not in ("redis", "rediss"):
            raise ValueError(f"not a redis URL (redis://, rediss:// or unix://): scheme {parts.scheme!r}")
        path = parts.path.strip("/")
        if path:
            db = int(path)
        return cls(host=parts.hostname or "localhost", port=parts.port or 6379, path=None,
                   tls=parts.scheme == "rediss", username=username, password=password, db=db)

    def ssl_context(self) -> ssl.SSLContext | None:
        return ssl.create_default_context() if self.tls else None

    def handshake(self, client_name: str) -> list[Command]:
        commands: list[Command] = []
        if self.password is not None:
            commands.append(("AUTH", self.username, self.password) if self.username else ("AUTH", self.password))
        if self.db:
            commands.append(("SELECT", self.db))
        commands.append(("CLIENT", "SETNAME", client_name))
        return commands
