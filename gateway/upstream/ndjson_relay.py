"""Relays an NDJSON stream (Ollama's `/api/chat`, `/api/generate`) to the client as OpenAI SSE, line by
line, as the worker produces it. What each line means is the worker protocol's business: it hands in a
`LineTranslator` (`gateway.protocols.ollama_answers.StreamTranslator`); this module does the I/O.

The same contract as `sse_relay.relay_sse`: honest streams, where a stream that breaks, stalls past the
idle timeout, outlives the deadline, carries an error line (Ollama's `{"error": "..."}`) or ends without
its final (`done: true`) line becomes an OpenAI error event followed by `[DONE]`; never a made-up
`finish_reason`. Usage comes from the final line's counts (estimated where the worker leaves one out);
the client gets the usage chunk only if it asked. The outcome is handed to `on_end` whatever happens, and
the worker's response is closed, which is how Ollama learns to stop generating for a client that left.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncGenerator, AsyncIterator, Callable
from typing import Any, Protocol

import msgspec

from gateway.errors import GatewayError, UpstreamError
from gateway.upstream.sse_events import NdjsonSplitter, StreamFormatError
from gateway.upstream.sse_relay import DONE, StreamCutoff, StreamOutcome, error_event
from gateway.upstream.stream_choices import has_content
from gateway.upstream.stream_connection import UpstreamStream
from gateway.upstream.stream_reads import StreamReads


class LineTranslator(Protocol):
    """One stream's lines as OpenAI stream chunks: the protocol's side of the relay, without I/O."""

    done: bool
    """Whether the last line fed was the stream's final one."""

    def feed(self, raw: bytes) -> list[dict[str, Any]]:
        """The chunks for one line (without its newline); raises the worker's error for an error line and
        `UpstreamError` for a line that is not the worker's."""
        ...

    def final_usage(self, *, prompt_estimate: int, completion_estimate: int) -> tuple[dict[str, int], bool]:
        """The OpenAI usage of the final line, and whether part of it was estimated."""
        ...

    def usage_chunk(self, usage: dict[str, int]) -> dict[str, Any]:
        """The usage-only chunk that ends a stream whose client asked for usage."""
        ...


MAX_LINE_BYTES = 8 * 1024 * 1024
"""A longer line without a newline is not Ollama's: the stream is dropped as malformed."""

_encode = msgspec.json.Encoder().encode


def _event(payload: bytes) -> bytes:
    return b"data: " + payload + b"\n\n"


async def relay_ndjson(
    response: UpstreamStream,
    translator: LineTranslator,
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
) -> AsyncIterator[bytes]:
    """Yield OpenAI SSE bytes (`data: {json}\\n\\n` ... `data: [DONE]\\n\\n`) for an open NDJSON stream,
    each line turned into chunks by `translator` (a new one per stream).

    `deadline` is the loop time by which the whole stream must be over. `capture` (as `relay_sse`'s):
    every chunk's JSON is appended to it, the usage chunk included, without the client's `usage: null`s.
    `cutoff` (as `relay_sse`'s): how the gateway ends the stream early (shutting down)."""
    outcome = StreamOutcome()
    try:
        async with contextlib.aclosing(_lines(response, worker_name, idle_timeout, deadline, cutoff)) as lines:
            async for raw in lines:
                chunks = translator.feed(raw)  # raises on an error line and on what is not the worker's
                outcome.chunks += 1
                done = translator.done
                if done:
                    # Counted before the last line goes out, so a client leaving now is billed right.
                    with_content = outcome.content_chunks + sum(1 for c in chunks if has_content(c))
                    outcome.usage, outcome.usage_counted_by_gateway = translator.final_usage(
                        prompt_estimate=prompt_tokens_estimate, completion_estimate=with_content)
                for chunk in chunks:
                    if has_content(chunk):
                        outcome.content_chunks += 1
                        if outcome.first_content_at is None:
                            outcome.first_content_at = time.perf_counter()
                            if on_first is not None:
                                on_first()
                    outcome.last = chunk
                    if capture is not None:
                        capture.append(_encode(chunk))
                    # OpenAI writes `usage: null` on every chunk of a stream whose client asked for usage.
                    yield _event(_encode({**chunk, "usage": None} if client_wants_usage else chunk))
                if done:
                    outcome.completed = True
                    break
        if not outcome.completed:
            raise UpstreamError(f"worker {worker_name!r} ended the stream without its final (done) line")
        if outcome.usage is not None:
            payload = _encode(translator.usage_chunk(outcome.usage))
            if capture is not None:
                capture.append(payload)
            if client_wants_usage:
                yield _event(payload)
        yield DONE
    except GatewayError as exc:
        outcome.error = exc
        yield error_event(exc)
        yield DONE
    except (asyncio.CancelledError, GeneratorExit):
        # Closed once the answer was whole (a translating surface closes the relay at `[DONE]`, a client
        # may leave before reading it): complete, not a client that left.
        outcome.client_disconnected = not outcome.completed
        raise
    finally:
        if outcome.completed:
            response.finish()  # pooled again once its body is over
        else:
            response.close()  # drops the connection: the worker stops generating
        if on_end is not None:
            on_end(outcome)


async def _lines(response: UpstreamStream, worker_name: str, idle: float, deadline: float,
                 cutoff: StreamCutoff | None) -> AsyncGenerator[bytes, None]:
    """Yield each non-blank line of the body (without its newline), however the bytes are chunked.

    `idle` bounds each wait for bytes; `deadline` is the loop time by which the stream must be over."""
    readany = response.readany
    reads = StreamReads(worker_name, idle, deadline, cutoff)
    lines = NdjsonSplitter(MAX_LINE_BYTES)
    try:
        while data := await reads.read(readany):
            for line in lines.feed(data):
                yield line
        for line in lines.end():
            yield line
    except StreamFormatError as exc:
        raise UpstreamError(f"worker {worker_name!r} sent {exc}") from None
    finally:
        reads.close()

