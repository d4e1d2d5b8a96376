"""The pacing upstream of the streaming-at-scale suite: an OpenAI-compatible server whose every streamed
chat completion is the same pre-encoded chunks, one every `--pace` seconds, for hundreds to thousands of
streams at once, at a small fraction of the simulator's CPU per chunk.

    python -m benchmarks.streaming_scale.pacer --port P [--pace 0.02] [--chunks 100]

Why it is cheap: HTTP/1.1 on a bare asyncio protocol (uvloop), no framework and no JSON encoding; every
chunk is encoded once at start (with its chunked-transfer framing), and one timer wheel paces every
stream: the loop wakes about once a millisecond while streams are open, and that one callback writes the
next chunk of every due stream (one `transport.write` each), with no task or timer per stream. Its cost
per 1,000 chunks and its ceiling are measured by the suite's direct runs (README.md).

A stream: the role chunk at once, then `--chunks` content chunks `--pace` apart (the text `xq`, which
appears nowhere else, so clients find content by a byte search), a finish chunk, a usage chunk, and
`[DONE]`. GET answers the model list (readiness); a POST without `"stream": true` gets a whole answer.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
from collections.abc import Sequence
from typing import cast

import uvloop

MODEL = "bench-upstream"
CONTENT = "xq"
TICK_S = 0.001
_ID = '"id":"chatcmpl-pace","object":"chat.completion.chunk","created":1,"model":"' + MODEL + '"'


def _http_chunk(payload: str) -> bytes:
    event = f"data: {payload}\n\n".encode()
    return b"%x\r\n%s\r\n" % (len(event), event)


def _chunk(delta: str, finish: str = "null") -> str:
    return "{" + _ID + ',"choices":[{"index":0,"delta":' + delta + ',"finish_reason":' + finish + "}]}"


HEAD = (
    b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ncache-control: no-cache\r\n"
    b"transfer-encoding: chunked\r\n\r\n"
)
ROLE = HEAD + _http_chunk(_chunk('{"role":"assistant"}'))
CONTENT_CHUNK = _http_chunk(_chunk('{"content":"' + CONTENT + '"}'))


def ending(chunks: int) -> bytes:
    """The finish chunk, the usage chunk, `[DONE]` and the end of the chunked body."""
    usage = "{" + _ID + ',"choices":[],"usage":{"prompt_tokens":8,"completion_tokens":%d,"total_tokens":%d}}'
    return (
        _http_chunk(_chunk("{}", '"stop"'))
        + _http_chunk(usage % (chunks, chunks + 8))
        + _http_chunk("[DONE]")
        + b"0\r\n\r\n"
    )


def whole_answer(chunks: int) -> bytes:
    usage = f'"usage":{{"prompt_tokens":8,"completion_tokens":{chunks},"total_tokens":{chunks + 8}}}'
    message = '{"role":"assistant","content":"' + CONTENT * chunks + '"}'
    body = (
        '{"id":"chatcmpl-pace","object":"chat.completion","created":1,"model":"' + MODEL + '","choices":'
        '[{"index":0,"message":' + message + ',"finish_reason":"stop"}],' + usage + "}"
    )
    return _response(body.encode())


def _response(body: bytes) -> bytes:
    return b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: %d\r\n\r\n%s" % (len(body), body)


MODELS = _response(('{"object":"list","data":[{"id":"' + MODEL + '","object":"model","owned_by":"pacer"}]}').encode())


def _content_length(head: bytes) -> int:
    start = head.find(b"content-length:")
    if start < 0:
        return 0
    end = head.find(b"\r\n", start)
    return int(head[start + 15 : end if end >= 0 else len(head)])


class Wheel:
    """Every open stream, bucketed by the tick its next chunk is due in; one loop callback per busy tick."""

    def __init__(self, pace_s: float, chunks: int) -> None:
        self.loop = asyncio.get_running_loop()
        self.pace_ticks = max(1, round(pace_s / TICK_S))
        self.chunks = chunks
        self.end = ending(chunks)
        self.slots: dict[int, list[Stream]] = {}
        self.done_tick = int(self.loop.time() / TICK_S)
        self.timer: asyncio.TimerHandle | None = None
        self.sent = 0
        """Content chunks written, for the suite's cost per chunk."""

    def add(self, stream: Stream) -> None:
        now = int(self.loop.time() / TICK_S)
        self.slots.setdefault(now + self.pace_ticks, []).append(stream)
        if self.timer is None:  # the wheel was still: it starts turning from now
            self.done_tick = now
            self.timer = self.loop.call_later(TICK_S, self.tick)

    def tick(self) -> None:
        now = int(self.loop.time() / TICK_S)
        slots, pace, content, end = self.slots, self.pace_ticks, CONTENT_CHUNK, self.end
        for t in range(self.done_tick + 1, now + 1):
            due = slots.pop(t, None)
            if not due:
                continue
            for stream in due:
                if stream.closed:
                    continue
                stream.left -= 1
                self.sent += 1
                if stream.left:
                    stream.transport.write(content)
                    slots.setdefault(t + pace, []).append(stream)
                else:
                    stream.transport.write(content + end)
                    stream.finish()
        self.done_tick = now
        # call_later, not call_at the next tick's start: uvloop's clock is in whole milliseconds, and a
        # timer due within the current one fires at once, again and again.
        self.timer = self.loop.call_later(TICK_S, self.tick) if slots else None


class Stream:
    __slots__ = ("closed", "left", "protocol", "transport")

    def __init__(self, protocol: Pacer, transport: asyncio.Transport, chunks: int) -> None:
        self.protocol, self.transport, self.left, self.closed = protocol, transport, chunks, False

    def finish(self) -> None:
        self.protocol.stream = None
        self.protocol.serve_buffered()


class Pacer(asyncio.Protocol):
    """One client connection: requests one after the other (keep-alive), a stream at most at a time."""

    def __init__(self, wheel: Wheel) -> None:
        self.wheel = wheel
        self.buffer = b""
        self.stream: Stream | None = None
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's transports are not its subclasses

    def connection_lost(self, exc: Exception | None) -> None:
        if self.stream is not None:
            self.stream.closed = True
            self.stream = None

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        if self.stream is None:
            self.serve_buffered()

    def serve_buffered(self) -> None:
        while self.stream is None and self.transport is not None:
            head_end = self.buffer.find(b"\r\n\r\n")
            if head_end < 0:
                return
            head = self.buffer[:head_end].lower()
            total = head_end + 4 + _content_length(head)
            if len(self.buffer) < total:
                return
            body, self.buffer = self.buffer[head_end + 4 : total], self.buffer[total:]
            self.answer(head, body)

    def answer(self, head: bytes, body: bytes) -> None:
        assert self.transport is not None
        if not head.startswith(b"post"):
            self.transport.write(MODELS)
        elif b'"stream":true' in body.replace(b" ", b""):
            self.stream = Stream(self, self.transport, self.wheel.chunks)
            self.transport.write(ROLE)
            self.wheel.add(self.stream)
        else:
            self.transport.write(whole_answer(self.wheel.chunks))


async def serve(host: str, port: int, pace_s: float, chunks: int) -> None:
    wheel = Wheel(pace_s, chunks)
    loop = asyncio.get_running_loop()
    server = await loop.create_server(lambda: Pacer(wheel), host, port, backlog=4096, reuse_address=True)
    stop = asyncio.Event()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    async with server:
        await stop.wait()
    print(f"sent {wheel.sent}", flush=True)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.streaming_scale.pacer", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--pace", type=float, default=0.02, help="seconds between content chunks")
    parser.add_argument("--chunks", type=int, default=100, help="content chunks per stream")
    args = parser.parse_args(argv)
    uvloop.run(serve(args.host, args.port, args.pace, args.chunks))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
