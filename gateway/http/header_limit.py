"""The request header size limit (`GATEWAY_MAX_HEADER_BYTES`): uvicorn with httptools sets none, so the
outermost ASGI layer measures the headers once and refuses oversize ones with 431 in the OpenAI shape."""

from __future__ import annotations

from collections.abc import Iterable

from litestar.types import Send

from gateway.errors import HeadersTooLarge
from gateway.http.error_sending import send_error


def header_bytes(headers: Iterable[tuple[bytes, bytes]]) -> int:
    """The total length of the header names and values (one pass, no allocation)."""
    total = 0
    for name, value in headers:
        total += len(name) + len(value)
    return total


async def refuse_oversize_headers(send: Send, limit: int) -> HeadersTooLarge:
    """Answer 431 and close the connection (the rest of the request is not read); returns the error."""
    error = HeadersTooLarge(f"The request headers are larger than the gateway accepts ({limit} bytes).")
    error.headers["Connection"] = "close"
    await send_error(send, error)
    return error
