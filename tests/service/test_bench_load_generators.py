"""The benchmark's load generators against a real server on loopback: the open-loop generator sends
what it is asked at the rate asked and counts every answer, failure and unanswered request; the
cache-miss wrk script never repeats a body, the cache-hit one always does."""

from __future__ import annotations

import asyncio
import json
import shutil
from collections.abc import Awaitable, Callable, Iterator, MutableMapping
from typing import Any

import pytest

from benchmarks.load import open_loop, workloads, wrk
from tests.asgi_body import read_body
from tests.servers import ServerThread

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]


class Upstream:
    """An ASGI app answering POSTs like a chat completion endpoint and keeping the bodies it got;
    `/fail` answers 500, `/stall` answers after 2 s (past the generator's timeout in the test)."""

    def __init__(self) -> None:
        self.bodies: list[bytes] = []

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        body = await read_body(receive)
        self.bodies.append(body)
        if scope["path"] == "/stall":
            await asyncio.sleep(2.0)
        status = 500 if scope["path"] == "/fail" else 200
        answer = json.dumps({"choices": [{"message": {"content": "ok"}}]}).encode()
        headers = [(b"content-type", b"application/json"), (b"content-length", str(len(answer)).encode())]
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": answer})


@pytest.fixture
def upstream() -> Iterator[tuple[Upstream, str]]:
    app = Upstream()
    with ServerThread(app) as server:  # type: ignore[arg-type]
        yield app, server.url


async def test_open_loop_sends_at_the_rate_and_counts_every_answer(upstream: tuple[Upstream, str]) -> None:
    app, url = upstream
    figures = await open_loop.generate(f"{url}/v1/chat/completions", 40.0, 1.0, warmup_s=0.25, workload="cache-miss")
    assert figures["sent"] == 40 and figures["completed"] == 40
    assert figures["errors"] == dict.fromkeys(open_loop.ERROR_KINDS, 0)
    assert len(app.bodies) == 50 and len(set(app.bodies)) == 50  # warm-up included; every body new
    latency = figures["latency_ms"]
    assert isinstance(latency, dict) and set(latency) == {f"p{q:g}" for q in open_loop.PERCENTILES}


async def test_open_loop_counts_failures_and_unanswered_requests(upstream: tuple[Upstream, str]) -> None:
    _, url = upstream
    failed = await open_loop.generate(f"{url}/fail", 20.0, 0.5, warmup_s=0.0)
    assert failed["completed"] == 0 and failed["errors"]["non_2xx"] == 10  # type: ignore[index]
    stalled = await open_loop.generate(f"{url}/stall", 20.0, 0.5, warmup_s=0.0, timeout_s=0.5)
    assert stalled["completed"] == 0 and stalled["errors"]["timeout"] == 10  # type: ignore[index]
    assert stalled["connections_opened"] == 10  # each waiting request got a connection of its own


@pytest.mark.skipif(shutil.which("wrk") is None, reason="wrk is not installed (apt-get install -y wrk)")
@pytest.mark.parametrize("workload", ["cache-miss", "cache-hit"])
async def test_wrk_cache_scripts_vary_the_body_or_keep_it(upstream: tuple[Upstream, str], workload: str) -> None:
    app, url = upstream
    script = workloads.WORKLOADS[workload].script
    first = await wrk.run(f"{url}/v1/chat/completions", 2, 1, script=script, script_args=["run1"])
    second = await wrk.run(f"{url}/v1/chat/completions", 2, 1, script=script, script_args=["run2"])
    assert first.requests > 0 and second.requests > 0 and first.error_count == second.error_count == 0
    bodies = [json.loads(body) for body in app.bodies]
    assert all(body["temperature"] == 0 and body["model"] == "bench" for body in bodies)
    distinct = {body["messages"][0]["content"] for body in bodies}
    if workload == "cache-miss":
        assert len(distinct) == len(bodies)  # across connections and across runs
    else:
        assert distinct == {"Say ok"}
