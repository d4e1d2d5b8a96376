"""The soak's clients: what each request is and what the client saw; the closed- and open-loop drivers
that send them are benchmarks/load/drivers.py.

Normal requests go to the model `soak`: streams and not, some deterministic (`temperature: 0`, one of a
few prompts, so the Redis cache answers them), some sending their own `x-request-id`. A share of the
requests (`long_stream_share`) are long streams: the model `soak-long`, whose worker paces a reply of
thousands of tokens over tens of seconds (`fleet.py`), so dozens are open at any time. A share of the
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
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import aiohttp

from benchmarks.load import drivers, sse
from benchmarks.soak.fleet import AUTH_HEADERS, LONG_MODEL, MODEL
from benchmarks.soak.outcomes import MAX_PROBLEMS, Tally, observed_class

DETERMINISTIC_PROMPTS = tuple(f"Give me tip number {n} for a calmer morning." for n in range(16))
WORDS = ("goal", "habit", "focus", "sleep", "walk", "plan", "breath", "water", "journal", "review", "coach")
MAX_TOKENS = 32
"""Above the simulators' longest natural reply (24 tokens): no answer is cut, so deterministic ones are cached."""
LEAVE_AFTER_S = 0.25
"""Clients that leave before the first byte do so this long after sending."""
TIMEOUT = aiohttp.ClientTimeout(total=60, sock_connect=10, sock_read=30)
LONG_TIMEOUT = aiohttp.ClientTimeout(total=None, sock_connect=10, sock_read=30)
"""A long stream may last minutes; a read that waits 30 s is still a failure."""


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
        """A normal short request: the ones whose latency the p99 figures are made of."""
        return self.model == MODEL

    @property
    def long(self) -> bool:
        return self.model == LONG_MODEL

    @property
    def fault(self) -> bool:
        return self.model not in (MODEL, LONG_MODEL)


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
LONG_STREAM = Kind("long-stream", LONG_MODEL, stream=True)


@dataclass(frozen=True, slots=True)
class Mix:
    stream_share: float = 0.5
    deterministic_share: float = 0.2
    fault_share: float = 0.01
    own_request_id_share: float = 0.1
    long_stream_share: float = 0.0
    long_max_tokens: int = MAX_TOKENS
    """The long worker's longest reply (`fleet.long_reply_tokens`): a long stream ends when its reply does."""


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
        self._session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0), timeout=TIMEOUT)

    async def drop_connections(self) -> None:
        """Close the kept-alive connections to the gateway (before an idle sample of its file descriptors)."""
        if self._session is not None:
            await self._session.close()
        self._open()

    def pick(self, *, normal_only: bool = False) -> Kind:
        """The next request's kind; `normal_only`: no fault and no long stream (the capacity burst)."""
        if not normal_only:
            if self.rng.random() < self.mix.fault_share:
                return self.rng.choice(FAULT_KINDS)
            if self.rng.random() < self.mix.long_stream_share:
                return LONG_STREAM
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
            "max_tokens": self.mix.long_max_tokens if kind.long else MAX_TOKENS,
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
        if kind.fault or self.rng.random() < self.mix.own_request_id_share:
            own_id = f"soak-{kind.name}-{self._sequence}"
            headers["x-request-id"] = own_id
        body = self._body(kind)
        started, sent_at = time.monotonic(), time.time()
        if kind.leave == "before-first-byte":
            task = asyncio.ensure_future(self._exchange(kind, body, headers, own_id, tally, started))
            await asyncio.wait([task], timeout=LEAVE_AFTER_S)
            if not task.done():
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
                tally.count(kind, "left before the first byte", "499", own_id, sent_at)
            return
        if not kind.long:
            await self._exchange(kind, body, headers, own_id, tally, started)
            return
        tally.long_open += 1
        tally.long_open_max = max(tally.long_open_max, tally.long_open)
        try:
            await self._exchange(kind, body, headers, own_id, tally, started)
        finally:
            tally.long_open -= 1

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
            timeout = LONG_TIMEOUT if kind.long else TIMEOUT
            async with self._session.post(self.url, json=body, headers=headers, timeout=timeout) as response:
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
        tally.count(kind, label, klass, own_id, time.time() - (time.monotonic() - started))
        if kind.long and complete:
            tally.long_completed += 1
            tally.long_seconds += time.monotonic() - started
        elif kind.normal and complete:
            tally.done_at.append(time.monotonic())
            tally.latency_s.append(time.monotonic() - started)
        elif kind.normal or kind.long:
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
        async for payload in sse.payloads(response.content):
            if payload == sse.DONE:
                done = True
                break
            if payload.startswith(b'{"error"'):
                error_event = True
                if _error_of(payload) is None:
                    tally.malformed_errors += 1
                    tally.note(f"{kind.name}: error event is not an error object: {payload[:200]!r}")
            elif kind.leave == "mid-stream" and sse.has_content(payload):
                response.close()  # leave after the first content chunk
                return "200, left mid-stream", "499", False
        if not done and not error_event:
            tally.silent_truncations += 1
            tally.note(f"{kind.name}: stream ended without [DONE] or an error event")
        label = "200" + (" + error event" if error_event else "") + ("" if done else " without [DONE]")
        return label, "2xx", done and not error_event


async def closed_loop(client: LoadClient, concurrency: int, seconds: float, tally: Tally) -> float:
    """`concurrency` clients sending normal requests back to back for `seconds`: completed per second."""

    async def one(_: int) -> None:
        await client.send(client.pick(normal_only=True), tally)

    started = time.monotonic()
    await drivers.closed_loop(concurrency, drivers.until_deadline(started + seconds), one)
    return tally.completed / (time.monotonic() - started)


async def open_loop(
    client: LoadClient,
    rate: float,
    tally: Tally,
    stats: drivers.OpenLoopStats,
    *,
    until: Callable[[int], bool],
    poisson: bool,
    max_in_flight: int,
) -> None:
    """The soak's requests arriving at `rate` per second (Poisson or evenly spaced), whatever the answers'
    pace, until `until(sent)` is true; then waits for the open ones."""
    await drivers.open_loop(
        lambda: client.send(client.pick(), tally),
        stats,
        gap_s=(lambda: client.rng.expovariate(rate)) if poisson else (lambda: 1.0 / rate),
        until=until,
        max_in_flight=max_in_flight,
    )
