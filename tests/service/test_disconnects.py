"""A client that goes away takes its upstream request with it, so the worker stops generating."""

from __future__ import annotations

import asyncio
import socket

import httpx

from simulator import SimulatorThread
from tests.servers import ServerThread


def _records(sim: SimulatorThread, model: str) -> list[object]:
    return [r for r in sim.records if r.model == model]


def test_disconnect_mid_stream_closes_upstream(gateway: ServerThread, sim: SimulatorThread) -> None:
    body = {"model": "slow", "messages": [{"role": "user", "content": "hi"}], "stream": True, "max_tokens": 50}
    with httpx.stream("POST", gateway.url + "/v1/chat/completions", json=body) as response:
        for line in response.iter_lines():
            if '"content"' in line:
                break  # leave after the first token
    assert sim.wait_for(lambda rs: any(r.model == "slow" and r.disconnected for r in rs), timeout=5)
    [record] = [r for r in sim.records if r.model == "slow"]
    assert record.disconnected is not None
    assert len(record.chunk_times) < 20  # it stopped long before its 50 tokens


def test_disconnect_before_first_byte_closes_upstream(gateway: ServerThread, sim: SimulatorThread) -> None:
    async def leave_early() -> None:
        body = {"model": "never-answer", "messages": [{"role": "user", "content": "hi"}], "stream": True}
        async with httpx.AsyncClient() as c:
            task = asyncio.create_task(c.post(gateway.url + "/v1/chat/completions", json=body))
            await asyncio.to_thread(sim.wait_for, lambda rs: any(r.model == "never-answer" for r in rs), 5)
            task.cancel()

    asyncio.run(leave_early())
    assert sim.wait_for(lambda rs: any(r.model == "never-answer" and r.disconnected for r in rs), timeout=5)


def test_disconnect_during_non_streaming_call_closes_upstream(gateway: ServerThread, sim: SimulatorThread) -> None:
    body = b'{"model": "slow", "max_tokens": 50, "messages": [{"role": "user", "content": "hi"}]}'
    request = (b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
               b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body)
    with socket.create_connection(("127.0.0.1", gateway.port)) as conn:
        conn.sendall(request)
        assert sim.wait_for(lambda rs: any(r.model == "slow" for r in rs), timeout=5)
    # The socket is closed: the gateway must notice and drop its upstream call.
    assert sim.wait_for(lambda rs: any(r.model == "slow" and r.disconnected for r in rs), timeout=5)
    [record] = [r for r in sim.records if r.model == "slow"]
    assert record.finished is None or record.disconnected is not None
