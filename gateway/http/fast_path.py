"""The hot path: a POST to any API surface's path (`/v1/chat/completions`, `/v1/completions`,
`/v1/embeddings`, ...: `gateway.surfaces`) answered as plain ASGI, in front of litestar.

Building litestar's request, response and header objects cost as much as everything else the gateway
does for a request (benchmarks/RESULTS.md), so the inference endpoints skip them here. They stay
declared in litestar too (`gateway.http.routes.openai`): the OpenAPI schema, other methods (405), and
requests carrying an `Origin` when CORS is configured go through it. A surface whose requests are turns
(`turns`: the Responses API, which needs the caller to expand `previous_response_id`) is served here
too, each request with a fresh turn. Both call `InferenceHandler.answer`;
replies become responses through `gateway.http.replies` (encoded as the request's surface says) and errors
through `gateway.http.error_rendering` either way.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping

from litestar.enums import ScopeType
from litestar.types import ASGIApp, Receive, Scope, Send

from gateway.errors import ClientDisconnected, PayloadTooLarge
from gateway.http.disconnect import unless_client_disconnects
from gateway.http.error_rendering import error_for
from gateway.http.error_sending import send_error
from gateway.http.replies import send_reply
from gateway.http.request_observer import record_of, transport_send_of
from gateway.inference.handler import InferenceHandler, Turn
from gateway.surfaces import Surface, SurfaceRegistry

TurnSurface = tuple[Surface, Callable[[], Turn]]
"""A surface whose requests are turns of the handler, and the factory of each request's turn."""


class InferenceASGI:
    def __init__(self, app: ASGIApp, handler: InferenceHandler, surfaces: SurfaceRegistry, *, max_body_bytes: int,
                 cors: bool, turns: Mapping[str, TurnSurface] | None = None) -> None:
        self.app = app
        self._handler = handler
        self._surfaces: dict[str, Surface] = dict(surfaces.by_path)
        self._turns: dict[str, TurnSurface] = dict(turns or {})
        self._max_body = max_body_bytes
        self._cors = cors

    def __call__(self, scope: Scope, receive: Receive, send: Send) -> Awaitable[None]:
        # The coroutine that serves the request, not one awaiting it: one frame less kept per request.
        if scope["type"] == ScopeType.HTTP and scope["method"] == "POST":
            surface = self._surfaces.get(scope["path"])
            if surface is not None and not (self._cors and _has_origin(scope)):
                return self._serve(surface, scope, receive, send)
            turned = self._turns.get(scope["path"]) if surface is None else None
            if turned is not None and not (self._cors and _has_origin(scope)):
                return self._serve(turned[0], scope, receive, send, turned[1]())
        return self.app(scope, receive, send)

    async def _serve(self, surface: Surface, scope: Scope, receive: Receive, send: Send, turn: Turn | None = None
                     ) -> None:
        try:
            # The body and headers are the handler's arguments only, not this frame's locals, which would keep
            # them for as long as a stream lasts.
            client = scope.get("client")
            answering = self._handler.answer(surface, await _read_body(scope, receive, self._max_body),
                                             _headers(scope), client[0] if client else None, record_of(scope), turn)
            await unless_client_disconnects(receive, send_reply(answering, send, transport_send_of(scope),
                                                                record_of(scope)))
        except Exception as exc:
            error = error_for(exc, scope)
            if not record_of(scope).status:  # nothing sent yet
                await send_error(send, error, surface.error_body(error))
            elif not isinstance(exc, ClientDisconnected):
                raise  # mid-stream: the connection is dropped, the client sees no [DONE]


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


def _headers(scope: Scope) -> dict[str, str]:
    return {name.decode("latin-1"): value.decode("latin-1") for name, value in scope["headers"]}


def _has_origin(scope: Scope) -> bool:
    return any(name == b"origin" for name, _ in scope["headers"])
