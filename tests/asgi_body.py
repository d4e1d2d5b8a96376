"""The request body of a plain ASGI app's request, for the small test servers that answer from it."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from typing import Any


async def read_body(receive: Callable[[], Awaitable[Mapping[str, Any]]]) -> bytes:
    """Every `http.request` message's body, joined, up to the one without `more_body`."""
    body = b""
    while True:
        message = await receive()
        chunk: bytes = message.get("body", b"")
        body += chunk
        if not message.get("more_body"):
            return body
