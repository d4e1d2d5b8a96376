"""Relays a worker's stream in a surface's own format (Anthropic Messages events, Responses events) to the
client, for a worker that serves the surface natively: the gateway does not translate it, but it still
reads it, to count its tokens, to notice how it ends, and to rewrite what names the gateway's side of
the answer (the model, a stored response's id).

What each event means is the surface's (`NativeEvents`, implemented in `gateway.surfaces`); what is
common is here: bounded reads (idle timeout, deadline, the drain cutoff), one decode per event, each
event sent on under its `event:` name (the SDKs dispatch on it), and honest ends: a stream that breaks,
stalls or ends before its surface's last event becomes that surface's error event, never a silent end.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from typing import Any, Protocol

from gateway.errors import GatewayError, UpstreamError
from gateway.upstream.sse_events import StreamFormatError, decode_chunk
from gateway.upstream.sse_relay import StreamCutoff, StreamOutcome, read_payloads
from gateway.upstream.stream_connection import UpstreamStream


class NativeEvents(Protocol):
    """A surface's reading of one native stream."""

    content_kinds: frozenset[str]
    """The event types that carry generated content (time to first token, tokens counted when the
    worker reports none)."""

    def read(self, kind: str, event: dict[str, Any], payload: bytes) -> bytes:
        """The bytes to send for one event (its payload as it is, or rewritten). Raises a `GatewayError`
        for the worker's error event."""

    @property
    def ended(self) -> bool:
        """The surface's last event has been read: the answer is whole."""

    async def finish(self, last: bytes) -> bytes:
        """What to send for the last event, `last` (e.g. after storing the answer it completes)."""

    def usage(self) -> dict[str, int] | None:
        """The tokens the stream reported, as OpenAI's `usage` (`prompt_tokens`, `completion_tokens`)."""

    def failure(self, error: GatewayError) -> bytes:
        """The surface's error event for a stream that failed."""


async def relay_native_sse(
    response: UpstreamStream,
    events: NativeEvents,
    *,
    worker_name: str,
    idle_timeout: float,
    deadline: float,
    on_end: Callable[[StreamOutcome], None] | None = None,
    on_first: Callable[[], None] | None = None,
    cutoff: StreamCutoff | None = None,
) -> AsyncIterator[bytes]:
    outcome = StreamOutcome(native=True)
    content_kinds = events.content_kinds
    try:
        async for payloads in read_payloads(response, worker_name, idle_timeout, deadline, cutoff):
            out = b""
            for payload in payloads:
                kind, event = _event_of(payload, worker_name)
                outcome.chunks += 1
                out += events.read(kind, event, payload)
                if kind in content_kinds:
                    outcome.content_chunks += 1
                    if outcome.first_content_at is None:
                        outcome.first_content_at = time.perf_counter()
                        if on_first is not None:
                            on_first()
                if events.ended:
                    outcome.usage = events.usage()
                    outcome.completed = True
                    yield await events.finish(out)
                    return
            if out:
                yield out
        raise UpstreamError(f"worker {worker_name!r} ended the stream before its last event")
    except GatewayError as exc:
        outcome.error = exc
        outcome.usage = events.usage()
        yield events.failure(exc)
    except (asyncio.CancelledError, GeneratorExit):
        outcome.client_disconnected = not outcome.completed
        raise
    finally:
        if outcome.completed:
            response.finish()  # pooled again once its body is over
        else:
            response.close()  # drops the connection: the worker stops generating
        if on_end is not None:
            on_end(outcome)


def _event_of(payload: bytes, worker_name: str) -> tuple[str, dict[str, Any]]:
    """An event's type and its decoded data; a payload that is no JSON object with a `type` raises."""
    try:
        event = decode_chunk(payload)
    except StreamFormatError as exc:
        raise UpstreamError(f"worker {worker_name!r} sent {exc}") from None
    kind = event.get("type")
    if not isinstance(kind, str):
        raise UpstreamError(f"worker {worker_name!r} sent a stream event without a type")
    return kind, event
