"""A `Reply` of the inference handler as an HTTP response, written once for every inference path: a
whole answer is `application/json` with its length, a stream is `text/event-stream` with the headers
that keep proxies from buffering it (each already in the request's surface's shapes: the handler encoded
a translating surface's), and the reply's own headers (routing, cache, rate limits, coaching) go with
either.

Two ways out: `send_reply` speaks ASGI (the fast path, `gateway.http.fast_path`), `answer_request`
answers a litestar request (the /v1 routes litestar serves, and the mobile routes under /api).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable
from typing import Any

from litestar import Request, Response
from litestar.background_tasks import BackgroundTask
from litestar.response import Stream
from litestar.types import Send

from gateway.http.disconnect import unless_client_disconnects
from gateway.http.error_rendering import error_for, error_response
from gateway.http.request_observer import record_of
from gateway.http.transport_sink import transport_sink
from gateway.inference.forwarder import Reply
from gateway.inference.handler import InferenceHandler, Turn
from gateway.observability.request_record import RequestRecord
from gateway.surfaces import Surface
from gateway.upstream.sse_push import PushableStream

STREAM_HEADERS = {"cache-control": "no-cache", "x-accel-buffering": "no"}
"""A stream's headers besides its content type: no caching, and no buffering in nginx."""

_JSON = [(b"content-type", b"application/json")]
_SSE = [(b"content-type", b"text/event-stream")] + [(k.encode(), v.encode()) for k, v in STREAM_HEADERS.items()]


async def send_reply(answering: Awaitable[Reply], send: Send, transport_send: Send | None = None,
                     record: RequestRecord | None = None) -> None:
    """Wait for the reply, then send it. A stream passes each chunk on as it comes: pushed straight to the
    client's connection when it can be (`transport_send`, the server's own ASGI send: `transport_sink`),
    else chunk by chunk through `send`. If the client leaves, the watcher (`unless_client_disconnects`)
    cancels this task, and closing the stream then closes the worker's connection
    (`gateway.upstream.sse_relay`, `gateway.upstream.sse_push`)."""
    reply = await answering
    extra = [(name.encode("latin-1"), value.encode("latin-1")) for name, value in reply.headers.items()]
    if reply.stream is None:
        answer = reply.body
        length = [(b"content-length", str(len(answer)).encode())]
        await send({"type": "http.response.start", "status": 200, "headers": _JSON + length + extra})
        await send({"type": "http.response.body", "body": answer, "more_body": False})
        return
    stream = reply.stream
    started = False
    try:
        await send({"type": "http.response.start", "status": 200, "headers": _SSE + extra})
        started = True
        if isinstance(stream, PushableStream) and (sink := transport_sink(transport_send)) is not None:
            if record is not None:
                record.pushed = True
            await stream.pump(sink)
        else:
            async for chunk in stream:
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
        await send({"type": "http.response.body", "body": b"", "more_body": False})
    except BaseException:
        await _close(stream)
        if not started and reply.abandon is not None:  # a stream never started runs no `finally`
            reply.abandon()
        raise


async def _close(stream: AsyncIterator[bytes]) -> None:
    aclose = getattr(stream, "aclose", None)
    if aclose is not None:
        await aclose()


def as_response(reply: Reply) -> Response[Any]:
    """The reply as litestar's response (which sends a stream chunk by chunk, and stops when the client
    leaves)."""
    if reply.stream is not None:
        return streamed_response(reply, "text/event-stream", {**reply.headers, **STREAM_HEADERS})
    return Response(reply.body, media_type="application/json", headers=reply.headers)


class _WatchedStream:
    """A reply's stream that notes whether litestar ever began to read it (`__aiter__`, once per
    response: nothing per chunk)."""

    __slots__ = ("began", "stream")

    def __init__(self, stream: AsyncIterator[bytes]) -> None:
        self.stream = stream
        self.began = False

    def __aiter__(self) -> AsyncIterator[bytes]:
        self.began = True
        return self.stream


def streamed_response(reply: Reply, media_type: str, headers: dict[str, str]) -> Stream:
    """litestar's streamed response for `reply`. A client that leaves before litestar reads the first
    chunk leaves the stream unstarted, and a generator never started runs no `finally`: afterwards (a
    background task runs once the response is over, however it ended) the reply is abandoned then."""
    assert reply.stream is not None
    watched = _WatchedStream(reply.stream)
    abandon = reply.abandon

    def if_never_read() -> None:
        if abandon is not None and not watched.began:
            abandon()

    return Stream(watched, media_type=media_type, headers=headers, background=BackgroundTask(if_never_read))


async def answer_request(handler: InferenceHandler, request: Request[Any, Any, Any], surface: Surface,
                         turn: Turn | None = None) -> Response[Any]:
    """A litestar route's whole work: the handler's reply to this request (given up if the client
    leaves before it is ready), as a response; an error in the surface's own shape (litestar's exception
    handler would give OpenAI's)."""
    client = request.client
    try:
        answering = handler.answer(surface, await request.body(), request.headers,
                                   client.host if client else None, record_of(request.scope), turn)
        reply = await unless_client_disconnects(request.receive, answering)
    except Exception as exc:
        error = error_for(exc, request.scope)
        return error_response(error, surface.error_body(error))
    return as_response(reply)
