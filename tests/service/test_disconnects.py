"""A client that goes away takes its upstream request with it, so the worker stops generating
(figure 3: recorded, how soon the upstream closed and the in-flight gauge came back to 0)."""

from __future__ import annotations

import asyncio
import socket
import threading
import time

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from simulator import SimulatorThread
from testkit.figures import record_figure
from tests.servers import ServerThread


def _records(sim: SimulatorThread, model: str) -> list[object]:
    return [r for r in sim.records if r.model == model]


def record_upstream_close(case: str, left: float, disconnected: float | None) -> None:
    """Figure 3: how long after the client left the worker saw its upstream request go."""
    delay = float("nan") if disconnected is None else max(0.0, disconnected - left)
    record_figure(3, f"upstream closed after the client left ({case})", round(delay, 3), unit="s",
                  threshold="≤ 500 ms", met=delay <= 0.5)


def in_flight_settles(gateway: ServerThread, left: float) -> None:
    """Poll until the in-flight gauge counts only the scrape reading it; record how long that took."""
    deadline = time.monotonic() + 10
    while True:
        text = httpx.get(gateway.url + "/metrics").text
        in_flight = sum(s.value for family in text_string_to_metric_families(text) for s in family.samples
                        if s.name == "llm_gateway_in_flight_requests")
        if in_flight <= 1:
            break
        assert time.monotonic() < deadline, f"{in_flight} requests still in flight 10 s after the client left"
        threading.Event().wait(0.02)
    settled = time.monotonic() - left
    record_figure(3, "in-flight gauge back to 0 after a disconnect", round(settled, 3), unit="s",
                  threshold="≤ 2 s", met=settled <= 2)


@pytest.mark.figure(3)
def test_disconnect_mid_stream_closes_upstream(gateway: ServerThread, sim: SimulatorThread) -> None:
    body = {"model": "slow", "messages": [{"role": "user", "content": "hi"}], "stream": True, "max_tokens": 50}
    with httpx.stream("POST", gateway.url + "/v1/chat/completions", json=body) as response:
        for line in response.iter_lines():
            if '"content"' in line:
                left = time.monotonic()
                break  # leave after the first token
    assert sim.wait_for(lambda rs: any(r.model == "slow" and r.disconnected for r in rs), timeout=5)
    [record] = [r for r in sim.records if r.model == "slow"]
    record_upstream_close("mid-stream", left, record.disconnected)
    in_flight_settles(gateway, left)
    assert record.disconnected is not None
    assert len(record.chunk_times) < 20  # it stopped long before its 50 tokens


@pytest.mark.figure(3)
def test_disconnect_before_first_byte_closes_upstream(gateway: ServerThread, sim: SimulatorThread) -> None:
    async def leave_early() -> float:
        body = {"model": "never-answer", "messages": [{"role": "user", "content": "hi"}], "stream": True}
        async with httpx.AsyncClient() as c:
            task = asyncio.create_task(c.post(gateway.url + "/v1/chat/completions", json=body))
            await asyncio.to_thread(sim.wait_for, lambda rs: any(r.model == "never-answer" for r in rs), 5)
            task.cancel()
            return time.monotonic()

    left = asyncio.run(leave_early())
    assert sim.wait_for(lambda rs: any(r.model == "never-answer" and r.disconnected for r in rs), timeout=5)
    [record] = [r for r in sim.records if r.model == "never-answer"]
    record_upstream_close("before the first byte", left, record.disconnected)
    in_flight_settles(gateway, left)


@pytest.mark.figure(3)
def test_disconnect_during_non_streaming_call_closes_upstream(gateway: ServerThread, sim: SimulatorThread) -> None:
    body = b'{"model": "slow", "max_tokens": 50, "messages": [{"role": "user", "content": "hi"}]}'
    request = (b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
               b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body)
    with socket.create_connection(("127.0.0.1", gateway.port)) as conn:
        conn.sendall(request)
        assert sim.wait_for(lambda rs: any(r.model == "slow" for r in rs), timeout=5)
        left = time.monotonic()
    # The socket is closed: the gateway must notice and drop its upstream call.
    assert sim.wait_for(lambda rs: any(r.model == "slow" and r.disconnected for r in rs), timeout=5)
    [record] = [r for r in sim.records if r.model == "slow"]
    record_upstream_close("non-streaming call", left, record.disconnected)
    in_flight_settles(gateway, left)
    assert record.finished is None or record.disconnected is not None
