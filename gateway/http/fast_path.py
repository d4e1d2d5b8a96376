"""The hot path: `POST /v1/chat/completions`, `/v1/completions` and `/v1/embeddings` answered as plain
ASGI, in front of litestar.

Building litestar's request, response and header objects cost as much as everything else the gateway
does for a request (benchmarks/RESULTS.md), so the three inference endpoints skip them here. They stay
declared in litestar too (`openai_api`): the OpenAPI schema, other methods (405), and requests carrying
an `Origin` when CORS is configured go through it. Both call `InferenceHandler.answer`, and errors
become responses through `gateway.http.error_rendering` either way.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

from litestar.enums import ScopeType
from litestar.types import ASGIApp, Receive, Scope, Send

from gateway.errors import ClientDisconnected, PayloadTooLarge
from gateway.http.disconnect import unless_client_disconnects
from gateway.http.error_rendering import error_for
from gateway.http.error_sending import send_error
from gateway.http.request_observer import record_of
from gateway.http.routes.openai import STREAM_HEADERS
from gateway.inference.forwarder import Reply
from gateway.inference.handler import InferenceHandler
from gateway.surfaces.request import Endpoint

ENDPOINTS: dict[str, Endpoint] = {"/v1/chat/completions": "chat/completions", "/v1/completions": "completions",
                                  "/v1/embeddings": "embeddings"}
_JSON = [(b"content-type", b"application/json")]
_SSE = [(b"content-type", b"text/event-stream")] + [(k.encode(), v.encode()) for k, v in STREAM_HEADERS.items()]


class InferenceASGI:
    def __init__(self, app: ASGIApp, handler: InferenceHandler, *, max_body_bytes: int, cors: bool) -> None:
        self.app = app
        self._handler = handler
        self._max_body = max_body_bytes
        self._cors = cors

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == ScopeType.HTTP and scope["method"] == "POST":
            endpoint = ENDPOINTS.get(scope["path"])
            if endpoint is not None and not (self._cors and _has_origin(scope)):
                await self._serve(endpoint, scope, receive, send)
                return
        await self.app(scope, receive, send)

    async def _serve(self, endpoint: Endpoint, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            body = await _read_body(scope, receive, self._max_body)
            await unless_client_disconnects(receive, self._answer(endpoint, body, scope, send))
        except Exception as exc:
            error = error_for(exc, scope)
            if not record_of(scope).status:  # nothing sent yet
                await send_error(send, error)
            elif not isinstance(exc, ClientDisconnected):
                raise  # mid-stream: the connection is dropped, the client sees no [DONE]

    async def _answer(self, endpoint: Endpoint, body: bytes, scope: Scope, send: Send) -> None:
        client = scope.get("client")
        headers = {name.decode("latin-1"): value.decode("latin-1") for name, value in scope["headers"]}
        reply = await self._handler.answer(endpoint, body, headers, client[0] if client else None, record_of(scope))
        extra = [(name.encode("latin-1"), value.encode("latin-1")) for name, value in reply.headers.items()]
        if reply.stream is None:
            length = [(b"content-length", str(len(reply.body)).encode())]
            await send({"type": "http.response.start", "status": 200, "headers": _JSON + length + extra})
            await send({"type": "http.response.body", "body": reply.body, "more_body": False})
            return
        await _send_stream(reply, send, _SSE + extra)


async def _send_stream(reply: Reply, send: Send, headers: list[tuple[bytes, bytes]]) -> None:
    """Pass each chunk on as it comes. If the client leaves, the watcher cancels this task; closing the
    stream then closes the worker's connection (`gateway.upstream.sse_relay`)."""
    stream = reply.stream
    assert stream is not None
    try:
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        async for chunk in stream:
            await send({"type": "http.response.body", "body": chunk, "more_body": True})
        await send({"type": "http.response.body", "body": b"", "more_body": False})
    except BaseException:
        await _close(stream)
        raise


async def _close(stream: AsyncIterator[bytes]) -> None:
    aclose = getattr(stream, "aclose", None)
    if aclose is not None:
        await aclose()


async def _read_body(scope: Scope, receive: Receive, limit: int) -> bytes:
    for name, value in scope["headers"]:
        if name == b"content-length" and value.isdigit() and int(value) > limit:
            raise PayloadTooLarge("The request body is larger than the gateway accepts.")
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] != "http.request":
            raise ClientDisconnected("The client closed the connection before sending its request.")
        chunk = message["body"]
        size += len(chunk)
        if size > limit:
            raise PayloadTooLarge("The request body is larger than the gateway accepts.")
        chunks.append(chunk)
        if not message.get("more_body", False):
            return chunks[0] if len(chunks) == 1 else b"".join(chunks)


def _has_origin(scope: Scope) -> bool:
    return any(name == b"origin" for name, _ in scope["headers"])
