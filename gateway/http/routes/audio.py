"""`POST /v1/audio/transcriptions` and `POST /v1/audio/translations`: multipart uploads passed on to a
worker while the client is still sending them (`gateway.surfaces.audio`).

Served by litestar rather than the fast path, which reads JSON bodies whole: litestar does not read a
body its handler does not ask for, so the handler reads ASGI `receive` itself (`ClientBody`), and the
JSON surfaces' hot path stays as it was. The request goes through `InferenceHandler.answer` like every
other inference request, as a `Turn` that reads the form's head once the caller is authorized: keys, the
model allow-list, routing, limits, worker choice, metrics and the log line apply; cache and capture do not.

A body refused before its end (a 401, a 413, no `model`) is not read further: uvicorn reads and drops the
rest of it after the refusal, so a client that writes its whole body before reading (httpx, the openai SDK)
still gets the refusal (tests/service/test_audio_uploads.py sends 10 times the limit).
"""

from __future__ import annotations

from typing import Any

from litestar import Request, Response, post
from litestar.handlers import HTTPRouteHandler

from gateway.auth.authenticator import Caller
from gateway.errors import PayloadTooLarge
from gateway.http.client_body import ClientBody, declared_length
from gateway.http.disconnect import unless_client_disconnects
from gateway.http.error_rendering import error_for, error_response
from gateway.http.openapi_bodies import Schema, with_body
from gateway.http.replies import STREAM_HEADERS, streamed_response
from gateway.http.request_observer import record_of
from gateway.inference.forwarder import Reply
from gateway.inference.handler import InferenceHandler
from gateway.observability.request_record import RequestRecord
from gateway.surfaces import InferenceRequest
from gateway.surfaces.audio import AUDIO_SURFACES, AudioSurface, read_head
from gateway.surfaces.multipart_head import boundary_of
from gateway.surfaces.upload import StreamedUpload

AnyRequest = Request[Any, Any, Any]


class UploadTurn:
    """One audio request as a turn of the inference handler: its `begin` reads the form's head."""

    capture_route = None

    def __init__(self, surface: AudioSurface, body: ClientBody, content_type: str | None, length: int | None,
                 lookahead: int) -> None:
        self.label = surface.name
        self._surface = surface
        self._body = body
        self._content_type = content_type
        self._length = length
        self._lookahead = lookahead

    async def begin(self, body: bytes, caller: Caller) -> InferenceRequest:
        boundary = boundary_of(self._content_type)
        head = await read_head(self._body, boundary, self._lookahead)
        assert self._content_type is not None  # boundary_of refused a request without one
        upload = StreamedUpload(head, self._content_type, self._length, self._body)
        return self._surface.upload_request(head, upload)

    async def end(self, reply: Reply, record: RequestRecord) -> None:
        record.stream = reply.stream is not None


def audio_routes(handler: InferenceHandler, *, max_bytes: int, lookahead: int) -> list[HTTPRouteHandler]:
    """`max_bytes`: the largest upload taken (413 past it); `lookahead`: how far into a body the gateway
    reads looking for `model` (`gateway.surfaces.audio`)."""
    return [_route(surface, handler, max_bytes, lookahead) for surface in AUDIO_SURFACES]


def _route(surface: AudioSurface, handler: InferenceHandler, max_bytes: int, lookahead: int) -> HTTPRouteHandler:
    async def upload(request: AnyRequest) -> Response[Any]:
        scope = request.scope
        body = ClientBody(request.receive, max_bytes)
        try:
            length = declared_length(scope["headers"])
            if length is not None and length > max_bytes:
                raise PayloadTooLarge(f"The request body is larger than the gateway accepts here ({max_bytes} "
                                      "bytes).")
            turn = UploadTurn(surface, body, request.headers.get("content-type"), length, lookahead)
            client = request.client
            answering = handler.answer(surface, b"", request.headers, client.host if client else None,
                                       record_of(scope), turn)
            reply = await unless_client_disconnects(body.receive_once_read, answering)
        except Exception as exc:
            return error_response(error_for(exc, scope))
        return _response(reply)

    upload.__name__ = upload.__qualname__ = surface.name.replace("/", "_")  # names the OpenAPI operation
    route: HTTPRouteHandler = post(list(surface.paths), status_code=200, summary=surface.doc.summary,
                                   operation_class=with_body(_multipart_body(surface)))(upload)
    return route


def _response(reply: Reply) -> Response[Any]:
    """The worker's answer with its own content type (and the routing and rate-limit headers)."""
    headers = dict(reply.headers)
    media_type = headers.pop("content-type", "application/json")
    if reply.stream is not None:
        return streamed_response(reply, media_type, {**headers, **STREAM_HEADERS})
    return Response(reply.body, media_type=media_type, headers=headers)


def _multipart_body(surface: AudioSurface) -> Schema:
    doc = surface.doc
    return {"required": True, "description": doc.description,
            "content": {"multipart/form-data": {"schema": doc.schema,
                                                "encoding": {"file": {"contentType": "audio/*"}}}}}
