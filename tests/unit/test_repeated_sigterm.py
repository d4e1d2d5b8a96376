"""A SIGTERM that arrives twice: to a process group under `make run`, GNU make passes the signal on to its
child, which then gets it once from the group and once from make, together or a moment apart. That is one
stop (drain first), not an operator asking twice (stop at once), which a SIGTERM later than
`REPEAT_WINDOW_S` still is."""

from __future__ import annotations

import asyncio
import signal

from gateway.inference.lifecycle import REPEAT_WINDOW_S, Lifecycle


async def _after_signals(delays: list[float], drain_s: float) -> tuple[Lifecycle, list[str]]:
    """A lifecycle sent SIGTERM after each of `delays`, then given a moment to act."""
    lifecycle, exited = Lifecycle(), list[str]()
    for delay in delays:
        await asyncio.sleep(delay)
        lifecycle.on_signal(signal.SIGTERM, drain_s, lambda: exited.append("exit"))
    await asyncio.sleep(0.05)
    return lifecycle, exited


def test_a_sigterm_repeated_at_once_keeps_the_drain() -> None:
    lifecycle, exited = asyncio.run(_after_signals([0.0, 0.0], drain_s=30.0))
    assert lifecycle.draining and not lifecycle.stopped and exited == []


def test_a_later_sigterm_still_stops_at_once() -> None:
    lifecycle, exited = asyncio.run(_after_signals([0.0, REPEAT_WINDOW_S + 0.1], drain_s=30.0))
    assert lifecycle.stopped and exited == ["exit"]


def test_sigint_stops_at_once_during_the_drain() -> None:
    async def run() -> tuple[Lifecycle, list[str]]:
        lifecycle, exited = await _after_signals([0.0], drain_s=30.0)
        lifecycle.on_signal(signal.SIGINT, 30.0, lambda: exited.append("exit"))
        await asyncio.sleep(0.05)
        return lifecycle, exited

    lifecycle, exited = asyncio.run(run())
    assert lifecycle.stopped and exited == ["exit"]
