"""The way out: draining on SIGTERM, then stopping at the drain deadline.

    SIGTERM ──▶ drain: readiness fails, new requests get 503 `shutting_down` (`Connection: close`),
       │              requests and streams under way go on
       │ GATEWAY_DRAIN_SECONDS
       ▼
    stop:   a stream still open gets an error event and `[DONE]`; a request still waiting for its answer
            gets 503 `shutting_down`; then the server closes its connections and the process exits.

SIGINT, a second SIGTERM, or a drain of 0 s stop at once; a SIGTERM less than `REPEAT_WINDOW_S` after the
first is the same stop delivered twice (a signal to the process group, then `make` or a shell passing it
on to its child), not an operator asking again, and is ignored. `llm-gateway serve` drives this from its server
(`gateway.app.server`); processes whose server the gateway does not build (`GATEWAY_WORKERS>1`: uvicorn's
worker processes) put it in front of the server's own signal handlers at startup (`Lifecycle.start`).
"""

from __future__ import annotations

import asyncio
import signal
import threading
from collections.abc import Callable
from types import FrameType
from typing import Any

import structlog

from gateway.errors import ShuttingDown
from gateway.upstream.sse_relay import StreamCutoff

_log = structlog.get_logger("gateway.inference.lifecycle")

SignalHandler = Callable[[int, FrameType | None], Any]


REPEAT_WINDOW_S = 1.0
"""A SIGTERM this soon after the one that began the drain is a duplicate: GNU make, stopped by a signal to
its process group, sends its children SIGTERM again, and the two arrive apart or together by chance."""


class Lifecycle:
    """Where the process is on its way out, and what must be ended at the drain deadline: the forwarded
    requests still waiting for an answer (their tasks) and the relayed streams (their cutoffs).

    `signal_drain_s`: for a server the gateway does not build, the drain that `start` puts in front of its
    signal handlers; None (`llm-gateway serve`): the gateway's own server calls `on_signal`."""

    def __init__(self, *, signal_drain_s: float | None = None) -> None:
        self.draining = False
        """From SIGTERM on: readiness fails and new requests are refused."""
        self.stopped = False
        """From the drain deadline on: nothing is forwarded any more."""
        self._signal_drain_s = signal_drain_s
        self._drain_began: float | None = None
        """Loop time of the SIGTERM that began the drain."""
        self._calls: set[asyncio.Task[Any]] = set()
        self._cut_calls: set[asyncio.Task[Any]] = set()
        self._streams: set[StreamCutoff] = set()

    # The request path: forwarded calls and relayed streams sign in and out.

    def call_started(self) -> asyncio.Task[Any] | None:
        """Note the current task as a forwarded call; raises `ShuttingDown` once stopped."""
        if self.stopped:
            raise ShuttingDown("The gateway is shutting down; retry on another instance.")
        task = asyncio.current_task()
        if task is not None:
            self._calls.add(task)
        return task

    def call_ended(self, task: asyncio.Task[Any] | None) -> None:
        if task is not None:
            self._calls.discard(task)

    def was_stopped(self, task: asyncio.Task[Any] | None) -> ShuttingDown | None:
        """For a call that was cancelled: the error to answer with if the stop cancelled it (the task's
        cancellation is then withdrawn), else None (the client left)."""
        if task is None or task not in self._cut_calls:
            return None
        self._cut_calls.discard(task)
        task.uncancel()
        return ShuttingDown("The gateway shut down before the answer came; retry on another instance.")

    def stream_started(self) -> StreamCutoff:
        cutoff = StreamCutoff()
        if self.stopped:
            cutoff.cut(ShuttingDown("The gateway is shutting down; retry on another instance."))
        else:
            self._streams.add(cutoff)
        return cutoff

    def stream_ended(self, cutoff: StreamCutoff) -> None:
        self._streams.discard(cutoff)

    # The server's side.

    def drain(self) -> None:
        self.draining = True

    def stop(self) -> None:
        """The drain deadline: end every stream and forwarded call still under way."""
        self.draining = self.stopped = True
        streams, calls = list(self._streams), list(self._calls)
        self._streams.clear()
        for cutoff in streams:
            cutoff.cut(ShuttingDown("The gateway is shutting down: the stream was ended at its drain deadline."))
        for task in calls:
            if not task.done():
                self._cut_calls.add(task)
                task.cancel()
        if streams or calls:
            _log.info("drain_deadline", streams_ended=len(streams), calls_ended=len(calls))

    def on_signal(self, sig: int, drain_s: float, exit_server: Callable[[], None]) -> None:
        """A stop signal, from a signal handler on the event loop's thread: SIGTERM drains for `drain_s`,
        then stops and calls `exit_server` (the server's own graceful exit); SIGINT, a second SIGTERM (past
        `REPEAT_WINDOW_S`) or no drain stop at once."""
        loop = asyncio.get_running_loop()
        if sig == signal.SIGTERM and drain_s > 0 and not self.draining:
            self.draining = True  # readiness fails from this instant
            self._drain_began = loop.time()
            _log.info("draining", seconds=drain_s)
            loop.call_soon_threadsafe(loop.call_later, drain_s, self._stop_then, exit_server)
        elif sig == signal.SIGTERM and self._drain_began is not None \
                and loop.time() - self._drain_began < REPEAT_WINDOW_S:
            _log.info("repeated_signal_ignored", signal="SIGTERM")
        else:
            loop.call_soon_threadsafe(self._stop_then, exit_server)

    def _stop_then(self, exit_server: Callable[[], None]) -> None:
        self.stop()
        exit_server()

    async def start(self) -> None:
        """Startup hook: when built with `signal_drain_s` (a server the gateway does not drive), put the drain
        in front of the server's SIGTERM and SIGINT handlers. Signals reach the main thread only."""
        drain_s = self._signal_drain_s
        if drain_s is None or threading.current_thread() is not threading.main_thread():
            return
        for sig in (signal.SIGTERM, signal.SIGINT):
            server_handler = signal.getsignal(sig)
            if callable(server_handler):
                signal.signal(sig, self._wrap(server_handler, drain_s))

    def _wrap(self, server_handler: SignalHandler, drain_s: float) -> SignalHandler:
        def handler(sig: int, frame: FrameType | None) -> None:
            self.on_signal(sig, drain_s, lambda: server_handler(sig, frame))

        return handler
