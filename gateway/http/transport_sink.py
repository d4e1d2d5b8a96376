"""The client's connection written to directly, for a pushed stream (`gateway.upstream.sse_push`): the
body's chunks go to uvicorn's transport in HTTP/1.1 chunked framing, without an ASGI message, an await
and uvicorn's checks per chunk (a third of a relayed chunk's CPU at hundreds of streams:
benchmarks/streaming_scale).

Only where that is exactly what uvicorn would have written: its httptools server (the one `serve` runs),
a response it already started with chunked encoding (a stream's), not a HEAD. The response's head and
its end (`more_body: False`, which writes the last chunk and lets uvicorn keep the connection alive)
still go through ASGI `send`, so the request observer and uvicorn see the response as they always do.
Anything else (h11, another server, a test transport): no sink, and the stream is sent chunk by chunk
through `send`.
"""

from __future__ import annotations

from typing import Any

from litestar.types import Send

_CYCLE_MODULE = "uvicorn.protocols.http.httptools_impl"


class TransportSink:
    """A started chunked response's body, written straight to the client's transport."""

    __slots__ = ("_cycle", "_flow", "_write")

    def __init__(self, cycle: Any) -> None:
        self._cycle = cycle
        self._flow = cycle.flow
        self._write = cycle.transport.write

    def write(self, data: bytes) -> None:
        if data and not self._cycle.disconnected:
            self._write(b"%x\r\n%b\r\n" % (len(data), data))

    def writable(self) -> bool:
        return not self._flow.write_paused

    async def drained(self) -> None:
        await self._flow.drain()


def transport_sink(send: Send | None) -> TransportSink | None:
    """A sink for the response `send` (uvicorn's own ASGI send) has started, if it can have one."""
    cycle = getattr(send, "__self__", None)
    if cycle is None or type(cycle).__module__ != _CYCLE_MODULE:
        return None
    if cycle.chunked_encoding is not True or cycle.scope.get("method") == "HEAD" or cycle.response_complete:
        return None
    if not hasattr(cycle, "flow") or not hasattr(cycle, "transport") or not hasattr(cycle, "disconnected"):
        return None
    return TransportSink(cycle)
