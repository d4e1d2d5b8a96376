"""The two ways Python clients drive load, for suites whose clients do more than one HTTP exchange per
request (streams, faults, disconnects): closed loop (N clients, each sending its next request when its
last one ended) and open loop (requests arriving on a schedule, whatever the answers' pace).

For plain requests against the fixed nginx upstream, wrk (closed loop, wrk.py) and the open-loop
generator in its own process (open_loop.py, latency from each request's due time) cost far less per
request; these drivers schedule whole client coroutines.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import TypeVar

Job = TypeVar("Job")


async def closed_loop(concurrency: int, jobs: Iterable[Job], one: Callable[[Job], Awaitable[None]]) -> None:
    """`concurrency` clients, each taking the next job of the shared `jobs` when its last one ended,
    until the jobs run out."""
    shared = iter(jobs)

    async def client() -> None:
        for job in shared:
            await one(job)

    await asyncio.gather(*(client() for _ in range(concurrency)))


def until_deadline(deadline: float) -> Iterator[int]:
    """Jobs (0, 1, ...) for as long as `time.monotonic()` is before `deadline`."""
    count = 0
    while time.monotonic() < deadline:
        yield count
        count += 1


@dataclass(slots=True)
class OpenLoopStats:
    sent: int = 0
    skipped: int = 0
    """Arrivals not sent because `max_in_flight` requests were already open (the target fell behind)."""
    max_lag_s: float = 0.0
    """How far behind its schedule the driver ever was."""
    in_flight: int = 0


async def open_loop(
    send: Callable[[], Awaitable[None]],
    stats: OpenLoopStats,
    *,
    gap_s: Callable[[], float],
    until: Callable[[int], bool],
    max_in_flight: int,
) -> None:
    """Start `send()` at each arrival, `gap_s()` after the last one (constant: evenly spaced; drawn from
    an exponential: Poisson arrivals), until `until(sent)` is true; then wait for the open ones."""
    loop = asyncio.get_running_loop()
    tasks: set[asyncio.Task[None]] = set()
    next_at = loop.time()

    def ended(task: asyncio.Task[None]) -> None:
        tasks.discard(task)
        stats.in_flight = len(tasks)

    while not until(stats.sent):
        next_at += gap_s()
        delay = next_at - loop.time()
        if delay > 0:
            await asyncio.sleep(delay)
        else:
            stats.max_lag_s = max(stats.max_lag_s, -delay)
        if len(tasks) >= max_in_flight:
            stats.skipped += 1
            continue
        task = asyncio.create_task(_awaited(send()))
        tasks.add(task)
        task.add_done_callback(ended)
        stats.sent += 1
        stats.in_flight = len(tasks)
    if tasks:
        await asyncio.gather(*tasks)
    stats.in_flight = 0


async def _awaited(pending: Awaitable[None]) -> None:
    await pending
