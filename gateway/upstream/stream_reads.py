"""The reads of one relayed worker stream, each bounded by the idle timeout and the request's deadline,
and ended early by the gateway's cutoff (its drain deadline). Shared by the SSE, NDJSON and raw relays.

One timer watches the whole stream, not one per read: a read only notes when it expires (loop time)
and that it is under way; the timer, when it fires, either finds the read under way past its expiry
and cancels it (as `asyncio.timeout` would), or is set again for the read under way's expiry. Expiries
never move earlier (each is `min(start + idle, deadline)`, with later starts), so a timer set for an
earlier read always fires in time for the current one. At hundreds of streams a chunk every 20 ms, an
`asyncio.timeout` per read (a context object, a timer put on the loop's heap and taken off again, the
current task looked up) was a fair share of a relayed chunk's CPU (benchmarks/streaming_scale).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Protocol

import aiohttp

from gateway.errors import GatewayError, UpstreamTimeout, WorkerUnreachable


class Expirable(Protocol):
    """What a cutoff ends: the reads of a stream (`StreamReads`), or a pushed relay (`sse_push`)."""

    def expire(self) -> None:
        """End the stream now: it ends with the cutoff's error."""


class StreamCutoff:
    """Lets the gateway end one relayed stream early (the drain deadline): after `cut`, the read under way
    and every later one raise `error`, which the relay turns into an error event and `[DONE]`."""

    __slots__ = ("error", "reads")

    def __init__(self) -> None:
        self.error: GatewayError | None = None
        self.reads: Expirable | None = None
        """The reads of the stream (set by `StreamReads` or a pushed relay), which `cut` ends at once."""

    def cut(self, error: GatewayError) -> None:
        self.error = error
        if self.reads is not None:
            self.reads.expire()


class StreamReads:
    """Bounded reads of one worker stream (one instance per stream, read by one task: the one sending the
    reply, as every relay is); `close` when the stream is over (its timer is dropped)."""

    __slots__ = ("_by_deadline", "_cancelled", "_cutoff", "_deadline", "_expiry", "_idle", "_loop", "_reading",
                 "_task", "_timer", "_worker")

    def __init__(self, worker_name: str, idle: float, deadline: float, cutoff: StreamCutoff | None) -> None:
        self._worker, self._idle, self._deadline, self._cutoff = worker_name, idle, deadline, cutoff
        self._loop = asyncio.get_running_loop()
        self._task: asyncio.Task[object] | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._expiry = 0.0
        self._by_deadline = False
        """The read under way is bounded by the deadline, not the idle timeout (what its timeout says)."""
        self._reading = False
        self._cancelled = False
        """The read under way was cancelled here (not by whoever else may cancel the task)."""
        if cutoff is not None:
            cutoff.reads = self

    async def read(self, read: Callable[[], Awaitable[bytes]]) -> bytes:
        """One read (`read()`, e.g. `content.readany`); aiohttp's errors and the timeouts become ours."""
        cutoff = self._cutoff
        if cutoff is not None and cutoff.error is not None:
            raise cutoff.error
        now = self._loop.time()
        left = self._deadline - now
        self._by_deadline = left < self._idle
        self._expiry = now + (left if self._by_deadline else self._idle)
        if self._task is None:  # the task a timeout cancels: the one that reads the stream, start to end
            self._task = asyncio.current_task()
        if self._timer is None:
            self._timer = self._loop.call_at(self._expiry, self._check)
        self._reading = True
        try:
            return await read()
        except asyncio.CancelledError:
            if not self._cancelled or self._uncancel():
                raise
            raise self._timeout() from None
        except (aiohttp.ClientError, OSError) as exc:
            raise WorkerUnreachable(f"worker {self._worker!r} broke off the stream ({type(exc).__name__})") from None
        finally:
            self._reading = False

    def expire(self) -> None:
        """End the read under way now (the cutoff's), if one is; a later read sees the cutoff's error."""
        if self._reading and not self._cancelled and self._task is not None:
            self._cancelled = True
            self._task.cancel()

    def close(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _check(self) -> None:
        self._timer = None
        if not self._reading:
            return  # the next read sets the timer again
        if self._loop.time() < self._expiry:
            self._timer = self._loop.call_at(self._expiry, self._check)
        else:
            self.expire()

    def _uncancel(self) -> bool:
        """Take back this cancellation; whether the task is still being cancelled by someone else."""
        self._cancelled = False
        assert self._task is not None
        return self._task.uncancel() > 0

    def _timeout(self) -> GatewayError:
        cutoff = self._cutoff
        if cutoff is not None and cutoff.error is not None:
            return cutoff.error
        if self._by_deadline:
            return UpstreamTimeout(f"worker {self._worker!r} did not finish the stream within the request deadline")
        return UpstreamTimeout(f"worker {self._worker!r} sent nothing for {self._idle:g} s mid-stream")

