"""The bounded reads of a relayed stream (`StreamReads`): one timer per stream, yet each read bounded by
the idle timeout and the deadline, ended by the cutoff, and a cancellation from elsewhere left alone."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import pytest

from gateway.errors import ShuttingDown, UpstreamTimeout
from gateway.upstream.stream_reads import StreamCutoff, StreamReads


def _after(delay: float, data: bytes = b"x") -> Callable[[], Awaitable[bytes]]:
    async def read() -> bytes:
        await asyncio.sleep(delay)
        return data

    return read


def _reads(idle: float, deadline_in: float, cutoff: StreamCutoff | None = None) -> StreamReads:
    return StreamReads("w-1", idle, asyncio.get_running_loop().time() + deadline_in, cutoff)


async def test_reads_that_come_in_time_never_time_out_though_the_stream_lasts_longer_than_the_idle_timeout() -> None:
    reads = _reads(0.05, 10)
    try:
        got = [await reads.read(_after(0.02, bytes([i]))) for i in range(8)]  # 0.16 s in all
    finally:
        reads.close()
    assert got == [bytes([i]) for i in range(8)]


async def test_a_read_that_waits_past_the_idle_timeout_is_a_timeout() -> None:
    reads = _reads(0.05, 10)
    with pytest.raises(UpstreamTimeout, match=r"sent nothing for 0\.05 s mid-stream"):
        await reads.read(_after(5))
    reads.close()


async def test_a_read_past_the_deadline_says_so() -> None:
    reads = _reads(5, 0.05)
    await reads.read(_after(0.01))
    with pytest.raises(UpstreamTimeout, match="did not finish the stream within the request deadline"):
        await reads.read(_after(5))
    reads.close()


async def test_time_between_reads_does_not_count_against_a_read() -> None:
    reads = _reads(0.05, 10)
    await reads.read(_after(0.01))
    await asyncio.sleep(0.15)  # the relay writing to a slow client: no read under way
    assert await reads.read(_after(0.01)) == b"x"
    reads.close()


async def test_the_cutoff_ends_the_read_under_way_and_every_later_one() -> None:
    cutoff = StreamCutoff()
    reads = _reads(5, 10, cutoff)
    error = ShuttingDown("The gateway is shutting down.")
    asyncio.get_running_loop().call_later(0.02, cutoff.cut, error)
    with pytest.raises(ShuttingDown):
        await reads.read(_after(5))
    with pytest.raises(ShuttingDown):
        await reads.read(_after(0))
    reads.close()


async def test_a_cancellation_from_elsewhere_stays_a_cancellation() -> None:
    async def stream() -> None:
        reads = _reads(0.05, 10)
        try:
            await reads.read(_after(5))
        finally:
            reads.close()

    task = asyncio.create_task(stream())
    await asyncio.sleep(0.01)
    task.cancel()  # the client left
    with pytest.raises(asyncio.CancelledError):
        await task
    assert task.cancelled()
