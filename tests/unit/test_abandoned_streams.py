"""A streamed reply dropped before its first chunk was asked for: an async generator never started runs
no `finally`, so its relay's end (the worker's in-flight count, the limits' reservation, the drain's
count of open streams) never ran. Every way out now abandons such a reply once, and leaves a stream
that did start to end itself. Unit edge cases: the ASGI `send` here is a plain function."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest

from gateway.http.replies import send_reply, streamed_response
from gateway.inference.attempt import Reply, abandoning
from gateway.upstream.sse_relay import StreamOutcome


class _Ends:
    """What a relay's end saw: how often its `finally` ran, and how often the reply was abandoned."""

    def __init__(self) -> None:
        self.finally_ran = 0
        self.abandoned = 0

    async def stream(self) -> AsyncIterator[bytes]:
        try:
            yield b"data: 1\n\n"
            yield b"data: 2\n\n"
        finally:
            self.finally_ran += 1

    def reply(self) -> Reply:
        def abandon() -> None:
            self.abandoned += 1

        return Reply(headers={}, stream=self.stream(), abandon=abandon)


async def _ready(reply: Reply) -> Reply:
    return reply


def _send_failing_at(kind_and_more: tuple[str, bool]) -> Any:
    async def send(message: dict[str, Any]) -> None:
        if (message["type"], message.get("more_body", False)) == kind_and_more:
            raise OSError("client gone")

    return send


def test_a_client_gone_before_the_stream_began_abandons_it() -> None:
    ends = _Ends()
    with pytest.raises(OSError):
        asyncio.run(send_reply(_ready(ends.reply()), _send_failing_at(("http.response.start", False))))
    assert (ends.abandoned, ends.finally_ran) == (1, 0)


def test_a_stream_that_began_ends_itself() -> None:
    ends = _Ends()
    with pytest.raises(OSError):
        asyncio.run(send_reply(_ready(ends.reply()), _send_failing_at(("http.response.body", True))))
    assert (ends.abandoned, ends.finally_ran) == (0, 1)


def test_litestar_abandons_only_a_stream_it_never_read() -> None:
    async def run(read: bool) -> _Ends:
        ends = _Ends()
        response = streamed_response(ends.reply(), "text/event-stream", {})
        if read:
            async for _chunk in response.iterator:  # type: ignore[union-attr]
                pass
        assert response.background is not None
        await response.background()
        return ends

    never = asyncio.run(run(read=False))
    assert (never.abandoned, never.finally_ran) == (1, 0)
    read = asyncio.run(run(read=True))
    assert (read.abandoned, read.finally_ran) == (0, 1)


class _Connection:
    closed = 0

    def close(self) -> None:
        self.closed += 1


def test_abandoning_closes_the_worker_connection_and_ends_as_a_client_that_left() -> None:
    connection, outcomes = _Connection(), list[StreamOutcome]()
    abandon = abandoning(connection, outcomes.append)
    abandon()
    assert connection.closed == 1
    assert [(o.client_disconnected, o.completed, o.chunks) for o in outcomes] == [(True, False, 0)]
