"""Figure 10: workers that never answer, stall after 3 chunks, or outlast the request's deadline.

Asserted: a 504 (OpenAI error object) before the first byte, an error event then `[DONE]` after it,
and a hung request retried on the other worker. Recorded: when each came (504 at the first-byte
timeout ± 10 %, the error event at the idle timeout ± 10 % after the last chunk, total time within the
deadline + 100 ms even with retries). The simulator's fault models are chosen by upstream model name.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from contextlib import ExitStack

import httpx
import pytest

from simulator import SimulatorConfig, SimulatorThread
from testkit.figures import record_figure
from tests.conftest import SIM_MODEL, start_gateway
from tests.reliability.sse_client import StreamSeen, read_stream
from tests.servers import ServerThread

FIRST_BYTE_S = 1.0
IDLE_S = 1.0
DEADLINE_S = 1.5
SLACK_S = 0.1
"""What the deadline may be overrun by (figure 10)."""

# Catalog model → the fault its workers play, and where it runs.
CATALOG = """
models:
  - {{name: hung, timeouts: {{first_byte: {fb}, idle: {idle}, total: 30}}}}
  - {{name: hung-everywhere, timeouts: {{first_byte: {fb}, idle: {idle}, total: {deadline}}}}}
  - {{name: stalling, timeouts: {{first_byte: 5, idle: {idle}, total: 30}}}}
  - {{name: too-slow, timeouts: {{first_byte: 5, idle: {idle}, total: {deadline}}}}}
routing: {{default_model: hung}}
outlier: {{consecutive_failures: 1000}}  # every scenario reaches its worker: none is ejected
workers:
  - name: a
    kind: vllm
    base_url: {a}/v1
    models:
      - {{name: hung, upstream_id: never-answer}}
      - {{name: hung-everywhere, upstream_id: never-answer}}
      - {{name: stalling, upstream_id: stall-after-3}}
      - {{name: too-slow, upstream_id: slow}}
  - name: b
    kind: vllm
    base_url: {b}/v1
    models: [{{name: hung-everywhere, upstream_id: never-answer}}]
"""


def chat(model: str) -> dict[str, object]:
    return {"model": model, "messages": [{"role": "user", "content": "hi"}], "max_tokens": 50}


@pytest.fixture(scope="module")
def workers() -> Iterator[list[SimulatorThread]]:
    config = SimulatorConfig(kind="vllm", models=(SIM_MODEL,), reply_tokens=(50, 50))
    with ExitStack() as stack:
        yield [stack.enter_context(SimulatorThread(config)) for _ in range(2)]


@pytest.fixture(scope="module")
def gateway(workers: list[SimulatorThread]) -> Iterator[ServerThread]:
    text = CATALOG.format(fb=FIRST_BYTE_S, idle=IDLE_S, deadline=DEADLINE_S, a=workers[0].url, b=workers[1].url)
    with start_gateway(text) as gw:
        yield gw


def timed_post(gateway: ServerThread, model: str) -> tuple[httpx.Response, float]:
    """The answer and how long it took, on a connection opened beforehand."""
    with httpx.Client(base_url=gateway.url, timeout=30) as client:
        assert client.get("/livez").status_code == 200
        began = time.monotonic()
        response = client.post("/v1/chat/completions", json=chat(model))
        return response, time.monotonic() - began


def stream(gateway: ServerThread, model: str) -> StreamSeen:
    async def read() -> StreamSeen:
        async with httpx.AsyncClient(timeout=30) as client:
            return await read_stream(client, gateway.url, chat(model))

    return asyncio.run(read())


def within(value: float, target: float) -> bool:
    return abs(value - target) <= 0.1 * target


def assert_timeout_error(response: httpx.Response) -> None:
    assert response.status_code == 504, response.text
    assert response.json()["error"]["code"] == "upstream_timeout"
    assert set(response.json()["error"]) == {"message", "type", "param", "code"}


@pytest.mark.figure(10)
@pytest.mark.parametrize("streamed", [False, True], ids=["whole", "stream"])
def test_a_worker_that_never_answers_gets_504_at_the_first_byte_timeout(gateway: ServerThread, streamed: bool) -> None:
    if streamed:
        seen = stream(gateway, "hung")
        status, elapsed, body = seen.status, seen.ended_at - seen.began, seen.body
    else:
        response, elapsed = timed_post(gateway, "hung")
        status, body = response.status_code, response.text
    record_figure(10, f"never answers ({'stream' if streamed else 'whole'}): 504 after", round(elapsed, 3), unit="s",
                  threshold=f"{FIRST_BYTE_S:g} s ± 10 % (first-byte timeout)", met=status == 504
                  and within(elapsed, FIRST_BYTE_S))
    assert status == 504, body
    assert '"upstream_timeout"' in body


@pytest.mark.figure(10)
def test_a_hung_request_is_retried_and_still_ends_by_the_deadline(gateway: ServerThread,
                                                                   workers: list[SimulatorThread]) -> None:
    response, elapsed = timed_post(gateway, "hung-everywhere")
    record_figure(10, "never answers on both workers, retried: 504 after", round(elapsed, 3), unit="s",
                  threshold=f"≤ deadline + 100 ms ({DEADLINE_S + SLACK_S:g} s)",
                  met=response.status_code == 504 and elapsed <= DEADLINE_S + SLACK_S)
    assert_timeout_error(response)
    assert all(worker.wait_for(lambda rs: any(r.model == "never-answer" for r in rs), timeout=5) for worker in workers)


@pytest.mark.figure(10)
def test_a_stream_that_stalls_after_3_chunks_gets_an_error_event_at_the_idle_timeout(gateway: ServerThread) -> None:
    seen = stream(gateway, "stalling")
    silence = (seen.error_at or float("nan")) - (seen.piece_times[-1] if seen.piece_times else float("nan"))
    record_figure(10, "stalls after 3 chunks: error event after the last chunk", round(silence, 3), unit="s",
                  threshold=f"{IDLE_S:g} s ± 10 % (idle timeout)",
                  met=seen.ended_with_error_then_done and within(silence, IDLE_S))
    assert seen.status == 200 and len(seen.pieces) == 3
    assert seen.ended_with_error_then_done, seen
    assert seen.error is not None and seen.error["code"] == "upstream_timeout"
    assert seen.finish_reason is None


@pytest.mark.figure(10)
def test_a_worker_slower_than_the_deadline_is_cut_at_the_deadline(gateway: ServerThread) -> None:
    response, elapsed = timed_post(gateway, "too-slow")
    seen = stream(gateway, "too-slow")
    streamed = (seen.error_at or float("nan")) - seen.began
    bound = f"≤ deadline + 100 ms ({DEADLINE_S + SLACK_S:g} s)"
    record_figure(10, "outlasts the deadline (whole): 504 after", round(elapsed, 3), unit="s", threshold=bound,
                  met=response.status_code == 504 and elapsed <= DEADLINE_S + SLACK_S)
    record_figure(10, "outlasts the deadline (stream): error event after", round(streamed, 3), unit="s",
                  threshold=bound, met=seen.ended_with_error_then_done and streamed <= DEADLINE_S + SLACK_S)
    assert_timeout_error(response)
    assert seen.status == 200 and seen.pieces  # it was streaming when the deadline came
    assert seen.ended_with_error_then_done, seen
    assert seen.error is not None and seen.error["code"] == "upstream_timeout"
    assert seen.finish_reason is None
