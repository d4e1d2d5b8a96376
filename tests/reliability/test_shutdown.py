"""Figure 11: graceful shutdown. A real `llm-gateway serve` process in front of a slow simulated worker,
50 streams and 50 non-streaming calls in flight, then SIGTERM.

Asserted: readiness fails and a new request gets 503 `shutting_down` (with `Retry-After` and
`Connection: close`) while the drain runs; every non-streaming call completes with 200; every stream
(each outlives the drain) ends with the `shutting_down` error event then `[DONE]`, never a made-up
finish; the process exits. Recorded: how soon readiness failed, when the streams were ended, and when
the process exited against the drain. RELIABILITY_DRAIN_SECONDS sets the drain (default 3 s; 30 s under
`make reliability`).
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from gateway.errors import ShuttingDown
from gateway.protocols.base import StreamRelay
from gateway.protocols.registry import PROTOCOL_BY_KIND
from gateway.upstream.sse_relay import DONE, StreamCutoff, StreamOutcome
from simulator import SimulatorConfig, SimulatorThread, start_simulator
from simulator.records import RequestRecord
from testkit.figures import record_figure
from tests.conftest import SIM_MODEL, catalog_yaml
from tests.reliability.sse_client import StreamSeen, read_stream
from tests.servers import gateway_processes
from tests.upstream_streams import stream_opener

DRAIN_S = float(os.environ.get("RELIABILITY_DRAIN_SECONDS", "3"))
STREAMS = CALLS = 50
ITL_S = 0.1
CALL_TOKENS = 12
"""A non-streaming call takes about 1.1 s on the worker: well within the drain."""
STREAM_TOKENS = int((DRAIN_S + 20) / ITL_S)
"""Every stream outlives the drain by 20 s: the drain deadline must end it."""
ERROR_FIELDS = {"message", "type", "param", "code"}


@pytest.fixture(scope="module")
def worker() -> Iterator[SimulatorThread]:
    config = SimulatorConfig(kind="vllm", models=(SIM_MODEL,), itl_s=ITL_S, reply_tokens=(STREAM_TOKENS, STREAM_TOKENS))
    with SimulatorThread(config) as sim:
        yield sim


def chat(i: int, tokens: int) -> dict[str, Any]:
    return {"messages": [{"role": "user", "content": f"request {i}"}], "max_tokens": tokens}


def is_call(record: RequestRecord) -> bool:
    """A non-streaming call the worker got (not a health check or a load scrape)."""
    return record.path == "/v1/chat/completions" and not record.stream


async def call(client: httpx.AsyncClient, url: str, i: int) -> httpx.Response:
    return await client.post(url + "/v1/chat/completions", json=chat(i, CALL_TOKENS))


async def readiness_fails(url: str) -> float:
    """Poll `/readyz` (a new connection each time, as a probe does) until it answers 503; when it did."""
    async with asyncio.timeout(30):
        while True:
            async with httpx.AsyncClient(timeout=5) as probe:
                if (await probe.get(url + "/readyz")).status_code == 503:
                    return time.monotonic()
            await asyncio.sleep(0.01)


def assert_shutting_down(response: httpx.Response) -> None:
    assert response.status_code == 503
    assert response.headers["retry-after"] == "1" and response.headers["connection"] == "close"
    error = response.json()["error"]
    assert set(error) == ERROR_FIELDS and error["type"] == "server_error" and error["code"] == "shutting_down"


def assert_ended_by_the_drain(stream: StreamSeen) -> None:
    assert stream.status == 200
    assert stream.ended_with_error_then_done, "a stream must end with an error event then [DONE]"
    assert stream.finish_reason is None  # never a made-up finish
    assert stream.error is not None and set(stream.error) == ERROR_FIELDS
    assert stream.error["code"] == "shutting_down"


@pytest.mark.figure(11)
def test_sigterm_drains_calls_ends_streams_with_an_error_event_and_exits(worker: SimulatorThread,
                                                                        tmp_path: Path) -> None:
    worker.reset()
    catalog = tmp_path / "models.yaml"
    catalog.write_text(catalog_yaml([("w", worker.url)], idle=30.0, first_byte=30.0))
    with gateway_processes(catalog, {"GATEWAY_DRAIN_SECONDS": f"{DRAIN_S:g}"}) as [(url, process)]:

        async def scenario() -> dict[str, Any]:
            first_tokens = asyncio.Semaphore(0)
            limits = httpx.Limits(max_connections=STREAMS + CALLS + 10)
            async with httpx.AsyncClient(timeout=120, limits=limits) as client:
                streams = [asyncio.create_task(read_stream(client, url, chat(i, STREAM_TOKENS), first_tokens.release))
                           for i in range(STREAMS)]
                calls = [asyncio.create_task(call(client, url, i)) for i in range(CALLS)]
                async with asyncio.timeout(60):  # every stream under way, every call at the worker
                    for _ in range(STREAMS):
                        await first_tokens.acquire()
                    assert await asyncio.to_thread(
                        worker.wait_for, lambda records: sum(map(is_call, records)) == CALLS, 60)
                calls_at_worker = sum(is_call(r) and r.finished is None for r in worker.records)
                sigterm_at = time.monotonic()
                process.send_signal(signal.SIGTERM)
                not_ready_at = await readiness_fails(url)
                async with httpx.AsyncClient(timeout=10) as newcomer:
                    refused = await newcomer.post(url + "/v1/chat/completions", json=chat(0, 2))
                seen = await asyncio.gather(*streams)
                answers = await asyncio.gather(*calls)
                exit_code = await asyncio.to_thread(process.wait, DRAIN_S + 30)
                return {"calls_at_worker": calls_at_worker, "sigterm_at": sigterm_at, "not_ready_at": not_ready_at,
                        "refused": refused, "streams": seen, "answers": answers, "exit_code": exit_code,
                        "exited_at": time.monotonic()}

        outcome = asyncio.run(scenario())

    assert_shutting_down(outcome["refused"])
    answers: list[httpx.Response] = outcome["answers"]
    assert [a.status_code for a in answers] == [200] * CALLS
    assert all(a.json()["choices"][0]["message"]["content"] for a in answers)
    streams: list[StreamSeen] = outcome["streams"]
    for stream in streams:
        assert_ended_by_the_drain(stream)
    assert outcome["exit_code"] in (0, -signal.SIGTERM)  # uvicorn re-raises the signal it handled

    sigterm_at = outcome["sigterm_at"]
    not_ready_s = outcome["not_ready_at"] - sigterm_at
    last_error_s = max(s.error_at or 0.0 for s in streams) - sigterm_at
    exit_s = outcome["exited_at"] - sigterm_at
    record_figure(11, "readiness failed after SIGTERM", round(not_ready_s, 3), threshold="<= 1 s",
                  met=not_ready_s <= 1, unit="s")
    record_figure(11, "non-streaming calls completed (in flight at SIGTERM)",
                  f"{CALLS}/{CALLS} ({outcome['calls_at_worker']} in flight)", threshold="all complete", met=True)
    record_figure(11, "streams ended with an error event then [DONE] (last one after SIGTERM)",
                  f"{STREAMS}/{STREAMS} (at {last_error_s:.2f} s, drain {DRAIN_S:g} s)",
                  threshold="every stream open at the deadline", met=True)
    record_figure(11, "process exit after SIGTERM", round(exit_s, 2), threshold=f"<= drain + 2 s ({DRAIN_S + 2:g} s)",
                  met=exit_s <= DRAIN_S + 2, unit="s")


def test_worker_processes_drain_too(worker: SimulatorThread, tmp_path: Path) -> None:
    """GATEWAY_WORKERS=2: SIGTERM reaches uvicorn's supervisor, which passes it to each worker process;
    each one drains, ends its streams at the deadline and exits."""
    worker.reset()
    catalog = tmp_path / "models.yaml"
    catalog.write_text(catalog_yaml([("w", worker.url)], idle=30.0, first_byte=30.0))
    env = {"GATEWAY_DRAIN_SECONDS": "2", "GATEWAY_WORKERS": "2"}
    with gateway_processes(catalog, env) as [(url, process)]:

        async def scenario() -> tuple[list[StreamSeen], httpx.Response]:
            first_tokens = asyncio.Semaphore(0)
            async with httpx.AsyncClient(timeout=60) as client:
                streams = [asyncio.create_task(read_stream(client, url, chat(i, STREAM_TOKENS), first_tokens.release))
                           for i in range(6)]
                async with asyncio.timeout(60):
                    for _ in streams:
                        await first_tokens.acquire()
                process.send_signal(signal.SIGTERM)
                await readiness_fails(url)
                async with httpx.AsyncClient(timeout=10) as newcomer:
                    refused = await newcomer.post(url + "/v1/chat/completions", json=chat(0, 2))
                return list(await asyncio.gather(*streams)), refused

        streams, refused = asyncio.run(scenario())
        assert_shutting_down(refused)
        for stream in streams:
            assert_ended_by_the_drain(stream)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            pytest.fail("the gateway's processes did not exit after the drain")


@pytest.mark.parametrize("kind", ["vllm", "ollama"])
async def test_a_cut_ends_a_relayed_stream_with_an_error_event_then_done(kind: str) -> None:
    """What the drain deadline does to each open stream, in both relays (through each protocol): the read under
    way is woken, and the client gets the `shutting_down` error event and `[DONE]`; the worker's response is
    closed."""
    config = SimulatorConfig(kind="vllm" if kind == "vllm" else "ollama", models=(SIM_MODEL,), itl_s=30.0,
                             reply_tokens=(5, 5))
    outcomes: list[StreamOutcome] = []
    cutoff = StreamCutoff()
    body = {"model": SIM_MODEL, "messages": [{"role": "user", "content": "hi"}], "stream": True}
    async with start_simulator(config) as sim, stream_opener() as session:
        deadline = asyncio.get_running_loop().time() + 120
        response = await session.post(sim.url + ("/v1/chat/completions" if kind == "vllm" else "/api/chat"), body)
        stream = PROTOCOL_BY_KIND[kind]().relay(response, StreamRelay(
            worker_name="w", upstream_model=SIM_MODEL, endpoint="chat/completions", request_id="r", idle_timeout=60,
            deadline=deadline, client_wants_usage=False, prompt_tokens_estimate=1, on_end=outcomes.append,
            capture=None, cutoff=cutoff))
        events = [await anext(stream)]
        while b'"content":""' in events[-1] or b'"content": ""' in events[-1]:  # vLLM's opening chunk
            events.append(await anext(stream))
        waiting = asyncio.ensure_future(anext(stream))  # the next token is 30 s away
        await asyncio.sleep(0.05)
        assert not waiting.done()  # the relay waits in a read: the cut must wake it
        cutoff.cut(ShuttingDown("The gateway is shutting down."))
        async with asyncio.timeout(10):  # far less than the 30 s the worker would take
            events.append(await waiting)
            events += [event async for event in stream]
    assert events[-1] == DONE
    error = json.loads(events[-2].removeprefix(b"data: "))["error"]
    assert error["code"] == "shutting_down" and error["type"] == "server_error"
    assert not any(b'"finish_reason":"stop"' in e or b'"finish_reason": "stop"' in e for e in events)
    [outcome] = outcomes
    assert isinstance(outcome.error, ShuttingDown) and not outcome.completed
    assert response.closed
