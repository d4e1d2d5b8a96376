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
from collections.abc import AsyncGenerator, AsyncIterator, Callable

from gateway.errors import GatewayError, UpstreamError
from gateway.upstream.chunk_tap import ChunkTap
from gateway.upstream.sse_events import DONE_DATA, SseSplitter, StreamFormatError
from gateway.upstream.sse_stream_state import DONE, SseStreamState, error_event
from gateway.upstream.stream_connection import UpstreamStream
from gateway.upstream.stream_outcome import StreamOutcome
from gateway.upstream.stream_reads import StreamCutoff, StreamReads

__all__ = ["DONE", "StreamCutoff", "StreamOutcome", "error_event", "read_payloads", "relay_sse"]


async def relay_sse(
    response: UpstreamStream,
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
) -> AsyncGenerator[bytes, None]:
    """`capture`: every data payload is appended to it (the usage chunk included), for the cache.
    `cutoff`: how the gateway ends the stream early (shutting down). `tap`: each worker chunk yielded is
    noted in it with its decoded form (a translating surface's, `chunk_tap`)."""
    state = SseStreamState(worker_name, client_wants_usage=client_wants_usage,
                           prompt_tokens_estimate=prompt_tokens_estimate, on_first=on_first, capture=capture)
    outcome = state.outcome
    reads = StreamReads(worker_name, idle_timeout, deadline, cutoff)
    ended = False
    try:
        while not state.done:
            data = await reads.read(response.readany)
            ended = not data
            payloads = state.payloads(data) if data else state.end_payloads()
            if tap is None:  # every event one read completed goes out in one piece
                if out := state.events(payloads):
                    yield out
            else:  # a translating surface reads each event beside its decoded chunk
                for payload in payloads:
                    if payload == DONE_DATA:
                        state.done = True
                        break
                    event, chunk = state.take(payload)
                    if event is not None:
                        tap.event, tap.chunk = event, chunk
                        yield event
            if ended:
                break
        yield state.end()
    except GatewayError as exc:
        outcome.error = exc
        if state.pending:  # the events read before a malformed or error chunk in the same read
            yield state.pending
        yield error_event(exc)
        yield DONE
    except (asyncio.CancelledError, GeneratorExit):
        # Closed once the answer was whole (a translating surface closes the relay at `[DONE]`, a client
        # may leave before reading it): complete, not a client that left.
        outcome.client_disconnected = not outcome.completed
        raise
    finally:
        reads.close()
        if outcome.completed and not ended:
            response.finish()  # pooled again once its body is over
        else:
            response.close()  # drops the connection: the worker stops generating
        if on_end is not None:
            on_end(outcome)


async def read_payloads(response: UpstreamStream, worker_name: str, idle: float, deadline: float,
                        cutoff: StreamCutoff | None) -> AsyncIterator[list[bytes]]:
    """Yield the data payloads of the SSE events each read of the body completes (one list a read).
    `deadline` is the loop time by which the whole stream must be over."""
    reads = StreamReads(worker_name, idle, deadline, cutoff)
    events = SseSplitter()
    try:
        while data := await reads.read(response.readany):
            if payloads := events.feed(data):
                yield payloads
        yield events.end()
    except StreamFormatError as exc:
        raise UpstreamError(f"worker {worker_name!r} sent {exc}") from None
    finally:
        reads.close()
