"""The gateway counts, per worker, its requests still waiting for their first token (what least_outstanding
ranks by first): from the send until a stream's first content, or until a whole answer has arrived."""

from __future__ import annotations

import threading
import time
from typing import Any

import httpx

from simulator import SimulatorConfig, SimulatorThread
from tests.conftest import SIM_MODEL, catalog_yaml, start_gateway
from tests.servers import ServerThread

BODY = {"model": "chat", "messages": [{"role": "user", "content": "count me"}], "max_tokens": 8}


def worker_row(gw: ServerThread) -> dict[str, Any]:
    row: dict[str, Any] = httpx.post(gw.url + "/v1/routing/explain", json=BODY).json()["candidates"][0]["workers"][0]
    return row


def wait_for(gw: ServerThread, **expected: int) -> dict[str, Any]:
    deadline = time.monotonic() + 10
    while True:
        row = worker_row(gw)
        if all(row[k] == v for k, v in expected.items()):
            return row
        assert time.monotonic() < deadline, row
        threading.Event().wait(0.02)


def test_a_stream_prefills_until_its_first_token_and_a_whole_answer_until_it_arrives() -> None:
    config = SimulatorConfig(kind="vllm", models=(SIM_MODEL,), ttft_overhead_s=0.6, itl_s=0.3)
    with SimulatorThread(config) as sim, start_gateway(catalog_yaml([("w", sim.url)])) as gw:
        first_token = threading.Event()

        def stream() -> None:
            with httpx.stream("POST", gw.url + "/v1/chat/completions", json={**BODY, "stream": True},
                              timeout=30) as response:
                for line in response.iter_lines():
                    if '"content":"' in line.replace(" ", "") and not first_token.is_set():
                        first_token.set()

        client = threading.Thread(target=stream)
        client.start()
        row = wait_for(gw, in_flight=1)
        assert row["prefilling"] == 1 and row["queued"] == 1 and not first_token.is_set()
        assert first_token.wait(10)
        row = wait_for(gw, prefilling=0)
        assert row["in_flight"] == 1 and row["queued"] == 0  # decoding: in flight, no longer queued
        client.join(30)
        wait_for(gw, in_flight=0, prefilling=0)

        whole = threading.Thread(target=lambda: httpx.post(gw.url + "/v1/chat/completions", json=BODY, timeout=30))
        whole.start()
        wait_for(gw, in_flight=1, prefilling=1)
        whole.join(30)
        wait_for(gw, in_flight=0, prefilling=0)
