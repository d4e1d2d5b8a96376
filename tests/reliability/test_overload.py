"""Figure 9: overload protection. Workers with `max_concurrent`, a bounded queue per model, and 503
`queue_full` / `queue_timeout` with `Retry-After` past it.

Asserted: the worker never holds more than `max_concurrent` of the gateway's requests; the queue is first
come first served and bounded; a request refused or given up is an OpenAI error with `Retry-After`; every
response under 5x capacity is a 200 or such a 503. Recorded (figure 9): the 503s' p99, the accepted
requests' p99 against the unloaded p99, and the gateway's memory before and after the load.
RELIABILITY_OVERLOAD_SECONDS sets the load's length (default 6 s; 60 s under `make reliability`).
"""

from __future__ import annotations

import asyncio
import os
import re
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from simulator import SimulatorConfig, SimulatorThread
from simulator.records import RequestRecord
from testkit.figures import record_figure
from tests.conftest import start_gateway
from tests.servers import gateway_processes

ITL_S = 0.05
"""The simulated worker's time per token: a request for n tokens takes about (n - 1) * ITL_S."""

CATALOG = """
models:
  - name: chat
    queue: {{max_waiting: {max_waiting}, max_wait: {max_wait}, retry_after: 2}}
    fallbacks: [{fallbacks}]
  - name: spare
routing: {{default_model: chat}}
workers:
  - name: busy
    kind: vllm
    base_url: {url}/v1
    max_concurrent: {max_concurrent}
    timeouts: {{connect: 2, first_byte: 60, idle: 30, total: 120}}
    models: [{{name: chat, upstream_id: m-chat}}]
  - name: other
    kind: vllm
    base_url: {url}/v1
    models: [{{name: spare, upstream_id: m-spare}}]
"""


def catalog(url: str, *, max_concurrent: int = 1, max_waiting: int = 1, max_wait: float = 30,
            fallbacks: str = "") -> str:
    return CATALOG.format(url=url, max_concurrent=max_concurrent, max_waiting=max_waiting, max_wait=max_wait,
                          fallbacks=fallbacks)


def chat(tokens: int, *, stream: bool = False) -> dict[str, Any]:
    return {"messages": [{"role": "user", "content": "hi"}], "max_tokens": tokens, "stream": stream}


@pytest.fixture(scope="module")
def worker() -> Iterator[SimulatorThread]:
    config = SimulatorConfig(kind="vllm", models=("m-chat", "m-spare"), reply_tokens=(400, 400), itl_s=ITL_S)
    with SimulatorThread(config) as sim:
        yield sim


@pytest.fixture
def sim(worker: SimulatorThread) -> SimulatorThread:
    worker.reset()
    return worker


def most_at_once(records: list[RequestRecord], model: str) -> int:
    """The most requests for `model` the worker was answering at the same moment."""
    events: list[tuple[float, int]] = []
    for record in records:
        if record.model == model:
            end = record.finished or record.disconnected or time.monotonic()
            events += [(record.started, 1), (end, -1)]
    running = peak = 0
    for _, change in sorted(events):  # at equal times an end (-1) sorts before a start
        running += change
        peak = max(peak, running)
    return peak


def queue_depth(url: str, model: str = "chat") -> float:
    text = httpx.get(url + "/metrics").text
    found = re.search(rf'^llm_gateway_queue_depth\{{model="{re.escape(model)}"\}} (\S+)$', text, re.MULTILINE)
    return float(found.group(1)) if found else 0.0


def wait_until(condition: Any, what: str, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        threading.Event().wait(0.02)


def assert_overloaded(response: httpx.Response, code: str, retry_after: str = "2") -> None:
    assert response.status_code == 503
    assert response.headers["retry-after"] == retry_after
    error = response.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert error["type"] == "server_error" and error["code"] == code


def test_past_the_queue_a_request_is_refused_at_once_and_the_queue_is_first_come_first_served(
        sim: SimulatorThread) -> None:
    with start_gateway(catalog(sim.url, max_concurrent=1, max_waiting=1)) as gw:
        results: dict[str, httpx.Response] = {}

        def send(name: str, tokens: int) -> threading.Thread:
            def run() -> None:
                results[name] = httpx.post(gw.url + "/v1/chat/completions", json=chat(tokens), timeout=60)
            thread = threading.Thread(target=run)
            thread.start()
            return thread

        first = send("first", 40)  # holds the one slot for about 2 s
        wait_until(lambda: len(sim.records) == 1, "the worker to get the first request")
        second = send("second", 2)
        wait_until(lambda: queue_depth(gw.url) == 1, "the second request to wait")
        refused = httpx.post(gw.url + "/v1/chat/completions", json=chat(2), timeout=60)
        assert_overloaded(refused, "queue_full")
        assert "busy" in refused.json()["error"]["message"]
        first.join(60)
        second.join(60)
        assert results["first"].status_code == results["second"].status_code == 200
        assert queue_depth(gw.url) == 0
        assert 'llm_gateway_overload_rejections_total{model="chat",reason="queue_full"} 1.0' in \
            httpx.get(gw.url + "/metrics").text
    records = sim.records
    assert len(records) == 2  # the refused one never reached the worker
    assert records[1].started >= records[0].finished  # type: ignore[operator]  # the second got the freed slot


def test_a_request_that_waits_too_long_gives_up_with_queue_timeout(sim: SimulatorThread) -> None:
    with start_gateway(catalog(sim.url, max_concurrent=1, max_waiting=5, max_wait=0.3)) as gw:
        holder = threading.Thread(target=lambda: httpx.post(gw.url + "/v1/chat/completions", json=chat(60),
                                                            timeout=60))
        holder.start()
        wait_until(lambda: len(sim.records) == 1, "the worker to get the first request")
        assert_overloaded(httpx.post(gw.url + "/v1/chat/completions", json=chat(2), timeout=60), "queue_timeout")
        assert queue_depth(gw.url) == 0
        holder.join(60)
    assert len(sim.records) == 1


def test_a_stream_holds_its_slot_to_its_end_and_a_waiting_client_that_leaves_frees_its_place(
        sim: SimulatorThread) -> None:
    with start_gateway(catalog(sim.url, max_concurrent=1, max_waiting=1)) as gw:
        with httpx.stream("POST", gw.url + "/v1/chat/completions", json=chat(30, stream=True), timeout=60) as stream:
            assert stream.status_code == 200

            async def leave_while_waiting() -> None:
                async with httpx.AsyncClient(timeout=60) as client:
                    waiting = asyncio.create_task(client.post(gw.url + "/v1/chat/completions", json=chat(2)))
                    await asyncio.to_thread(wait_until, lambda: queue_depth(gw.url) == 1, "the request to wait")
                    waiting.cancel()  # the client goes away while in line
                    with pytest.raises(asyncio.CancelledError):
                        await waiting

            asyncio.run(leave_while_waiting())
            wait_until(lambda: queue_depth(gw.url) == 0, "the client that left to leave the queue")
            behind = []
            thread = threading.Thread(target=lambda: behind.append(
                httpx.post(gw.url + "/v1/chat/completions", json=chat(2), timeout=60)))
            thread.start()
            wait_until(lambda: queue_depth(gw.url) == 1, "a request to wait behind the stream")
            events = [line for line in stream.iter_lines() if line.startswith("data: ")]
        assert events[-1] == "data: [DONE]"
        thread.join(60)
        assert behind[0].status_code == 200
    assert most_at_once(sim.records, "m-chat") == 1


def test_a_full_model_falls_back_before_it_queues(sim: SimulatorThread) -> None:
    with start_gateway(catalog(sim.url, max_concurrent=1, max_waiting=0, fallbacks="spare")) as gw:
        holder = threading.Thread(target=lambda: httpx.post(gw.url + "/v1/chat/completions", json=chat(40),
                                                            timeout=60))
        holder.start()
        wait_until(lambda: len(sim.records) == 1, "the worker to get the first request")
        response = httpx.post(gw.url + "/v1/chat/completions", json=chat(2), timeout=60)
        assert response.status_code == 200
        assert response.headers["x-gateway-model"] == "spare"
        assert response.headers["x-gateway-fallback-from"] == "chat"
        holder.join(60)


# Figure 9: five times the capacity for RELIABILITY_OVERLOAD_SECONDS.

OVERLOAD_S = float(os.environ.get("RELIABILITY_OVERLOAD_SECONDS", "6"))
MAX_CONCURRENT = 4
MAX_WAITING = 2
"""Half the capacity: a request waits about half an answer's time at most, so accepted requests stay
within twice the unloaded latency."""
SERVICE_TOKENS = 6
"""A request takes about (6 - 1) * 50 ms = 0.25 s on the worker: the capacity is 4 / 0.25 = 16 requests/s."""
CAPACITY_RPS = MAX_CONCURRENT / ((SERVICE_TOKENS - 1) * ITL_S)


@dataclass
class Outcome:
    status: int
    seconds: float
    retry_after: str | None
    error: dict[str, Any] | None


async def one_request(client: httpx.AsyncClient, url: str) -> Outcome:
    began = time.perf_counter()
    response = await client.post(url + "/v1/chat/completions", json=chat(SERVICE_TOKENS))
    elapsed = time.perf_counter() - began
    error = response.json().get("error") if response.status_code != 200 else None
    return Outcome(response.status_code, elapsed, response.headers.get("retry-after"), error)


async def steady(client: httpx.AsyncClient, url: str, rate: float, seconds: float) -> list[Outcome]:
    """Requests at `rate` per second for `seconds`, each sent on time whatever the others do (open loop)."""
    loop = asyncio.get_running_loop()
    start = loop.time()
    sent: list[asyncio.Task[Outcome]] = []
    while loop.time() - start < seconds:
        sent.append(asyncio.create_task(one_request(client, url)))
        await asyncio.sleep(max(0.0, start + len(sent) / rate - loop.time()))
    return list(await asyncio.gather(*sent))


async def unloaded(client: httpx.AsyncClient, url: str) -> list[Outcome]:
    """Two clients one request after the other: half the capacity, nothing waits."""
    async def sequential(count: int) -> list[Outcome]:
        return [await one_request(client, url) for _ in range(count)]

    halves = await asyncio.gather(sequential(16), sequential(16))
    return halves[0] + halves[1]


def p99(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]


def rss_bytes(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS")


@pytest.mark.figure(9)
def test_five_times_the_capacity_gets_fast_503s_and_the_worker_never_more_than_its_share(
        sim: SimulatorThread, tmp_path: Path) -> None:
    path = tmp_path / "models.yaml"
    path.write_text(catalog(sim.url, max_concurrent=MAX_CONCURRENT, max_waiting=MAX_WAITING, max_wait=30))
    with gateway_processes(path, {}) as [(url, process)]:

        async def scenario() -> tuple[list[Outcome], list[Outcome], list[float]]:
            limits = httpx.Limits(max_connections=1000, max_keepalive_connections=200)
            async with httpx.AsyncClient(limits=limits, timeout=60) as client:
                await unloaded(client, url)  # warm up connections and code paths
                calm = await unloaded(client, url)
                depths: list[float] = []
                loading = asyncio.create_task(steady(client, url, 5 * CAPACITY_RPS, OVERLOAD_S))
                while not loading.done():  # the queue, as /metrics shows it, all along
                    depths.append(await asyncio.to_thread(queue_depth, url))
                    await asyncio.sleep(0.1)
                return calm, await loading, depths

        baseline_rss = rss_bytes(process.pid)
        calm, loaded, depths = asyncio.run(scenario())
        wait_until(lambda: queue_depth(url) == 0, "the queue to empty")
        after_rss = rss_bytes(process.pid)
        assert all(o.status == 200 for o in calm)
        assert {o.status for o in loaded} <= {200, 503}
        refused = [o for o in loaded if o.status == 503]
        accepted = [o for o in loaded if o.status == 200]
        assert refused and accepted  # the load really was past the capacity
        for outcome in refused:
            assert outcome.retry_after == "2"
            assert outcome.error is not None and set(outcome.error) == {"message", "type", "param", "code"}
            assert outcome.error["type"] == "server_error" and outcome.error["code"] in ("queue_full", "queue_timeout")
        assert max(depths) <= MAX_WAITING
    assert most_at_once(sim.records, "m-chat") <= MAX_CONCURRENT

    refused_p99_ms = p99([o.seconds for o in refused]) * 1000
    ratio = p99([o.seconds for o in accepted]) / p99([o.seconds for o in calm])
    growth = after_rss / baseline_rss - 1
    record_figure(9, "offered load (requests/s, capacity x5)", round(len(loaded) / OVERLOAD_S, 1),
                  threshold=f"{5 * CAPACITY_RPS:g} requests/s for {OVERLOAD_S:g} s",
                  met=len(loaded) / OVERLOAD_S >= 4 * CAPACITY_RPS, unit="requests/s")
    refused_p50_ms = sorted(o.seconds for o in refused)[len(refused) // 2] * 1000
    record_figure(9, "503 p99", round(refused_p99_ms, 1), threshold="<= 50 ms", met=refused_p99_ms <= 50, unit="ms")
    record_figure(9, "503 p50", round(refused_p50_ms, 1), threshold="(context)", met=True, unit="ms")
    record_figure(9, "accepted p99 / unloaded p99", round(ratio, 2), threshold="<= 2", met=ratio <= 2)
    record_figure(9, "gateway RSS after the load vs before", f"{after_rss / 2**20:.1f} MB vs "
                  f"{baseline_rss / 2**20:.1f} MB ({growth:+.1%})", threshold="back to baseline (within 10 %)",
                  met=growth <= 0.10)
    record_figure(9, "refused / accepted", f"{len(refused)} / {len(accepted)}", threshold="200 or 503 only",
                  met=True)
