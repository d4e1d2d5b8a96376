"""Streams pushed from the worker's connection straight to the client's (`gateway.upstream.sse_push`,
`gateway.http.transport_sink`): taken for chat streams on the fast path, and as honest as the relay read
in a task: a slow client holds the worker back and loses nothing, every chunk arrives in order.
(A client leaving a pushed stream: tests/service/test_disconnects.py.)"""

from __future__ import annotations

import asyncio
import contextlib
import json
import threading
import time
from collections.abc import AsyncIterator

import httpx
import openai
import structlog

from simulator import SimulatorThread
from tests.conftest import catalog_yaml, start_gateway

CHUNKS = 20_000
CONTENT = "x" * 2000
"""40 MB in all: far more than the loopback sockets' buffers on the way hold."""


def plain_chunk(i: int) -> bytes:
    delta = json.dumps({"content": f"{i:06d}{CONTENT}"}, separators=(",", ":"))
    return (b'data: {"id":"c","object":"chat.completion.chunk","created":1,"model":"m","choices":[{"index":0,'
            b'"delta":%b,"logprobs":null,"finish_reason":null}]}\n\n' % delta.encode())


class FastWorker:
    """Streams `CHUNKS` large content chunks as fast as its connection takes them; notes how many it wrote."""

    def __init__(self) -> None:
        self.written = 0
        self.url = ""

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        length = next(int(line.split(b":")[1]) for line in head.split(b"\r\n")
                      if line.lower().startswith(b"content-length"))
        await reader.readexactly(length)
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n")
        role = b'data: {"choices":[{"index":0,"delta":{"role":"assistant","content":""},"finish_reason":null}]}\n\n'
        writer.write(b"%x\r\n%b\r\n" % (len(role), role))
        with contextlib.suppress(ConnectionError):
            for i in range(CHUNKS):
                event = plain_chunk(i)
                writer.write(b"%x\r\n%b\r\n" % (len(event), event))
                await writer.drain()
                self.written = i + 1
            end = b'data: {"choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}\n\ndata: [DONE]\n\n'
            writer.write(b"%x\r\n%b\r\n0\r\n\r\n" % (len(end), end))
            await writer.drain()
        writer.close()


@contextlib.asynccontextmanager
async def fast_worker() -> AsyncIterator[FastWorker]:
    worker = FastWorker()
    server = await asyncio.start_server(worker.serve, "127.0.0.1", 0)
    worker.url = f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}"
    try:
        yield worker
    finally:
        server.close()


async def test_a_client_that_stops_reading_holds_the_worker_back_and_then_gets_every_chunk_in_order() -> None:
    async with fast_worker() as worker:
        with start_gateway(catalog_yaml([("w", worker.url)])) as gateway:
            body = {"model": "chat", "stream": True, "messages": [{"role": "user", "content": "hi"}]}
            async with httpx.AsyncClient(timeout=60) as client, \
                    client.stream("POST", gateway.url + "/v1/chat/completions", json=body) as response:
                assert response.status_code == 200
                await asyncio.sleep(1.5)  # the client reads nothing meanwhile
                held_back_at = worker.written
                seen = [line async for line in response.aiter_lines() if line.startswith("data: ")]
    assert held_back_at < CHUNKS  # the worker could not write its whole stream while the client read nothing
    assert seen[-1] == "data: [DONE]"
    contents = [json.loads(line[6:])["choices"][0]["delta"].get("content") for line in seen[:-1]]
    assert contents[1:-1] == [f"{i:06d}{CONTENT}" for i in range(CHUNKS)]


def test_a_chat_stream_is_pushed_and_says_so_in_its_log_line(sim: SimulatorThread) -> None:
    with start_gateway(catalog_yaml([("w", sim.url)]), LOG_LEVEL="info") as gateway, \
            structlog.testing.capture_logs() as logs:
        client = openai.OpenAI(base_url=gateway.url + "/v1", api_key="k", max_retries=0)
        chunks = list(client.chat.completions.create(
            model="chat", stream=True, stream_options={"include_usage": True}, max_completion_tokens=12,
            messages=[{"role": "user", "content": [{"type": "text", "text": "hi"}]}],
            extra_headers={"x-request-id": "pushed-1"}))
        deadline = time.monotonic() + 5
        while not any(e.get("request_id") == "pushed-1" for e in logs):
            assert time.monotonic() < deadline
            threading.Event().wait(0.01)
    [line] = [e for e in logs if e.get("request_id") == "pushed-1"]
    assert line["pushed"] is True and line["stream"] is True and line["status"] == 200
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens == line["tokens_out"]
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
