"""Stop waiting on a worker the moment the client goes away.

Streams are cancelled by the framework when the client disconnects; a non-streaming call is not,
so this watches the ASGI `receive` channel (after the body it only ever says `http.disconnect`)
and cancels the waiting handler, which closes the upstream connection so the worker stops too.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import TypeVar

from litestar.types import Receive

from gateway.errors import ClientDisconnected

T = TypeVar("T")


async def unless_client_disconnects(receive: Receive, work: Awaitable[T]) -> T:
    handler = asyncio.current_task()
    assert handler is not None
    finished = False
    disconnected = False

    async def watch() -> None:
        nonlocal disconnected
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                if not finished:
                    disconnected = True
                    handler.cancel()
                return

    watcher = asyncio.create_task(watch())
    try:
        result = await work
        finished = True
        return result
    except asyncio.CancelledError:
        if disconnected:
            handler.uncancel()
            raise ClientDisconnected("The client closed the connection before the answer was ready.") \
                from None
        raise
    finally:
        finished = True
        watcher.cancel()
