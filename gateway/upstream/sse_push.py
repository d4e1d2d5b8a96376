"""A worker's OpenAI SSE stream relayed by pushing: each piece of body the worker's connection reads goes,
checked (`sse_stream_state`), straight to the client's connection from the event loop's callback. No
task wakes per chunk, no timer per read: the request's task waits once for the stream's end (or for a
slow client to catch up), one timer watches the idle timeout and the deadline.

The same contract as `sse_relay.relay_sse` (honest streams: an error event and `[DONE]` for a stream that
breaks, stalls, is malformed, ends early or is cut by the drain), which is also how this stream is read
when the client's connection cannot be written to directly (`PushableStream.__aiter__`: litestar's
routes, a wrapped stream).

A slow client: when its connection's buffer is full, the worker's connection stops being read until the
client caught up (TCP's backpressure reaches the worker, as with a relay that awaits each write).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, AsyncIterator, Callable
from typing import Protocol

from gateway.errors import GatewayError, UpstreamTimeout
from gateway.upstream.sse_relay import relay_sse
from gateway.upstream.sse_stream_state import DONE, SseStreamState, error_event
from gateway.upstream.stream_connection import UpstreamStream
from gateway.upstream.stream_outcome import StreamOutcome
from gateway.upstream.stream_reads import StreamCutoff


class ClientSink(Protocol):
    """The client's connection, written to directly (the HTTP layer's, once the response's head is sent)."""

    def write(self, data: bytes) -> None:
        """Send `data` as the next piece of the response body (nothing once the client left)."""

    def writable(self) -> bool:
        """The client's connection takes more now (its send buffer is not full)."""

    async def drained(self) -> None:
        """Wait until the client's connection takes more."""


class PushableStream:
    """A relayed OpenAI SSE stream that can be pushed to a `ClientSink` (`pump`) or read (`async for`):
    one or the other, once."""

    def __init__(self, response: UpstreamStream, *, worker_name: str, idle_timeout: float, deadline: float,
                 client_wants_usage: bool, prompt_tokens_estimate: int, on_end: Callable[[StreamOutcome], None],
                 on_first: Callable[[], None] | None, capture: list[bytes] | None, cutoff: StreamCutoff) -> None:
        self._response = response
        self._worker_name, self._idle, self._deadline = worker_name, idle_timeout, deadline
        self._client_wants_usage, self._prompt_tokens_estimate = client_wants_usage, prompt_tokens_estimate
        self._on_end, self._on_first, self._capture, self._cutoff = on_end, on_first, capture, cutoff
        self._read: AsyncGenerator[bytes, None] | None = None
        self._pumped = False

    def __aiter__(self) -> AsyncIterator[bytes]:
        return self

    async def __anext__(self) -> bytes:
        """The stream read chunk by chunk (`relay_sse`), when it is not pushed."""
        read = self._read
        if read is None:
            if self._pumped:
                raise RuntimeError("a relayed stream is pushed or read, once")
            read = self._read = relay_sse(
                self._response, worker_name=self._worker_name, idle_timeout=self._idle, deadline=self._deadline,
                client_wants_usage=self._client_wants_usage, prompt_tokens_estimate=self._prompt_tokens_estimate,
                on_end=self._on_end, on_first=self._on_first, capture=self._capture, cutoff=self._cutoff)
        return await anext(read)

    async def aclose(self) -> None:
        if self._read is not None:
            await self._read.aclose()

    async def pump(self, sink: ClientSink) -> None:
        """Relay the whole stream to `sink`, its last bytes (`[DONE]`) included; returns when it is over.
        Cancelled (the client left): the worker's connection is closed."""
        if self._pumped or self._read is not None:
            raise RuntimeError("a relayed stream is pushed or read, once")
        self._pumped = True
        state = SseStreamState(self._worker_name, client_wants_usage=self._client_wants_usage,
                               prompt_tokens_estimate=self._prompt_tokens_estimate, on_first=self._on_first,
                               capture=self._capture)
        pusher = _Pusher(state, sink, self._response, self._idle, self._deadline, self._cutoff)
        outcome = state.outcome
        try:
            error = await pusher.run()
            if error is None:
                try:
                    sink.write(state.end())
                except GatewayError as exc:
                    error = exc
            if error is not None:
                outcome.error = error
                sink.write(state.pending + error_event(error) + DONE)
        except asyncio.CancelledError:
            outcome.client_disconnected = not outcome.completed
            raise
        finally:
            pusher.stop()
            if outcome.completed and pusher.read_to_done:
                self._response.finish()  # pooled again once its body is over
            else:
                self._response.close()  # drops the connection: the worker stops generating
            self._on_end(outcome)


class _Pusher:
    """The consumer of the worker's body (`StreamConsumer`): feeds each piece to the state, writes what
    comes out to the client; wakes the pump's task only when the stream is over or the client is behind."""

    __slots__ = ("_check", "_cutoff", "_deadline", "_idle", "_last_read", "_loop", "_paused", "_response",
                 "_sink", "_state", "_wake", "error", "over", "read_to_done")

    def __init__(self, state: SseStreamState, sink: ClientSink, response: UpstreamStream, idle: float,
                 deadline: float, cutoff: StreamCutoff) -> None:
        self._state, self._sink, self._response, self._cutoff = state, sink, response, cutoff
        self._idle, self._deadline = idle, deadline
        self._loop = asyncio.get_running_loop()
        self._last_read = self._loop.time()
        self._wake: asyncio.Future[None] = self._loop.create_future()
        self._check: asyncio.TimerHandle | None = None
        self._paused = False
        self.over = False
        self.error: GatewayError | None = None
        self.read_to_done = False
        """The worker's stream reached `[DONE]` (its connection may be pooled again)."""

    async def run(self) -> GatewayError | None:
        """Push until the stream is over; its error (None: the worker's stream ended, `[DONE]` or not)."""
        cutoff = self._cutoff
        if cutoff.error is not None:
            return cutoff.error
        cutoff.reads = self
        self._check = self._loop.call_at(min(self._last_read + self._idle, self._deadline), self._expiry)
        self._response.push(self)
        while True:
            await self._wake
            if self.over:
                return self.error
            await self._sink.drained()  # woken because the client is behind
            self._paused = False
            self._last_read = self._loop.time()  # the idle timeout counts from now
            self._wake = self._loop.create_future()
            self._response.resume_reading()

    def body(self, data: bytes) -> None:
        if self.over:
            return
        self._last_read = self._loop.time()
        state = self._state
        try:
            out = state.feed(data)
        except GatewayError as exc:
            self._end(exc)
            return
        if out:
            self._sink.write(out)
        if state.done:
            self.read_to_done = True
            self._end(None)
        elif not self._sink.writable():
            self._paused = True
            self._response.pause_reading()
            if not self._wake.done():
                self._wake.set_result(None)

    def ended(self, error: GatewayError | None) -> None:
        if self.over:
            return
        if error is None:  # the body is over: an event it ended without its blank line, then `end` judges
            state = self._state
            try:
                if out := state.events(state.end_payloads()):
                    self._sink.write(out)
                self.read_to_done = state.done
            except GatewayError as exc:
                error = exc
        self._end(error)

    def expire(self) -> None:
        """The drain's cutoff: end now, with its error."""
        self._end(self._cutoff.error)

    def stop(self) -> None:
        self.over = True
        if self._check is not None:
            self._check.cancel()
            self._check = None

    def _end(self, error: GatewayError | None) -> None:
        if self.over:
            return
        self.over, self.error = True, error
        if not self._wake.done():
            self._wake.set_result(None)

    def _expiry(self) -> None:
        self._check = None
        if self.over:
            return
        now = self._loop.time()
        if now >= self._deadline:
            self._end(UpstreamTimeout(f"worker {self._state.worker_name!r} did not finish the stream within "
                                      "the request deadline"))
        elif not self._paused and now - self._last_read >= self._idle:
            self._end(UpstreamTimeout(f"worker {self._state.worker_name!r} sent nothing for {self._idle:g} s "
                                      "mid-stream"))
        else:
            due = self._deadline if self._paused else min(self._last_read + self._idle, self._deadline)
            self._check = self._loop.call_at(due, self._expiry)
