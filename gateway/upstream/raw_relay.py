"""Relaying a worker's streamed answer byte for byte: for surfaces the gateway passes on without reading
(audio transcriptions' SSE events). Each read is bounded by the idle timeout and the request's deadline,
and ended early by the drain deadline, like the SSE relay's; a failure mid-stream ends the stream with an
OpenAI error event (never a silent end that looks whole)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable

from gateway.errors import GatewayError
from gateway.upstream.client import WorkerResponse
from gateway.upstream.sse_relay import StreamCutoff, StreamOutcome, error_event
from gateway.upstream.stream_reads import StreamReads


async def relay_raw(response: WorkerResponse, *, worker_name: str, idle_timeout: float, deadline: float,
                    on_end: Callable[[StreamOutcome], None], cutoff: StreamCutoff | None = None
                    ) -> AsyncIterator[bytes]:
    """The worker's body as it comes; `on_end` gets the outcome whatever happens (`completed`: the
    worker ended its answer)."""
    outcome = StreamOutcome()
    readany = response.content.readany
    reads = StreamReads(worker_name, idle_timeout, deadline, cutoff)
    try:
        while data := await reads.read(readany):
            outcome.chunks += 1
            if outcome.first_content_at is None:
                outcome.first_content_at = time.perf_counter()
            yield data
        outcome.completed = True
    except GatewayError as exc:
        outcome.error = exc
        yield error_event(exc)
    except (asyncio.CancelledError, GeneratorExit):
        outcome.client_disconnected = not outcome.completed
        raise
    finally:
        reads.close()
        response.close()
        on_end(outcome)
