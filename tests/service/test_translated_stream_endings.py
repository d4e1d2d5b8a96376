"""A translated stream (Responses, Messages) that ended whole is a 200 in the metrics and the log line, not
a 499: the surface closes the worker's relay once it has read `[DONE]` (before its own last event), and
a client that reads that last event and hangs up at once (Codex and Claude Code do) has left nothing
unanswered."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from simulator import SimulatorThread
from tests.conftest import catalog_yaml, start_gateway
from tests.servers import ServerThread


@pytest.fixture(scope="module")
def gw(vllm_sim: SimulatorThread) -> Iterator[ServerThread]:
    with start_gateway(catalog_yaml([("sim-a", vllm_sim.url)])) as server:
        yield server


def requests_by_status(gw: ServerThread, endpoint: str) -> dict[str, float]:
    counts: dict[str, float] = {}
    for line in httpx.get(gw.url + "/metrics").text.splitlines():
        if line.startswith("llm_gateway_requests_total{") and f'endpoint="{endpoint}"' in line:
            status = line.split('status_class="', 1)[1].split('"', 1)[0]
            counts[status] = counts.get(status, 0.0) + float(line.rsplit(" ", 1)[1])
    return counts


@pytest.mark.parametrize(("path", "endpoint", "body", "last_event"), [
    ("/v1/responses", "responses", {"model": "chat", "input": "Hi", "stream": True}, "response."),
    ("/v1/messages", "messages", {"model": "chat", "max_tokens": 8, "stream": True,
                                  "messages": [{"role": "user", "content": "Hi"}]}, "message_stop"),
])
def test_a_whole_translated_stream_is_a_200_even_when_the_client_hangs_up_at_its_end(
        gw: ServerThread, path: str, endpoint: str, body: dict[str, Any], last_event: str) -> None:
    before = requests_by_status(gw, endpoint)
    for _ in range(3):
        with httpx.stream("POST", gw.url + path, json=body) as reply:
            assert reply.status_code == 200
            events = [line for line in reply.iter_lines() if line.startswith("event: ")]
        assert last_event in events[-1]
    after = requests_by_status(gw, endpoint)
    assert after.get("2xx", 0) - before.get("2xx", 0) == 3
    assert after.get("499", 0) == before.get("499", 0)
