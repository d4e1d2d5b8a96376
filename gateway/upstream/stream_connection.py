"""One connection to a worker, and the streamed answer under way on it: the gateway's own HTTP/1.1 client
for streamed requests (`stream_pool` opens and pools them).

Why not aiohttp here: at hundreds of streams a chunk every 20 ms, aiohttp's body reader woke the relay's
task once per chunk (a future, a task step through five awaits), which with its parsing cost more CPU
than the relay itself (benchmarks/streaming_scale). This connection parses with httptools (C: status,
headers, chunked framing) and hands each piece of body either to a reader that pulls it (`readany`, for
relays that read in a task) or, pushed, straight to a consumer's callback from the event loop's read of
the socket (`push`): no task wakes per chunk.

What a worker's connection can do wrong becomes ours: a body cut short is `WorkerUnreachable` (the
relays make it an error event), a response httptools cannot parse too. A connection is pooled again only
after its answer ended whole and the worker kept it alive; a reader that stops early (`close`) drops it,
which is how a worker learns the client left and stops generating.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Protocol, cast

import httptools

from gateway.errors import GatewayError, WorkerUnreachable

_PAUSE_BUFFER = 256 * 1024
"""Bytes a pulled stream buffers before the socket stops being read (until the reader catches up)."""


class StreamConsumer(Protocol):
    """Where a pushed stream's body goes, from the event loop's callbacks."""

    def body(self, data: bytes) -> None:
        """A piece of the body, as it arrived."""

    def ended(self, error: GatewayError | None) -> None:
        """The body is over: whole (None), or broken (`error`). Called once; nothing follows."""


class UpstreamStream(asyncio.Protocol):
    """A worker connection (an asyncio protocol) and its current answer: status, headers, body."""

    __slots__ = (
        "_buffer",
        "_buffered",
        "_chunked",
        "_consumer",
        "_done",
        "_error",
        "_head",
        "_keep_alive",
        "_lost",
        "_parser",
        "_paused",
        "_release",
        "_sized",
        "_transport",
        "_waiter",
        "headers",
        "origin",
        "status",
        "worker_name",
    )

    def __init__(self, origin: str, release: Callable[[UpstreamStream], None],
                 lost: Callable[[UpstreamStream], None]) -> None:
        self.origin = origin
        """The worker's scheme, host and port: which pool this connection returns to."""
        self._release = release
        self._lost = lost
        self._transport: asyncio.Transport | None = None
        self._parser: httptools.HttpResponseParser | None = None
        self.worker_name = ""
        self.status = 0
        self.headers: dict[str, str] = {}
        self._head: asyncio.Future[None] | None = None
        self._buffer: list[bytes] = []
        self._buffered = 0
        self._waiter: asyncio.Future[None] | None = None
        self._consumer: StreamConsumer | None = None
        self._done = False
        """The answer's body ended whole."""
        self._error: GatewayError | None = None
        self._chunked = self._sized = False
        self._paused = False
        self._keep_alive = False
        """The worker keeps the connection open after this answer (HTTP/1.1 without `Connection: close`)."""

    # -- the exchange ------------------------------------------------------------------------------------

    def send(self, request: bytes, worker_name: str) -> asyncio.Future[None]:
        """Write one request; the future is done when the response's headers arrived (or the connection
        failed first: its exception)."""
        assert self._transport is not None
        self.worker_name = worker_name
        self._parser = httptools.HttpResponseParser(self)
        self.status, self.headers = 0, {}
        self._buffer, self._buffered, self._done, self._error, self._consumer = [], 0, False, None, None
        self._head = asyncio.get_running_loop().create_future()
        self._transport.write(request)
        return self._head

    @property
    def reusable(self) -> bool:
        """Idle and alive: no answer under way, the worker keeps the connection open."""
        transport = self._transport
        return transport is not None and not transport.is_closing() and self._parser is None

    @property
    def closed(self) -> bool:
        """The connection is closed (or closing)."""
        return self._transport is None or self._transport.is_closing()

    async def readany(self) -> bytes:
        """The body received since the last read, waiting for some; b"" once it ended whole. Raises
        `WorkerUnreachable` when the body broke off."""
        while not self._buffer:
            if self._error is not None:
                raise self._error
            if self._done:
                return b""
            self._waiter = asyncio.get_running_loop().create_future()
            try:
                await self._waiter
            finally:
                self._waiter = None
        data = self._buffer[0] if len(self._buffer) == 1 else b"".join(self._buffer)
        self._buffer, self._buffered = [], 0
        if self._paused:
            self.resume_reading()
        return data

    async def read_all(self) -> bytes:
        """The whole (rest of the) body."""
        pieces = []
        while data := await self.readany():
            pieces.append(data)
        return b"".join(pieces)

    def push(self, consumer: StreamConsumer) -> None:
        """From now on hand the body to `consumer` as it arrives (what was buffered first)."""
        self._consumer = consumer
        if self._buffer:
            data = b"".join(self._buffer)
            self._buffer, self._buffered = [], 0
            consumer.body(data)
        if self._consumer is consumer and (self._done or self._error is not None):
            self._consumer = None
            consumer.ended(self._error)

    def pause_reading(self) -> None:
        if not self._paused and self._transport is not None:
            self._paused = True
            self._transport.pause_reading()

    def resume_reading(self) -> None:
        if self._paused and self._transport is not None:
            self._paused = False
            self._transport.resume_reading()

    def finish(self) -> None:
        """The reader is done with an answer it read to its end (`[DONE]`): the connection goes back to
        its pool once the body ended whole and if the worker keeps it open, else it is closed. The body's
        last bytes (the chunked terminator) often arrive just after `[DONE]`: they are waited for, a
        moment at most, and whatever else comes is discarded."""
        parser = self._parser
        if parser is None or self._error is not None or not self._keep_alive:
            self.close()
        elif self._done:
            self._parser = None
            self._consumer = None
            self.resume_reading()
            self._release(self)
        else:
            self._buffer, self._buffered = [], 0
            self.resume_reading()
            self._consumer = _PoolWhenEnded(self)

    def close(self) -> None:
        """Drop the connection (an answer not read to its end: the worker stops generating)."""
        self._consumer = None
        if self._transport is not None:
            self._transport.close()

    # -- asyncio.Protocol --------------------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = cast("asyncio.Transport", transport)  # uvloop's are not asyncio's subclasses

    def data_received(self, data: bytes) -> None:
        parser = self._parser
        if parser is None:  # bytes from an idle worker connection: nothing may come then
            self.close()
            return
        try:
            parser.feed_data(data)
        except httptools.HttpParserError as exc:
            self._fail(f"sent a response that is not HTTP ({type(exc).__name__})")
            self.close()

    def eof_received(self) -> bool:
        return False  # close our side too

    def connection_lost(self, exc: Exception | None) -> None:
        self._transport = None
        self._lost(self)
        if self._parser is not None and not self._done and self._error is None:
            if self.status and not self._chunked and not self._sized:
                self._end()  # a body that lasts until the worker closes the connection
            else:
                self._fail(f"broke off the stream ({_reason(exc)})" if self.status
                           else f"is unreachable (it closed the connection: {_reason(exc)})")
        self._parser = None

    # -- httptools callbacks -----------------------------------------------------------------------------

    def on_header(self, name: bytes, value: bytes) -> None:
        key = name.decode("latin-1").lower()
        self.headers[key] = value.decode("latin-1")
        if key == "transfer-encoding":
            self._chunked = b"chunked" in value.lower()
        elif key == "content-length":
            self._sized = True

    def on_headers_complete(self) -> None:
        assert self._parser is not None
        self.status = self._parser.get_status_code()
        self._keep_alive = self._parser.should_keep_alive()
        if self._head is not None and not self._head.done():
            self._head.set_result(None)

    def on_body(self, body: bytes) -> None:
        consumer = self._consumer
        if consumer is not None:
            consumer.body(body)
            return
        self._buffer.append(body)
        self._buffered += len(body)
        if self._buffered > _PAUSE_BUFFER:
            self.pause_reading()
        self._wake()

    def on_message_complete(self) -> None:
        self._end()

    # -- ends --------------------------------------------------------------------------------------------

    def _end(self) -> None:
        self._done = True
        consumer = self._consumer
        if consumer is not None:
            self._consumer = None
            consumer.ended(None)
        self._wake()

    def _fail(self, what: str) -> None:
        error = WorkerUnreachable(f"worker {self.worker_name!r} {what}")
        self._error = error
        head = self._head
        if head is not None and not head.done():
            head.set_exception(error)
        consumer = self._consumer
        if consumer is not None:
            self._consumer = None
            consumer.ended(error)
        self._wake()

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)


class _PoolWhenEnded:
    """The consumer of a body read to its `[DONE]` before its end: pools the connection when the body
    ends whole, within `_END_WAIT` seconds; closes it otherwise."""

    __slots__ = ("_connection", "_timer")

    def __init__(self, connection: UpstreamStream) -> None:
        self._connection = connection
        self._timer = asyncio.get_running_loop().call_later(_END_WAIT, connection.close)

    def body(self, data: bytes) -> None:
        pass  # after [DONE]: nothing the client gets

    def ended(self, error: GatewayError | None) -> None:
        self._timer.cancel()
        self._connection.finish()


_END_WAIT = 1.0


def _reason(exc: BaseException | None) -> str:
    if exc is None:
        return "ServerDisconnectedError"
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    return type(exc).__name__
