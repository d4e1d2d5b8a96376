"""Plays one streamed reply, with its fault if any, in either wire format (vLLM SSE or Ollama NDJSON).

A stream is: opening chunks (vLLM chat's role chunk), one chunk per token, closing chunks (vLLM's
finish and usage chunks), then the terminator (vLLM's `[DONE]`, Ollama's `done: true` line). The same
script plays the Responses and Messages event streams (`simulator.responses_format`,
`simulator.messages_format`), whose chunks may hold several SSE events. A
`StreamFormat` says how each part is written; `play_stream` writes them and injects the fault:
`stall-after-N`, `drop-mid-stream`, `mid-stream-error` and `done-without-finish` fire after their
count of token chunks (or at the end of a shorter reply), `no-done` leaves out the terminator,
`garbage-sse` writes non-JSON lines instead of the token chunks.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass

from aiohttp import web

from simulator.faults import CUT_AFTER_CHUNKS, DROP_AFTER_CHUNKS, ERROR_AFTER_CHUNKS, Fault, FaultKind
from simulator.streaming import ChunkStream, hang_until_disconnected

Chunks = Callable[[], list[bytes]]


@dataclass(frozen=True)
class StreamFormat:
    """How the parts of one stream are written."""

    opening: Chunks
    token: Callable[[str], bytes]
    closing: Chunks
    terminator: Chunks
    error_events: Chunks
    """What `mid-stream-error` sends instead of the rest of the stream."""
    garbage: Callable[[int], bytes]
    """A line that is not JSON, for the token chunk of the given index."""
    end_marker: Chunks = list
    """What ends a stream apart from its answer, sent by `done-without-finish` right after the token
    chunks: vLLM's `[DONE]`; nothing for Ollama, whose final answer line is its end."""
    keepalive_comment: str | None = None
    """An SSE comment written between token chunks (vLLM's optional `: keep-alive`)."""


def hold_back(piece: str) -> bytes:
    """A token that sends nothing: Ollama holds a tool call's tokens back until the call is parsed, then
    sends it whole (an empty token chunk is not written)."""
    return b""


def _trigger_point(fault: Fault | None) -> int | None:
    """After how many token chunks the fault interrupts the stream (None: it does not)."""
    if fault is None:
        return None
    if fault.kind is FaultKind.STALL:
        return fault.stall_after_chunks
    if fault.kind is FaultKind.DROP_MID_STREAM:
        return DROP_AFTER_CHUNKS
    if fault.kind is FaultKind.MID_STREAM_ERROR:
        return ERROR_AFTER_CHUNKS
    if fault.kind is FaultKind.DONE_WITHOUT_FINISH:
        return CUT_AFTER_CHUNKS
    return None


async def play_stream(
    stream: ChunkStream, stream_format: StreamFormat, tokens: AsyncIterator[str], fault: Fault | None
) -> web.StreamResponse:
    """Write the whole stream from `tokens` and end the response (or break it, as the fault says)."""
    trigger = _trigger_point(fault)
    garbage = fault is not None and fault.kind is FaultKind.GARBAGE_SSE
    for data in stream_format.opening():
        await stream.send(data)
    sent = 0
    async for piece in tokens:
        if trigger is not None and sent >= trigger:
            break
        if sent > 0 and stream_format.keepalive_comment is not None:
            await stream.send_comment(stream_format.keepalive_comment)
        data = stream_format.garbage(sent) if garbage else stream_format.token(piece)
        if data:
            await stream.send(data)
        sent += 1
    if fault is not None and trigger is not None:
        return await _interrupt(stream, stream_format, fault)
    for data in stream_format.closing():
        await stream.send(data)
    if fault is None or fault.kind is not FaultKind.NO_DONE:
        for data in stream_format.terminator():
            await stream.send(data)
    return await stream.finish()


async def _interrupt(stream: ChunkStream, stream_format: StreamFormat, fault: Fault) -> web.StreamResponse:
    if fault.kind is FaultKind.DROP_MID_STREAM:
        return await stream.drop()
    if fault.kind is FaultKind.MID_STREAM_ERROR:
        for data in stream_format.error_events():
            await stream.send(data)
        return await stream.finish()
    if fault.kind is FaultKind.DONE_WITHOUT_FINISH:
        for data in stream_format.end_marker():
            await stream.send(data)
        return await stream.finish()
    await hang_until_disconnected()
