"""Relays a worker's SSE stream to the client chunk by chunk, as the worker produces it.

Honest streams: comments are dropped, the worker's mid-stream errors are normalized, and a stream
that breaks, stalls past the idle timeout, ends without `[DONE]`, reaches `[DONE]` before one of its
choices got its `finish_reason` (cut by the worker, `stream_choices`) or is cut by the gateway (its
drain deadline) becomes an OpenAI error event followed by `[DONE]`; never a made-up `finish_reason`. The
gateway always asks the worker for usage; the client gets the usage chunk only if it asked, and one is
counted here when the worker sends none. The body is read as it arrives (one bounded read at a time)
and split into events by the one parser, `sse_events.SseSplitter`; each chunk is decoded once (a
translating surface's encoder takes it decoded, from the request's `chunk_tap.ChunkTap`).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import msgspec

from gateway.errors import GatewayError, UpstreamError, worker_error
from gateway.upstream.chunk_tap import ChunkTap
from gateway.upstream.sse_events import DONE_DATA, SseSplitter, StreamFormatError, decode_chunk
from gateway.upstream.stream_choices import ChoiceTracker, cut_message
from gateway.upstream.stream_reads import StreamCutoff, StreamReads

__all__ = ["DONE", "StreamCutoff", "StreamOutcome", "error_event", "read_payloads", "relay_sse"]

DONE = b"data: [DONE]\n\n"
_encode = msgspec.json.Encoder().encode


@dataclass(slots=True)
class StreamOutcome:
    """What happened to one relayed stream (for logs, metrics and usage accounting)."""

    completed: bool = False
    """The stream ended with `[DONE]`, every choice with its `finish_reason`: a whole answer."""
    error: GatewayError | None = None
    client_disconnected: bool = False
    chunks: int = 0
    content_chunks: int = 0
    usage: dict[str, Any] | None = None
    usage_counted_by_gateway: bool = False
    first_content_at: float | None = None
    """`time.perf_counter()` when the first content chunk was handed on."""
    last: dict[str, Any] = field(default_factory=dict)
    native: bool = False
    """The stream was the worker's own for a surface the gateway translates (Anthropic's, Responses'),
    relayed as it is: nothing in it for the cache, which keeps OpenAI chunks."""


def error_event(error: GatewayError) -> bytes:
    return b"data: " + _encode(error.body()) + b"\n\n"


async def relay_sse(
    response: aiohttp.ClientResponse,
    *,
    worker_name: str,
    idle_timeout: float,
    deadline: float,
    client_wants_usage: bool,
    prompt_tokens_estimate: int,
    on_end: Callable[[StreamOutcome], None] | None = None,
    on_first: Callable[[], None] | None = None,
    capture: list[bytes] | None = None,
    cutoff: StreamCutoff | None = None,
    tap: ChunkTap | None = None,
) -> AsyncIterator[bytes]:
    """`capture`: every data payload is appended to it (the usage chunk included), for the cache.
    `cutoff`: how the gateway ends the stream early (shutting down). `tap`: each worker chunk yielded is
    noted in it with its decoded form (a translating surface's, `chunk_tap`)."""
    outcome = StreamOutcome()
    choices = ChoiceTracker()
    done = False
    # Without a tap, every event one read completed goes out in one piece (one write to the client, so a
    # relay that fell behind catches up); `ready` holds those not yielded yet.
    ready = b""
    try:
        async for payloads in read_payloads(response, worker_name, idle_timeout, deadline, cutoff):
            for payload in payloads:
                if payload == DONE_DATA:
                    done = True
                    break
                chunk, has_content = _checked(payload, worker_name, choices)
                outcome.chunks += 1
                if capture is not None:
                    capture.append(payload)
                usage = chunk.get("usage")
                if usage:
                    outcome.usage = usage
                    if not chunk.get("choices"):  # the usage-only chunk
                        if client_wants_usage:
                            event = b"data: " + payload + b"\n\n"
                            if tap is not None:
                                tap.event, tap.chunk = event, chunk
                                yield event
                            else:
                                ready = ready + event if ready else event
                        continue
                if has_content:
                    outcome.content_chunks += 1
                    if outcome.first_content_at is None:
                        outcome.first_content_at = time.perf_counter()
                        if on_first is not None:
                            on_first()
                outcome.last = chunk
                event = b"data: " + payload + b"\n\n"
                if tap is not None:  # a translating surface reads each event beside its decoded chunk
                    tap.event, tap.chunk = event, chunk
                    yield event
                else:
                    ready = ready + event if ready else event
            if ready:
                event, ready = ready, b""
                yield event
            if done:
                break
        if not done:
            raise UpstreamError(f"worker {worker_name!r} ended the stream without [DONE]")
        if unfinished := choices.unfinished():
            raise UpstreamError(cut_message(worker_name, unfinished))
        outcome.completed = True
        if client_wants_usage and outcome.usage is None:
            outcome.usage = _counted_usage(outcome, prompt_tokens_estimate)
            outcome.usage_counted_by_gateway = True
            yield b"data: " + _encode(_usage_chunk(outcome.last, outcome.usage)) + b"\n\n"
        yield DONE
    except GatewayError as exc:
        outcome.error = exc
        if ready:  # the events read before a malformed or error chunk in the same read
            yield ready
        yield error_event(exc)
        yield DONE
    except (asyncio.CancelledError, GeneratorExit):
        # Closed once the answer was whole (a translating surface closes the relay at `[DONE]`, a client
        # may leave before reading it): complete, not a client that left.
        outcome.client_disconnected = not outcome.completed
        raise
    finally:
        response.close()  # drops the connection unless the body was read to its end
        if on_end is not None:
            on_end(outcome)


async def read_payloads(response: aiohttp.ClientResponse, worker_name: str, idle: float, deadline: float,
                    cutoff: StreamCutoff | None) -> AsyncIterator[list[bytes]]:
    """Yield the data payloads of the SSE events each read of the body completes (one list a read).
    `deadline` is the loop time by which the whole stream must be over."""
    readany = response.content.readany
    reads = StreamReads(worker_name, idle, deadline, cutoff)
    events = SseSplitter()
    try:
        while data := await reads.read(readany):
            if payloads := events.feed(data):
                yield payloads
        yield events.end()
    except StreamFormatError as exc:
        raise UpstreamError(f"worker {worker_name!r} sent {exc}") from None
    finally:
        reads.close()


def _checked(payload: bytes, worker_name: str, choices: ChoiceTracker) -> tuple[dict[str, Any], bool]:
    """A worker's chunk, and whether it carries content (its choices noted in `choices`); its error event
    or a malformed chunk raises."""
    try:
        chunk = decode_chunk(payload)
        if "error" in chunk:
            raise worker_error(500, payload)
        return chunk, choices.read(chunk)
    except StreamFormatError as exc:
        raise UpstreamError(f"worker {worker_name!r} sent {exc}") from None
    except (AttributeError, TypeError):  # `choices` or a `delta` that is not what OpenAI sends
        raise UpstreamError(f"worker {worker_name!r} sent a malformed stream chunk") from None


def _counted_usage(outcome: StreamOutcome, prompt_tokens_estimate: int) -> dict[str, int]:
    # Workers stream one token per chunk; the prompt is estimated when the worker does not say.
    completion = outcome.content_chunks
    return {"prompt_tokens": prompt_tokens_estimate, "completion_tokens": completion,
            "total_tokens": prompt_tokens_estimate + completion}


def _usage_chunk(last: dict[str, Any], usage: dict[str, int]) -> dict[str, Any]:
    return {"id": last.get("id", ""), "object": last.get("object", "chat.completion.chunk"),
            "created": last.get("created", 0), "model": last.get("model", ""), "choices": [],
            "usage": usage}
