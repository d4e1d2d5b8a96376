"""The surfaces suite's client (aiohttp): one call of a surface, plain or streamed, checked to be a
whole answer of that surface; and a closed loop of such calls, with what each stream's content events
looked like (their arrival times)."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import aiohttp

from benchmarks.harness import gateway
from benchmarks.load import drivers, sse
from benchmarks.surfaces.calls import FAILURE_EVENTS, Surface, answer_problem, event_type

TIMEOUT_S = 60.0
HEADERS = {**gateway.AUTH_HEADERS, "Content-Type": "application/json"}


class CallFailed(RuntimeError):
    """A call did not end as a whole answer of its surface."""


async def _read_events(surface: Surface, response: aiohttp.ClientResponse) -> list[float]:
    """The arrival times of the stream's content events, once it ended well; CallFailed otherwise."""
    times: list[float] = []
    async for payload in sse.payloads(response.content):
        kind = event_type(surface, payload)
        if kind == surface.content_event:
            times.append(time.perf_counter())
        elif kind in surface.end_events:
            return times
        elif kind in FAILURE_EVENTS:
            raise CallFailed(f"{kind} event: {payload[:300]!r}")
    raise CallFailed(f"the stream ended without {' or '.join(surface.end_events)}")


async def call_once(
    session: aiohttp.ClientSession, base_url: str, surface: Surface, stream: bool, body: bytes
) -> list[float]:
    """One call; a stream's content event times ([] for a plain call). Raises CallFailed."""
    async with session.post(base_url + surface.path, data=body, headers=HEADERS) as response:
        if response.status != 200:
            raise CallFailed(f"HTTP {response.status}: {(await response.text())[:300]}")
        if stream:
            return await _read_events(surface, response)
        problem = answer_problem(surface, sse.decode(await response.read()))
    if problem:
        raise CallFailed(f"{surface.key}: {problem}")
    return []


@dataclass(slots=True)
class Calls:
    """What a closed loop of calls saw."""

    streams: list[tuple[float, list[float]]] = field(default_factory=list)
    """(request start, content event times) of each call that ended well."""
    errors: list[str] = field(default_factory=list)


async def closed_loop(
    session: aiohttp.ClientSession, base_url: str, surface: Surface, stream: bool, concurrency: int, requests: int
) -> Calls:
    """`concurrency` clients sharing `requests` calls, each sending its next when its last one ended."""
    body = surface.encoded(stream)
    seen = Calls()

    async def one(_: int) -> None:
        started = time.perf_counter()
        try:
            seen.streams.append((started, await call_once(session, base_url, surface, stream, body)))
        except (CallFailed, aiohttp.ClientError, TimeoutError, ValueError) as exc:
            seen.errors.append(f"{type(exc).__name__}: {exc}")

    await drivers.closed_loop(concurrency, range(requests), one)
    return seen


def new_session() -> aiohttp.ClientSession:
    return aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(limit=0), timeout=aiohttp.ClientTimeout(total=TIMEOUT_S)
    )
