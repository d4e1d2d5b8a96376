"""Honest streams: relayed as produced, comments ignored, failures become an error event and [DONE]."""

from __future__ import annotations

import json
import time

import httpx
import openai
import pytest

from simulator import SimulatorConfig, SimulatorThread
from tests.conftest import SIM_MODEL, catalog_yaml, start_gateway
from tests.servers import ServerThread


def sse_events(response: httpx.Response) -> list[str]:
    return [line[len("data: "):] for line in response.iter_lines() if line.startswith("data: ")]


def stream_chat(gateway: ServerThread, model: str, **extra: object) -> tuple[httpx.Response, list[str]]:
    body = {"model": model, "messages": [{"role": "user", "content": "hi"}], "stream": True, **extra}
    with httpx.stream("POST", gateway.url + "/v1/chat/completions", json=body, timeout=20) as response:
        return response, sse_events(response)


@pytest.mark.parametrize("fault", ["drop-mid-stream", "mid-stream-error", "no-done", "done-without-finish",
                                   "garbage-sse", "stall-after-3"])
def test_broken_streams_end_with_an_error_event_then_done(gateway: ServerThread, fault: str) -> None:
    response, events = stream_chat(gateway, fault)
    assert response.status_code == 200
    assert events[-1] == "[DONE]"
    error = json.loads(events[-2])["error"]
    assert set(error) == {"message", "type", "param", "code"}
    if fault != "no-done":  # (that worker did send its own finish chunk, only no [DONE])
        finishes = [c.get("finish_reason") for e in events[:-2] for c in json.loads(e).get("choices", [])]
        assert "stop" not in finishes  # never a made-up success


def test_openai_sdk_raises_on_a_broken_stream(gateway: ServerThread) -> None:
    c = openai.OpenAI(base_url=gateway.url + "/v1", api_key="k", max_retries=0)
    with pytest.raises(openai.APIError):
        list(c.chat.completions.create(model="drop-mid-stream", messages=[{"role": "user", "content": "x"}],
                                       stream=True))


def test_keepalive_comments_are_dropped() -> None:
    config = SimulatorConfig(kind="vllm", models=(SIM_MODEL,), keepalive_comments=True)
    with SimulatorThread(config) as sim, start_gateway(catalog_yaml([("w", sim.url)])) as gw:
        body = {"model": "chat", "messages": [{"role": "user", "content": "hi"}], "stream": True}
        with httpx.stream("POST", gw.url + "/v1/chat/completions", json=body) as response:
            lines = [line for line in response.iter_lines() if line]
        assert lines[-1] == "data: [DONE]"
        assert all(line.startswith("data: ") for line in lines)


def test_chunks_arrive_as_the_worker_produces_them() -> None:
    config = SimulatorConfig(kind="vllm", models=(SIM_MODEL,), itl_s=0.15)
    with SimulatorThread(config) as sim, start_gateway(catalog_yaml([("w", sim.url)])) as gw:
        body = {"model": "chat", "messages": [{"role": "user", "content": "hi"}], "stream": True,
                "max_tokens": 6}
        arrivals: list[float] = []
        with httpx.stream("POST", gw.url + "/v1/chat/completions", json=body) as response:
            for line in response.iter_lines():
                if line.startswith("data: {"):
                    choices = json.loads(line[6:]).get("choices") or [{}]
                    if choices[0].get("delta", {}).get("content"):
                        arrivals.append(time.monotonic())
        assert sim.wait_for(lambda rs: any(r.path == "/v1/chat/completions" and r.finished for r in rs), timeout=5)
        [record] = [r for r in sim.records if r.path == "/v1/chat/completions"]
        assert len(arrivals) >= 4
        # The first content chunk reached the client before the worker wrote its last one:
        # nothing waited for the whole stream.
        assert arrivals[0] < record.chunk_times[-1]
        # Each content chunk reached the client before the worker wrote the one after it (no batching).
        # chunk_times: the role chunk, then one per token, then the finish and usage chunks.
        content_writes = record.chunk_times[1:1 + len(arrivals)]
        assert all(arrival < next_write for arrival, next_write in zip(arrivals, content_writes[1:], strict=False))
