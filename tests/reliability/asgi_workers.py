"""Workers that misbehave in ways the simulator does not (malformed streams and answers, redirects): a
plain ASGI app answering every request from a function of its body, served by `ServerThread` on loopback."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, cast

from litestar.types import ASGIApp

from tests.asgi_body import read_body

Answer = tuple[int, list[tuple[bytes, bytes]], list[bytes]]
"""Status, headers, and the body as the pieces to write (each one a write of its own)."""

_Message = dict[str, Any]


def answering_worker(answer: Callable[[bytes], Answer]) -> ASGIApp:
    """An ASGI app that answers each request with `answer(request body)`."""

    async def app(scope: _Message, receive: Callable[[], Awaitable[_Message]],
                  send: Callable[[_Message], Awaitable[None]]) -> None:
        if scope["type"] == "lifespan":
            while (await receive())["type"] != "lifespan.shutdown":
                await send({"type": "lifespan.startup.complete"})
            await send({"type": "lifespan.shutdown.complete"})
            return
        body = await read_body(receive)
        status, headers, pieces = answer(body)
        await send({"type": "http.response.start", "status": status, "headers": headers})
        for piece in pieces:
            await send({"type": "http.response.body", "body": piece, "more_body": True})
        await send({"type": "http.response.body", "body": b""})

    return cast(ASGIApp, app)
