"""llama-server closes its connection after a streamed answer while announcing keep-alive; a request the
gateway then sent on that pooled connection failed ("Server disconnected", 3 in 30 sequential streams on
one aiohttp session against the real server). Streamed requests to llama.cpp workers therefore ask for
`Connection: close`; whole answers keep their pooled connection. A worker on loopback records what it
was asked with."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator

import httpx
import pytest
from aiohttp import web

from testkit.loopback import free_port
from tests.conftest import start_gateway

CHUNK = (b'data: {"id":"c","object":"chat.completion.chunk","created":1,"model":"m","choices":[{"index":0,'
         b'"delta":{"content":"hi"},"finish_reason":"stop"}]}\n\ndata: [DONE]\n\n')
ANSWER = {"id": "c", "object": "chat.completion", "created": 1, "model": "m", "usage": {
    "prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2}, "choices": [
    {"index": 0, "message": {"role": "assistant", "content": "hi"}, "finish_reason": "stop"}]}


@pytest.fixture(scope="module")
def worker() -> Iterator[tuple[str, list[tuple[bool, str | None]]]]:
    """A llama.cpp-like worker recording, per request, whether it streamed and its `Connection` header."""
    asked: list[tuple[bool, str | None]] = []

    async def chat(request: web.Request) -> web.StreamResponse:
        streamed = (await request.json()).get("stream") is True
        asked.append((streamed, request.headers.get("Connection")))
        if not streamed:
            return web.json_response(ANSWER)
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        await response.write(CHUNK)
        return response

    port, ready, loop = free_port(), threading.Event(), asyncio.new_event_loop()
    app = web.Application()
    app.router.add_post("/v1/chat/completions", chat)
    runner = web.AppRunner(app)

    def serve() -> None:
        loop.run_until_complete(runner.setup())
        loop.run_until_complete(web.TCPSite(runner, "127.0.0.1", port).start())
        ready.set()
        loop.run_forever()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    ready.wait(10)
    yield f"http://127.0.0.1:{port}", asked
    asyncio.run_coroutine_threadsafe(runner.cleanup(), loop).result(10)
    loop.call_soon_threadsafe(loop.stop)
    thread.join(10)
    loop.close()


def test_streams_ask_llama_cpp_workers_to_close_the_connection(
        worker: tuple[str, list[tuple[bool, str | None]]]) -> None:
    url, asked = worker
    catalog = f"""
models: [{{name: chat}}]
routing: {{default_model: chat}}
workers:
  - {{name: llama, kind: llamacpp, base_url: "{url}/v1", models: [chat]}}
"""
    with start_gateway(catalog) as gateway:
        body = {"model": "chat", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 2}
        for _ in range(3):
            with httpx.stream("POST", gateway.url + "/v1/chat/completions", json={**body, "stream": True}) as reply:
                assert reply.status_code == 200 and reply.read().endswith(b"data: [DONE]\n\n")
            assert httpx.post(gateway.url + "/v1/chat/completions", json=body).status_code == 200
    assert [connection for streamed, connection in asked if streamed] == ["close"] * 3
    assert all(connection != "close" for streamed, connection in asked if not streamed)
