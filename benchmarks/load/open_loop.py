"""An open-loop load generator: requests at a fixed rate, latency counted from when each was due.

    python -m benchmarks.load.open_loop URL --rate 500 [--duration 8] [--warmup 1]
        [--workload plain|cache-miss|cache-hit] [--header 'Name: value']...

Request i is due at t0 + i / rate whatever happened before, and its latency runs from that due time to
the last byte of its answer, so a stall counts against every request it delayed (no coordinated
omission, as in wrk2; why: benchmarks/overhead/README.md). Each request goes out on an idle keep-alive
connection, or a new one (up to --connections; then it waits, and the wait counts). What the generator
adds itself is measured: `send_lag` (how late requests left against their due time) and `service`
(latency from the actual send). Prints one `OPEN_LOOP_JSON {...}` line (open_loop_process.py reads it).
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import contextlib
import json
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import cast
from urllib.parse import urlsplit

import httptools

from benchmarks.load import workloads

MARKER = "OPEN_LOOP_JSON "
PERCENTILES = (50.0, 75.0, 90.0, 95.0, 99.0, 99.9, 100.0)
ERROR_KINDS = ("connect", "closed", "non_2xx", "timeout")


@dataclass(slots=True)
class _Request:
    index: int
    due: float
    data: bytes
    sent: float = 0.0
    measured: bool = True


class _Connection(asyncio.Protocol):
    """One keep-alive HTTP/1.1 connection carrying one request at a time."""

    def __init__(self, generator: _Generator) -> None:
        self.generator = generator
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpResponseParser(self)
        self.current: _Request | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's are not asyncio.Transport subclasses
        self.generator.connections.add(self)

    def send(self, request: _Request) -> None:
        assert self.transport is not None
        self.current = request
        request.sent = time.perf_counter()
        self.transport.write(request.data)

    def data_received(self, data: bytes) -> None:
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError:
            self._fail("closed")
            if self.transport is not None:
                self.transport.close()

    def on_message_complete(self) -> None:
        request, self.current = self.current, None
        if request is not None:
            self.generator.answered(request, self.parser.get_status_code(), self)

    def connection_lost(self, exc: Exception | None) -> None:
        self._fail("closed")
        self.generator.lost(self)

    def _fail(self, kind: str) -> None:
        request, self.current = self.current, None
        if request is not None:
            self.generator.failed(request, kind)


@dataclass(slots=True)
class _Tally:
    latency_s: list[float] = field(default_factory=list)
    service_s: list[float] = field(default_factory=list)
    send_lag_s: list[float] = field(default_factory=list)
    errors: dict[str, int] = field(default_factory=lambda: dict.fromkeys(ERROR_KINDS, 0))
    completed: int = 0


class _Generator:
    def __init__(self, host: str, port: int, max_connections: int) -> None:
        self.loop = asyncio.get_running_loop()
        self.host, self.port, self.max_connections = host, port, max_connections
        self.idle: list[_Connection] = []
        self.connections: set[_Connection] = set()
        self.waiting: collections.deque[_Request] = collections.deque()
        self.open = 0
        self.opened = 0
        self.in_flight = 0
        self.max_in_flight = 0
        self.tally = _Tally()
        self.done = asyncio.Event()
        self.dispatching = True
        self.outstanding = 0
        self.measured_outstanding = 0

    def dispatch(self, request: _Request) -> None:
        self.outstanding += 1
        self.measured_outstanding += request.measured
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        if self.idle:
            self.idle.pop().send(request)
            return
        self.waiting.append(request)
        if self.open < self.max_connections:
            self.open += 1
            self.opened += 1
            self.loop.create_task(self._connect())

    async def _connect(self) -> None:
        try:
            _, connection = await self.loop.create_connection(lambda: _Connection(self), self.host, self.port)
        except OSError:
            self.open -= 1
            if self.waiting:
                self.failed(self.waiting.popleft(), "connect")
            return
        self.ready(connection)

    def ready(self, connection: _Connection) -> None:
        if self.waiting:
            connection.send(self.waiting.popleft())
        else:
            self.idle.append(connection)

    def answered(self, request: _Request, status: int, connection: _Connection) -> None:
        now = time.perf_counter()
        if request.measured:
            if 200 <= status < 300:
                self.tally.completed += 1
                self.tally.latency_s.append(now - request.due)
                self.tally.service_s.append(now - request.sent)
                self.tally.send_lag_s.append(request.sent - request.due)
            else:
                self.tally.errors["non_2xx"] += 1
        self._finished(request)
        self.ready(connection)

    def failed(self, request: _Request, kind: str) -> None:
        if request.measured:
            self.tally.errors[kind] += 1
        self._finished(request)

    def lost(self, connection: _Connection) -> None:
        self.open -= 1
        self.connections.discard(connection)
        with contextlib.suppress(ValueError):
            self.idle.remove(connection)

    def _finished(self, request: _Request) -> None:
        self.in_flight -= 1
        self.outstanding -= 1
        self.measured_outstanding -= request.measured
        if self.outstanding == 0 and not self.dispatching:
            self.done.set()

    def close(self) -> None:
        """Close every connection, those still waiting for an answer included."""
        for connection in list(self.connections):
            if connection.transport is not None:
                connection.transport.close()


def _request_bytes(host: str, path: str, headers: dict[str, str], body: bytes) -> bytes:
    lines = [f"POST {path} HTTP/1.1", f"Host: {host}", *(f"{k}: {v}" for k, v in headers.items())]
    lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


def _percentiles(values_s: list[float]) -> dict[str, float]:
    if not values_s:
        return {}
    ordered = sorted(values_s)
    out = {}
    for q in PERCENTILES:
        index = min(len(ordered) - 1, max(0, int(q / 100.0 * len(ordered) + 0.5) - 1))
        out[f"p{q:g}"] = round(ordered[index] * 1000.0, 4)
    return out


async def generate(
    url: str,
    rate: float,
    duration_s: float,
    *,
    warmup_s: float = 1.0,
    workload: str = "plain",
    headers: dict[str, str] | None = None,
    max_connections: int = 512,
    timeout_s: float = 10.0,
) -> dict[str, object]:
    """Send `rate` requests/s for `warmup_s` (not counted) then `duration_s`; the figures as a dict."""
    parts = urlsplit(url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    netloc = f"{host}:{port}"
    all_headers = {"Content-Type": "application/json", "Authorization": "Bearer bench-key", **(headers or {})}
    shape = workloads.WORKLOADS[workload]
    nonce = workloads.new_nonce()
    constant = _request_bytes(netloc, parts.path or "/", all_headers, shape.body())
    generator = _Generator(host, port, max_connections)
    warm = round(warmup_s * rate)
    total = warm + round(duration_s * rate)
    start = time.perf_counter() + 0.05  # the loop's clock has 1 ms resolution under uvloop
    cpu_before = time.process_time()
    for index in range(total):
        due = start + index / rate
        delay = due - time.perf_counter()
        if delay > 0.0005:
            await asyncio.sleep(delay)
        data = (
            _request_bytes(netloc, parts.path or "/", all_headers, shape.body(nonce, index))
            if shape.varies
            else constant
        )
        generator.dispatch(_Request(index, due, data, measured=index >= warm))
    last_due = start + (total - 1) / rate
    generator.dispatching = False
    if generator.outstanding == 0:
        generator.done.set()
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(generator.done.wait(), max(0.0, last_due + timeout_s - time.perf_counter()))
    generator.tally.errors["timeout"] += generator.measured_outstanding  # unanswered `timeout_s` after the last
    wall = time.perf_counter() - (start + warm / rate)
    generator.close()
    tally = generator.tally
    return {
        "url": url,
        "workload": workload,
        "rate": rate,
        "duration_s": duration_s,
        "sent": total - warm,
        "completed": tally.completed,
        "achieved_rate": round(tally.completed / max(wall, 1e-9), 1),
        "latency_ms": _percentiles(tally.latency_s),
        "service_ms": _percentiles(tally.service_s),
        "send_lag_ms": _percentiles(tally.send_lag_s),
        "errors": tally.errors,
        "connections_opened": generator.opened,
        "max_in_flight": generator.max_in_flight,
        "generator_cpu_s": round(time.process_time() - cpu_before, 3),
    }


def _header(text: str) -> tuple[str, str]:
    name, sep, value = text.partition(":")
    if not sep or not name.strip():
        raise argparse.ArgumentTypeError(f"{text!r}: expected 'Name: value'")
    return name.strip(), value.strip()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.load.open_loop", description=(__doc__ or "").split("\n\n")[0]
    )
    parser.add_argument("url")
    parser.add_argument("--rate", type=float, required=True, help="requests per second")
    parser.add_argument("--duration", type=float, default=8.0, help="seconds measured (default 8)")
    parser.add_argument("--warmup", type=float, default=1.0, help="seconds at the rate before, not counted (default 1)")
    parser.add_argument("--workload", choices=sorted(workloads.WORKLOADS), default="plain")
    parser.add_argument("--header", type=_header, action="append", default=[], help="'Name: value' (repeatable)")
    parser.add_argument("--connections", type=int, default=512, help="at most this many connections (default 512)")
    args = parser.parse_args(argv)
    if args.rate <= 0 or args.duration <= 0 or args.warmup < 0:
        parser.error("--rate and --duration must be positive, --warmup at least 0")
    try:
        import uvloop
    except ImportError:  # the generator works on asyncio's own loop, a little slower
        runner = asyncio.run
    else:
        runner = uvloop.run
    run = generate(args.url, args.rate, args.duration, warmup_s=args.warmup, workload=args.workload,
                   headers=dict(args.header), max_connections=args.connections)  # fmt: skip
    figures = runner(run)
    print(MARKER + json.dumps(figures), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
