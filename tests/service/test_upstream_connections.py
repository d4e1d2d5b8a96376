"""The gateway's own worker connections for streamed answers (`gateway.upstream.stream_pool`,
`stream_connection`), against real servers on loopback that answer the way workers do, and misbehave the
way they can."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest

from gateway.errors import UpstreamTimeout, WorkerRejected, WorkerUnreachable
from gateway.upstream.client import WorkerClient, WorkerTarget
from gateway.upstream.stream_pool import StreamPool
from routing.catalog import WorkerSpec

Script = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]
SSE_HEAD = b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n"


def chunked(data: bytes) -> bytes:
    return b"%x\r\n%b\r\n" % (len(data), data)


class Worker:
    """A loopback server running `script` for each request; counts connections and keeps each request."""

    def __init__(self, script: Script) -> None:
        self.script = script
        self.connections = 0
        self.requests: list[bytes] = []
        self.url = ""
        self.open: list[tuple[asyncio.StreamWriter, asyncio.Task[object]]] = []

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        task = asyncio.current_task()
        assert task is not None
        self.open.append((writer, task))
        with contextlib.suppress(ConnectionError, asyncio.IncompleteReadError, asyncio.CancelledError):
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = next(int(line.split(b":")[1]) for line in head.split(b"\r\n")
                              if line.lower().startswith(b"content-length"))
                self.requests.append(head + await reader.readexactly(length))
                await self.script(reader, writer)
                if writer.is_closing():
                    return
        writer.close()


@contextlib.asynccontextmanager
async def worker(script: Script) -> AsyncIterator[Worker]:
    served = Worker(script)
    server = await asyncio.start_server(served._serve, "127.0.0.1", 0)
    served.url = f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}/v1"
    try:
        yield served
    finally:
        server.close()
        for writer, task in served.open:
            writer.close()
            task.cancel()
        await asyncio.gather(*(task for _, task in served.open), return_exceptions=True)
        await server.wait_closed()


async def sse(_: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    writer.write(SSE_HEAD + chunked(b"data: {}\n\n") + chunked(b"data: [DONE]\n\n") + b"0\r\n\r\n")
    await writer.drain()


async def read_all(pool: StreamPool, url: str, headers: dict[str, str] | None = None) -> bytes:
    response = await pool.open(url, "/chat/completions", b'{"stream":true}', headers or {}, worker_name="w",
                               wait=5, connect_timeout=2)
    body = await response.read_all()
    response.finish()
    return body


async def test_a_connection_is_kept_alive_and_reused_for_the_next_stream() -> None:
    pool = StreamPool()
    async with worker(sse) as served:
        for _ in range(3):
            assert await read_all(pool, served.url) == b"data: {}\n\ndata: [DONE]\n\n"
        assert served.connections == 1 and len(served.requests) == 3
        assert served.requests[0].startswith(b"POST /v1/chat/completions HTTP/1.1\r\n")
    await pool.close()


async def test_a_stream_read_to_done_before_its_last_chunk_is_pooled_once_that_arrives() -> None:
    async def late_end(_: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(SSE_HEAD + chunked(b"data: [DONE]\n\n"))
        await asyncio.sleep(0.1)
        writer.write(b"0\r\n\r\n")

    pool = StreamPool()
    async with worker(late_end) as served:
        for _ in range(2):
            response = await pool.open(served.url, "/x", b"{}", {}, worker_name="w", wait=5, connect_timeout=2)
            assert await response.readany() == b"data: [DONE]\n\n"
            response.finish()  # before the terminating chunk
            await asyncio.sleep(0.2)
        assert served.connections == 1
    await pool.close()


async def test_a_body_that_lasts_until_the_worker_closes_is_read_whole_and_not_reused() -> None:
    async def until_close(_: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nConnection: close\r\n\r\ndata: [DONE]\n\n")
        await writer.drain()
        writer.close()

    pool = StreamPool()
    async with worker(until_close) as served:
        assert await read_all(pool, served.url) == b"data: [DONE]\n\n"
        assert await read_all(pool, served.url) == b"data: [DONE]\n\n"
        assert served.connections == 2
    await pool.close()


async def test_a_body_cut_short_is_the_worker_breaking_off() -> None:
    async def cut(_: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(SSE_HEAD + b"40\r\ndata: {")
        await writer.drain()
        writer.close()

    pool = StreamPool()
    async with worker(cut) as served:
        with pytest.raises(WorkerUnreachable, match="'w' broke off the stream"):
            await read_all(pool, served.url)
    await pool.close()


async def test_an_answer_that_is_not_http_is_an_error_not_a_hang() -> None:
    async def garbage(_: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"SSH-2.0-OpenSSH_9.6\r\n\r\n")
        await writer.drain()

    pool = StreamPool()
    async with worker(garbage) as served:
        with pytest.raises(WorkerUnreachable, match="not HTTP"):
            await read_all(pool, served.url)
    await pool.close()


async def test_a_pooled_connection_the_worker_closed_meanwhile_is_replaced_not_an_error() -> None:
    async def then_close(_: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await sse(_, writer)
        await asyncio.sleep(0.05)
        writer.close()  # after the answer, as a worker's keep-alive timeout does

    pool = StreamPool()
    async with worker(then_close) as served:
        await read_all(pool, served.url)
        await asyncio.sleep(0.2)
        assert await read_all(pool, served.url) == b"data: {}\n\ndata: [DONE]\n\n"
        assert served.connections == 2
    await pool.close()


async def test_a_refusal_is_read_and_raised_as_the_protocol_says() -> None:
    async def refuse(_: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        body = b'{"error":{"message":"max_tokens is too large","type":"BadRequestError","code":400}}'
        writer.write(b"HTTP/1.1 400 Bad Request\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%b"
                     % (len(body), body))
        await writer.drain()

    client = WorkerClient()
    await client.start()
    async with worker(refuse) as served:
        target = WorkerTarget.for_worker(WorkerSpec(name="w", kind="vllm", base_url=served.url, models=()), {})
        with pytest.raises(WorkerRejected) as refused:
            await client.open_stream(target, "/chat/completions", b"{}", "req_1", wait=5)
        assert refused.value.status_code() == 400 and refused.value.message == "max_tokens is too large"
        assert b"x-request-id: req_1" in served.requests[0].lower()
    await client.close()


async def test_no_answer_within_the_wait_is_a_timeout() -> None:
    async def silent(reader: asyncio.StreamReader, _: asyncio.StreamWriter) -> None:
        await reader.read()

    pool = StreamPool()
    async with worker(silent) as served:
        with pytest.raises(UpstreamTimeout, match=r"did not answer within 0\.2 s"):
            await pool.open(served.url, "/x", b"{}", {}, worker_name="w", wait=0.2, connect_timeout=2)
    await pool.close()


async def test_a_header_value_with_a_line_break_is_not_sent() -> None:
    pool = StreamPool()
    async with worker(sse) as served:
        await read_all(pool, served.url, {"X-Ok": "yes", "X-Forged": "a\r\nX-Admin: 1"})
        assert b"X-Ok: yes\r\n" in served.requests[0] and b"X-Admin" not in served.requests[0]
    await pool.close()
