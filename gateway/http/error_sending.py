"""Sending an error as plain ASGI (the inference hot path, the drain gate, the header limit): the same
OpenAI error object `gateway.http.error_rendering` builds for litestar's routes."""

from __future__ import annotations

from typing import Any

import msgspec
from litestar.types import Send

from gateway.errors import GatewayError

_encode = msgspec.json.Encoder().encode


async def send_error(send: Send, error: GatewayError, error_object: dict[str, Any] | None = None) -> None:
    """Answer with `error`: its status, headers and OpenAI error object, or `error_object` instead (the
    request's API surface may have its own shape)."""
    body = _encode(error.body() if error_object is None else error_object)
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    headers += [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in error.headers.items()]
    await send({"type": "http.response.start", "status": error.status_code(), "headers": headers})
    await send({"type": "http.response.body", "body": body, "more_body": False})
