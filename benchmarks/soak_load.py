"""The soak's clients: what each request is, what the client saw, and the closed- and open-loop drivers.

Normal requests go to the model `soak`: streams and not, some deterministic (`temperature: 0`, one of a
few prompts, so the Redis cache answers them), some sending their own `x-request-id`. A share of the
requests (`fault_share`) is a fault, chosen evenly among `FAULT_KINDS`: a worker error, a stream that
breaks, stalls or fails midway, and clients that leave mid-stream, before the first byte, or during a
non-streaming call. The client's outcome of each request is counted by status class the way the
gateway's metrics count it (a client that left is 499), so the two can be compared at the end.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import time
from array import array
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import aiohttp

from benchmarks.soak_fleet import AUTH_HEADERS, MODEL

DETERMINISTIC_PROMPTS = tuple(f"Give me tip number {n} for a calmer morning." for n in range(16))
WORDS = ("goal", "habit", "focus", "sleep", "walk", "plan", "breath", "water", "journal", "review", "coach")
MAX_TOKENS = 32
"""Above the simulators' longest natural reply (24 tokens): no answer is cut, so deterministic ones are cached."""
LEAVE_AFTER_S = 0.25
"""Clients that leave before the first byte do so this long after sending."""
MAX_PROBLEMS = 20


@dataclass(frozen=True, slots=True)
class Kind:
    """One kind of request: the model, streamed or not, and whether the client leaves early."""

    name: str
    model: str
    stream: bool
    leave: str | None = None
    """`mid-stream` (after the first content chunk) or `before-first-byte` (after LEAVE_AFTER_S)."""

    @property
    def normal(self) -> bool:
        return self.model == MODEL


FAULT_KINDS = (
    Kind("error-500", "error-500", stream=False),
    Kind("error-500-stream", "error-500", stream=True),
    Kind("drop-mid-stream", "drop-mid-stream", stream=True),
    Kind("stall-after-3", "stall-after-3", stream=True),
    Kind("mid-stream-error", "mid-stream-error", stream=True),
    Kind("leave-mid-stream", "slow", stream=True, leave="mid-stream"),
    Kind("leave-before-first-byte", "never-answer", stream=True, leave="before-first-byte"),
    Kind("leave-non-streaming", "slow", stream=False, leave="before-first-byte"),
)
NORMAL_STREAM = Kind("stream", MODEL, stream=True)
NORMAL_JSON = Kind("json", MODEL, stream=False)


@dataclass(frozen=True, slots=True)
class Mix:
    stream_share: float = 0.5
    deterministic_share: float = 0.2
    fault_share: float = 0.01
    own_request_id_share: float = 0.1


def observed_class(status: int | None, left: bool) -> str:
    """The status class the client saw, as the gateway's metrics name it (`2xx`, `499`, ...)."""
    if left:
        return "499"
    if status is None:
        return "transport"
    return f"{status // 100}xx"


@dataclass(slots=True)
class Tally:
    """What the clients saw, counted as it happens (bounded memory: no per-request objects kept)."""

    by_class: Counter[str] = field(default_factory=Counter)
    by_kind: dict[str, Counter[str]] = field(default_factory=dict)
    responses: int = 0
    """Responses whose headers arrived."""
    missing_request_id: int = 0
    wrong_request_id: int = 0
    """Responses to a request that sent its own `x-request-id` and got another one back."""
    unexpected_normal: int = 0
    """Normal requests that did not end 200 with a complete answer..."""
    unexpected_ids: list[str] = field(default_factory=list)
    """...and the `x-request-id` of the first few, to find their lines in the gateway's log."""
    silent_truncations: int = 0
    """Streams with status 200 that ended with neither `[DONE]` nor an error event."""
    malformed_errors: int = 0
    """Error answers (status ≥ 400, or an error event) that were not the OpenAI error object."""
    fault_requests: dict[str, tuple[str, str]] = field(default_factory=dict)
    """Request id of each fault request (they all send their own) -> (kind, observed class), to find the
    gateway's own line for it in the request log."""
    cache: Counter[str] = field(default_factory=Counter)
    """`x-gateway-cache` of the responses (hit, miss, coalesced, bypass; `-` when absent)."""
    problems: list[str] = field(default_factory=list)
    done_at: array[float] = field(default_factory=lambda: array("d"))
    """Monotonic end time of each normal request that ended 200 and complete..."""
    latency_s: array[float] = field(default_factory=lambda: array("d"))
    """...and its latency (request sent to the last byte)."""

    @property
    def completed(self) -> int:
        return sum(self.by_class.values())

    def note(self, problem: str) -> None:
        if len(self.problems) < MAX_PROBLEMS:
            self.problems.append(problem)

    def count(self, kind: Kind, label: str, klass: str, request_id: str | None) -> None:
        self.by_class[klass] += 1
        self.by_kind.setdefault(kind.name, Counter())[label] += 1
        if not kind.normal and request_id is not None:
            self.fault_requests[request_id] = (kind.name, klass)


def _error_of(payload: bytes) -> dict[str, Any] | None:
    """The OpenAI error object in `payload` (`{"error": {"message", "type", "param", "code"}}`), or None."""
    try:
        body = json.loads(payload)
    except ValueError:
        return None
    error = body.get("error") if isinstance(body, dict) else None
    if isinstance(error, dict) and error.keys() >= {"message", "type", "param", "code"}:
        return error
    return None


def _has_content(payload: bytes) -> bool:
    try:
        chunk = json.loads(payload)
    except ValueError:
        return False
    choices = chunk.get("choices") if isinstance(chunk, dict) else None
    if not isinstance(choices, list) or not choices or not isinstance(choices[0], dict):
        return False
    return bool((choices[0].get("delta") or {}).get("content"))


class LoadClient:
    """Sends the soak's requests through one aiohttp session and counts what it sees in a `Tally`."""

    def __init__(self, base_url: str, mix: Mix, rng: random.Random) -> None:
        self.url = base_url + "/v1/chat/completions"
        self.mix = mix
        self.rng = rng
        self._session: aiohttp.ClientSession | None = None
        self._sequence = 0

    async def __aenter__(self) -> LoadClient:
        self._open()
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._session is not None:
            await self._session.close()

    def _open(self) -> None:
        timeout = aiohttp.ClientTimeout(total=60, sock_connect=10, sock_read=30)
        self._session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0), timeout=timeout)

    async def drop_connections(self) -> None:
        """Close the kept-alive connections to the gateway (before an idle sample of its file descriptors)."""
        if self._session is not None:
            await self._session.close()
        self._open()

    def pick(self, *, faults: bool = True) -> Kind:
        if faults and self.rng.random() < self.mix.fault_share:
            return self.rng.choice(FAULT_KINDS)
        return NORMAL_STREAM if self.rng.random() < self.mix.stream_share else NORMAL_JSON

    def _body(self, kind: Kind) -> dict[str, Any]:
        if kind.normal and self.rng.random() < self.mix.deterministic_share:
            content, temperature = self.rng.choice(DETERMINISTIC_PROMPTS), 0.0
        else:
            words = " ".join(self.rng.choices(WORDS, k=8))
            content, temperature = f"{words} #{self._sequence}", 0.7
        body: dict[str, Any] = {
            "model": kind.model,
            "messages": [{"role": "user", "content": content}],
            "max_tokens": MAX_TOKENS,
            "temperature": temperature,
        }
        if kind.stream:
            body["stream"] = True
            if self.rng.random() < 0.5:
                body["stream_options"] = {"include_usage": True}
        return body

    async def send(self, kind: Kind, tally: Tally) -> None:
        """One request of `kind`, its outcome counted in `tally` (never raises but on cancellation)."""
        self._sequence += 1
        headers = dict(AUTH_HEADERS)
        own_id = None
        if not kind.normal or self.rng.random() < self.mix.own_request_id_share:
            own_id = f"soak-{kind.name}-{self._sequence}"
            headers["x-request-id"] = own_id
        body = self._body(kind)
        started = time.monotonic()
        if kind.leave == "before-first-byte":
            task = asyncio.ensure_future(self._exchange(kind, body, headers, own_id, tally, started))
            await asyncio.wait([task], timeout=LEAVE_AFTER_S)
            if not task.done():
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
                tally.count(kind, "left before the first byte", "499", own_id)
            return
        await self._exchange(kind, body, headers, own_id, tally, started)

    async def _exchange(
        self,
        kind: Kind,
        body: dict[str, Any],
        headers: dict[str, str],
        own_id: str | None,
        tally: Tally,
        started: float,
    ) -> None:
        assert self._session is not None
        answered_id = None
        try:
            async with self._session.post(self.url, json=body, headers=headers) as response:
                answered_id = self._check_headers(response, own_id, tally)
                if kind.stream and response.status == 200:
                    label, klass, complete = await self._read_stream(kind, response, tally)
                else:
                    payload = await response.read()
                    label, klass = str(response.status), observed_class(response.status, left=False)
                    complete = response.status == 200 and b'"choices"' in payload
                    if response.status >= 400:
                        error = _error_of(payload)
                        if error is None:
                            tally.malformed_errors += 1
                            tally.note(
                                f"{kind.name}: HTTP {response.status} body is not an error object: {payload[:200]!r}"
                            )
                        else:
                            label += f" {error['code']}"
        except (aiohttp.ClientError, TimeoutError) as exc:
            label, klass, complete = f"transport: {type(exc).__name__}", "transport", False
            tally.note(f"{kind.name}: {type(exc).__name__}: {exc}")
        tally.count(kind, label, klass, own_id)
        if kind.normal:
            if complete:
                tally.done_at.append(time.monotonic())
                tally.latency_s.append(time.monotonic() - started)
            else:
                tally.unexpected_normal += 1
                tally.note(f"{kind.name}: ended {label} (x-request-id {answered_id})")
                if answered_id is not None and len(tally.unexpected_ids) < MAX_PROBLEMS:
                    tally.unexpected_ids.append(answered_id)

    @staticmethod
    def _check_headers(response: aiohttp.ClientResponse, own_id: str | None, tally: Tally) -> str | None:
        """Count the response's `x-request-id` (missing, or not the one sent); return it."""
        tally.responses += 1
        tally.cache[response.headers.get("x-gateway-cache", "-")] += 1
        got = response.headers.get("x-request-id")
        if not got:
            tally.missing_request_id += 1
            tally.note(f"HTTP {response.status} without x-request-id")
        elif own_id is not None and got != own_id:
            tally.wrong_request_id += 1
            tally.note(f"sent x-request-id {own_id}, got {got}")
        return got

    @staticmethod
    async def _read_stream(kind: Kind, response: aiohttp.ClientResponse, tally: Tally) -> tuple[str, str, bool]:
        """Read an SSE answer; (label, observed class, complete without an error)."""
        error_event = done = False
        async for raw in response.content:
            line = raw.strip()
            if not line.startswith(b"data:"):
                continue
            payload = line[5:].strip()
            if payload == b"[DONE]":
                done = True
                break
            if payload.startswith(b'{"error"'):
                error_event = True
                if _error_of(payload) is None:
                    tally.malformed_errors += 1
                    tally.note(f"{kind.name}: error event is not an error object: {payload[:200]!r}")
            elif kind.leave == "mid-stream" and _has_content(payload):
                response.close()  # leave after the first content chunk
                return "200, left mid-stream", "499", False
        if not done and not error_event:
            tally.silent_truncations += 1
            tally.note(f"{kind.name}: stream ended without [DONE] or an error event")
        label = "200" + (" + error event" if error_event else "") + ("" if done else " without [DONE]")
        return label, "2xx", done and not error_event


async def closed_loop(client: LoadClient, concurrency: int, seconds: float, tally: Tally) -> float:
    """`concurrency` clients sending normal requests back to back for `seconds`: completed per second."""
    stop_at = time.monotonic() + seconds

    async def one_client() -> None:
        while time.monotonic() < stop_at:
            await client.send(client.pick(faults=False), tally)

    started = time.monotonic()
    await asyncio.gather(*(one_client() for _ in range(concurrency)))
    return tally.completed / (time.monotonic() - started)


@dataclass(slots=True)
class OpenLoopStats:
    sent: int = 0
    skipped: int = 0
    """Arrivals not sent because `max_in_flight` requests were already open (the gateway fell behind)."""
    max_lag_s: float = 0.0
    """How far behind its schedule the generator ever was."""
    in_flight: int = 0


async def open_loop(
    client: LoadClient,
    rate: float,
    tally: Tally,
    stats: OpenLoopStats,
    *,
    until: Callable[[int], bool],
    poisson: bool,
    max_in_flight: int,
) -> None:
    """Requests arriving at `rate` per second (Poisson or evenly spaced), whatever the answers' pace,
    until `until(sent)` is true; then waits for the open ones."""
    loop = asyncio.get_running_loop()
    tasks: set[asyncio.Task[None]] = set()
    next_at = loop.time()

    def ended(task: asyncio.Task[None]) -> None:
        tasks.discard(task)
        stats.in_flight = len(tasks)

    while not until(stats.sent):
        next_at += client.rng.expovariate(rate) if poisson else 1.0 / rate
        delay = next_at - loop.time()
        if delay > 0:
            await asyncio.sleep(delay)
        else:
            stats.max_lag_s = max(stats.max_lag_s, -delay)
        if len(tasks) >= max_in_flight:
            stats.skipped += 1
            continue
        task = asyncio.create_task(client.send(client.pick(), tally))
        tasks.add(task)
        task.add_done_callback(ended)
        stats.sent += 1
        stats.in_flight = len(tasks)
    if tasks:
        await asyncio.gather(*tasks)
    stats.in_flight = 0
