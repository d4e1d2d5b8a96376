"""The streaming-at-scale client: one process holding a share of the point's streams open, each client
loop streaming one reply after the other on its own keep-alive connection, and timing content chunks
as they arrive; its figures go to stdout as one JSON object for the run to add up.

    python -m benchmarks.streaming_scale.client SPEC_JSON

Why not aiohttp: at 1,000 streams at a 20 ms pace the clients read 50,000 chunks a second, and an
aiohttp client decoding each chunk would use more CPU than the gateway it measures. Here each read is
one `data_received` call on a bare asyncio protocol (uvloop) that counts the content marker (`xq`, the
pacer's text, found the same in chat chunks and in translated Messages events) with `bytes.count`:
no parse, no JSON. Several chunks in one read are several chunks sent together: gaps of 0 after the
first. The process's own CPU is in its figures, so a reader can see the client was not the bottleneck.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time
from dataclasses import asdict, dataclass, field
from typing import Any, cast

import uvloop

CONTENT = b"xq"
BUCKET_MS = 0.1
"""Gaps are counted in a histogram of 0.1 ms buckets (added up across processes)."""


@dataclass(slots=True)
class Figures:
    """What one client process saw; `ttft_ms` and `gaps` only of streams started inside the window."""

    streams: int = 0
    errors: int = 0
    first_errors: list[str] = field(default_factory=list)
    ttft_ms: list[float] = field(default_factory=list)
    gaps: dict[int, int] = field(default_factory=dict)
    """Bucket (gap / 0.1 ms) -> gaps."""
    chunks_in_window: int = 0
    """Content chunks that arrived inside the window, whatever stream they belonged to."""
    short_streams: int = 0
    """Streams that ended (with their end marker) with fewer content chunks than asked for."""
    cpu_s: float = 0.0

    def error(self, text: str) -> None:
        self.errors += 1
        if len(self.first_errors) < 3:
            self.first_errors.append(" ".join(text.split())[:300])  # one line: an answer's head and body


class Connection(asyncio.Protocol):
    """One keep-alive connection; one stream on it at a time."""

    def __init__(self, spec: dict[str, Any], figures: Figures) -> None:
        self.end = spec["end_marker"].encode()
        self.content = spec.get("content_marker", CONTENT.decode()).encode()
        self.window = (spec["window_start"], spec["window_end"])
        self.figures = figures
        self.transport: asyncio.Transport | None = None
        self.done: asyncio.Future[str] | None = None
        self.reset(0.0, False)

    def reset(self, started: float, counted: bool) -> None:
        self.started, self.counted = started, counted
        self.first = self.last = 0.0
        self.tail = b""
        self.head_seen = self.end_seen = False
        self.chunks = 0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None
        self._finish("ok" if self.end_seen else f"connection lost mid-stream ({exc})")

    def stream(self, request: bytes, counted: bool) -> asyncio.Future[str]:
        assert self.transport is not None
        self.reset(time.perf_counter(), counted)
        self.done = asyncio.get_running_loop().create_future()
        self.transport.write(request)
        return self.done

    def data_received(self, data: bytes) -> None:
        now = time.perf_counter()
        if not self.head_seen:
            self.head_seen = True
            if not data.startswith(b"HTTP/1.1 200"):
                self._finish("answer: " + data[:300].decode(errors="replace"))
                self.close()
                return
        seen = self.tail + data
        chunks = seen.count(self.content) - self.tail.count(self.content)
        if chunks:
            self._note(now, chunks)
        if not self.end_seen and seen.count(self.end) > self.tail.count(self.end):
            self.end_seen = True
        if b'"error"' in data:
            self._finish("error event: " + data[:300].decode(errors="replace"))
            self.close()
        elif self.end_seen and seen.endswith(b"0\r\n\r\n"):
            self._finish("ok")
        self.tail = seen[-16:]

    def _note(self, now: float, chunks: int) -> None:
        figures = self.figures
        if self.window[0] <= now < self.window[1]:
            figures.chunks_in_window += chunks
        self.chunks += chunks
        if self.counted:
            gaps = figures.gaps
            if self.first == 0.0:
                self.first = now
                figures.ttft_ms.append(round((now - self.started) * 1000, 3))
                chunks -= 1
            else:
                bucket = int((now - self.last) * 1000 / BUCKET_MS)
                gaps[bucket] = gaps.get(bucket, 0) + 1
                chunks -= 1
            if chunks:
                gaps[0] = gaps.get(0, 0) + chunks
        self.last = now

    def _finish(self, outcome: str) -> None:
        if self.done is not None and not self.done.done():
            self.done.set_result(outcome)

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()


def request_bytes(spec: dict[str, Any]) -> bytes:
    body = json.dumps(spec["body"]).encode()
    headers = "".join(f"{name}: {value}\r\n" for name, value in spec["headers"].items())
    head = (
        f"POST {spec['path']} HTTP/1.1\r\nhost: {spec['host']}:{spec['port']}\r\ncontent-type: application/json"
        f"\r\ncontent-length: {len(body)}\r\n{headers}\r\n"
    )
    return head.encode() + body


async def client_loop(spec: dict[str, Any], offset_s: float, figures: Figures) -> None:
    """Stream after stream on one connection (a new one after a failure) until the window closes."""
    loop = asyncio.get_running_loop()
    request = request_bytes(spec)
    await asyncio.sleep(offset_s)
    conn: Connection | None = None
    while (started := time.perf_counter()) < spec["window_end"]:
        if conn is None or conn.transport is None:
            try:
                _, conn = await loop.create_connection(lambda: Connection(spec, figures), spec["host"], spec["port"])
            except OSError as exc:
                figures.error(f"connect: {exc}")
                await asyncio.sleep(0.1)
                continue
        counted = started >= spec["window_start"]
        try:
            outcome = await asyncio.wait_for(conn.stream(request, counted), spec["stream_timeout_s"])
        except TimeoutError:
            outcome = "no end within the stream timeout"
            conn.close()
        if outcome != "ok":
            figures.error(outcome)
            conn.close()
            await asyncio.sleep(0.1)  # a target that fails every stream at once is not hammered
            continue
        figures.streams += counted
        figures.short_streams += conn.chunks < spec["chunks"]


async def run(spec: dict[str, Any]) -> Figures:
    figures = Figures()
    loops, ramp = spec["loops"], spec["ramp_s"]
    before = os.times()
    phase = spec["phase"]  # this process's place among the processes: their loops' starts interleave
    await asyncio.gather(*(client_loop(spec, ramp * (i + phase) / loops, figures) for i in range(loops)))
    after = os.times()
    figures.cpu_s = round(after.user + after.system - before.user - before.system, 3)
    return figures


def main() -> int:
    spec = json.loads(sys.argv[1])
    figures = uvloop.run(run(spec))
    print(json.dumps(asdict(figures)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
