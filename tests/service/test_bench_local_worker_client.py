"""The local-worker suite's client against a real server on loopback: a stream that ends with a
`finish_reason` is finished and counted by its usage chunk; one that ends with `[DONE]` but no
`finish_reason` is cut (what llama-cpp-python's server did to an interrupted request); an error event
or an HTTP error is an error."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Iterator, MutableMapping
from typing import Any

import aiohttp
import pytest

from benchmarks.local_worker.client import run_level, stream_once
from tests.asgi_body import read_body
from tests.servers import ServerThread

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]


def _chunk(delta: dict[str, str], finish: str | None = None) -> dict[str, Any]:
    return {"object": "chat.completion.chunk", "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}


EVENTS: dict[str, list[object]] = {
    "/finished/v1/chat/completions": [
        _chunk({"role": "assistant"}), _chunk({"content": "Hi"}), _chunk({"content": " there"}),
        _chunk({}, "length"), {"object": "chat.completion.chunk", "choices": [], "usage": {"completion_tokens": 2}},
    ],
    "/cut/v1/chat/completions": [_chunk({"role": "assistant"})],
    "/error/v1/chat/completions": [_chunk({"content": "Hi"}), {"error": {"message": "worker lost"}}],
}  # fmt: skip


async def sse_app(scope: Scope, receive: Receive, send: Send) -> None:
    """Streams the events of its path, then `[DONE]`; a 503 for any other path."""
    if scope["type"] != "http":
        return
    body = json.loads(await read_body(receive))
    assert body["stream"] is True and body["temperature"] == 0 and body["stream_options"] == {"include_usage": True}
    events = EVENTS.get(scope["path"])
    if events is None:
        await send({"type": "http.response.start", "status": 503, "headers": []})
        await send({"type": "http.response.body", "body": b"busy"})
        return
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/event-stream")]})
    for event in [*events, "[DONE]"]:
        data = event if isinstance(event, str) else json.dumps(event)
        await send({"type": "http.response.body", "body": f"data: {data}\n\n".encode(), "more_body": True})
    await send({"type": "http.response.body", "body": b""})


@pytest.fixture(scope="module")
def server() -> Iterator[str]:
    with ServerThread(sse_app) as running:  # type: ignore[arg-type]
        yield running.url


async def test_each_way_a_stream_ends_is_told_apart(server: str) -> None:
    async with aiohttp.ClientSession() as session:
        finished = await stream_once(session, f"{server}/finished/v1/chat/completions", "Say hi", 8)
        cut = await stream_once(session, f"{server}/cut/v1/chat/completions", "Say hi", 8)
        failed = await stream_once(session, f"{server}/error/v1/chat/completions", "Say hi", 8)
        refused = await stream_once(session, f"{server}/busy/v1/chat/completions", "Say hi", 8)
    assert finished.outcome == "finished" and finished.completion_tokens == 2 and finished.ttft_s is not None
    assert cut.outcome == "cut" and cut.ttft_s is None and cut.completion_tokens == 0
    assert failed.outcome == "error" and "worker lost" in failed.error
    assert refused.outcome == "error" and refused.error == "HTTP 503: busy"


async def test_a_level_shares_its_requests_among_its_clients(server: str) -> None:
    level, warmup = await run_level(f"{server}/finished/v1/chat/completions", 4, 8, 8)
    assert warmup.outcome == "finished"
    assert (level.concurrency, level.requests, level.finished, level.completion_tokens) == (4, 8, 8, 16)
    assert level.tokens_per_s > 0 and level.ttft_p50_ms is not None
