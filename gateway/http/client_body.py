"""A request body read from ASGI `receive` as the client sends it, for a route that passes it on without
holding it whole (audio uploads): chunk by chunk, counted against a limit, and when it is over (from then
on, `receive` only says whether the client left)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable

from litestar.types import Receive, ReceiveMessage

from gateway.errors import ClientDisconnected, PayloadTooLarge


def declared_length(headers: Iterable[tuple[bytes, bytes]]) -> int | None:
    """The request's `content-length`, if it sent a usable one."""
    for name, value in headers:
        if name == b"content-length":
            return int(value) if value.isdigit() else None
    return None


class ClientBody:
    def __init__(self, receive: Receive, limit: int) -> None:
        """`limit`: the most bytes the body may have (more: `PayloadTooLarge`)."""
        self._receive = receive
        self._limit = limit
        self._size = 0
        self.finished = asyncio.Event()
        """Set once the body's last chunk was read (or the client left)."""

    async def read(self) -> bytes | None:
        """The body's next (non-empty) chunk, None once it is over."""
        while not self.finished.is_set():
            message = await self._receive()
            if message["type"] != "http.request":
                self.finished.set()
                raise ClientDisconnected("The client closed the connection while sending its request.")
            if not message.get("more_body", False):
                self.finished.set()
            chunk: bytes = message.get("body", b"")
            self._size += len(chunk)
            if self._size > self._limit:
                raise PayloadTooLarge(f"The request body is larger than the gateway accepts here ({self._limit} "
                                      "bytes).")
            if chunk:
                return chunk
        return None

    async def receive_once_read(self) -> ReceiveMessage:
        """`receive` for a watcher of the client's disconnect: it waits until the body was read (the body's
        reader owns `receive` until then)."""
        await self.finished.wait()
        return await self._receive()
