"""HTTP plumbing shared by both front ends: request records, JSON bodies, streams and disconnects.

`recording_middleware` opens a `RequestRecord` for every request and notes when the client goes
away: the server runs with aiohttp's handler cancellation, so a client disconnect cancels the
handler (`asyncio.CancelledError`) or fails its next write (`ConnectionResetError`). `ChunkStream`
writes SSE events or NDJSON lines and stamps each one's send time on the record.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, NoReturn

import msgspec
from aiohttp import web
from aiohttp.typedefs import Middleware

from simulator.records import RecordBook, RequestRecord

RECORD = web.RequestKey("simulator_record", RequestRecord)
"""Where a request's record is kept on the aiohttp request."""

_STREAM = web.RequestKey("simulator_stream", web.StreamResponse)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

_json_encoder = msgspec.json.Encoder()


def encode_json(value: Any) -> bytes:
    return _json_encoder.encode(value)


def sse_event(value: Any) -> bytes:
    """One SSE event: `data: {json}\\n\\n`."""
    return b"data: " + encode_json(value) + b"\n\n"


def named_sse_event(name: str, value: Any) -> bytes:
    """One SSE event with its type: `event: {name}\\ndata: {json}\\n\\n` (Responses, Messages)."""
    return b"event: " + name.encode() + b"\ndata: " + encode_json(value) + b"\n\n"


def sse_garbage(index: int) -> bytes:
    """An SSE data line that is not JSON (the `garbage-sse` fault's token chunk)."""
    return f"data: <garbage {index}> {{not json\n\n".encode()


def ndjson_line(value: Any) -> bytes:
    """One NDJSON line: `{json}\\n`."""
    return encode_json(value) + b"\n"


def json_response(value: Any, status: int = 200, headers: Mapping[str, str] | None = None) -> web.Response:
    return web.Response(body=encode_json(value), status=status, content_type="application/json", headers=headers)


class ErrorReply(Exception):
    """Raised by a handler to answer with an error body (the front end decides its shape)."""

    def __init__(self, status: int, body: Any, headers: Mapping[str, str] | None = None) -> None:
        super().__init__(f"HTTP {status}: {body!r}")
        self.status = status
        self.body = body
        self.headers = dict(headers or {})

    def to_response(self) -> web.Response:
        return json_response(self.body, status=self.status, headers=self.headers)


def record_of(request: web.Request) -> RequestRecord:
    return request[RECORD]


def make_recording_middleware(book: RecordBook) -> Middleware:
    """A middleware that records every request in `book`, including when its client disconnects."""

    @web.middleware
    async def recording_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        record = book.open(request.path, request.method, request.headers)
        request[RECORD] = record
        try:
            response = await handler(request)
        except ErrorReply as error:
            response = error.to_response()
        except web.HTTPException as error:
            record.status = error.status
            record.finished = time.monotonic()
            raise
        except asyncio.CancelledError:
            _note_disconnect(record)
            raise
        except ConnectionResetError:
            _note_disconnect(record)
            # The client is gone: nothing more can be sent, aiohttp drops this response quietly.
            return request.get(_STREAM) or web.Response(status=499)
        if record.status == 0:
            record.status = response.status
        if record.finished is None:
            record.finished = time.monotonic()
        return response

    return recording_middleware


def _note_disconnect(record: RequestRecord) -> None:
    if record.finished is None and record.disconnected is None:
        record.disconnected = time.monotonic()


class ChunkStream:
    """An open streaming response whose chunks are stamped on the request's record."""

    def __init__(self, request: web.Request, response: web.StreamResponse) -> None:
        self.request = request
        self.response = response
        self.record = record_of(request)

    @classmethod
    async def open(
        cls, request: web.Request, content_type: str, headers: Mapping[str, str] | None = None
    ) -> ChunkStream:
        """Send the status line and headers of a 200 streaming response."""
        response = web.StreamResponse(status=200, headers=headers)
        response.content_type = content_type
        if content_type == "text/event-stream":
            response.headers["Cache-Control"] = "no-cache"
        return await cls.open_response(request, response)

    @classmethod
    async def open_response(cls, request: web.Request, response: web.StreamResponse) -> ChunkStream:
        """Send the status line and headers of `response`."""
        request[_STREAM] = response
        record_of(request).status = response.status
        await response.prepare(request)
        return cls(request, response)

    async def send(self, data: bytes) -> None:
        """Write one chunk (an SSE event or an NDJSON line) and note when it went out.

        The time is noted just before the write, so a client never sees a chunk before its record does.
        """
        self.record.chunk_times.append(time.monotonic())
        try:
            await self.response.write(data)
        except BaseException:
            self.record.chunk_times.pop()
            raise

    async def send_comment(self, text: str) -> None:
        """Write an SSE comment line (not a chunk: clients ignore it)."""
        await self.response.write(f": {text}\n\n".encode())

    async def finish(self) -> web.StreamResponse:
        """End the body (noted as finished first, so the client never sees the end before the record)."""
        self.record.finished = time.monotonic()
        await self.response.write_eof()
        return self.response

    async def drop(self) -> web.StreamResponse:
        """Close the connection now, without ending the body (the client sees a truncated stream).

        The transport still flushes what was written before it closes.
        """
        self.record.finished = time.monotonic()
        transport = self.request.transport
        if transport is not None:
            transport.close()
        return self.response


async def send_half_then_drop(request: web.Request, body: Any, headers: Mapping[str, str]) -> web.StreamResponse:
    """Announce a whole JSON reply, send half of it, and close the connection (a truncated body)."""
    payload = encode_json(body)
    response = web.StreamResponse(status=200, headers=headers)
    response.content_type = "application/json"
    response.content_length = len(payload)
    stream = await ChunkStream.open_response(request, response)
    await response.write(payload[: len(payload) // 2])
    return await stream.drop()


async def hang_until_disconnected() -> NoReturn:
    """Wait forever; the handler is cancelled when its client disconnects (or the server stops)."""
    await asyncio.Event().wait()
    raise AssertionError("unreachable: an Event nobody sets was set")
