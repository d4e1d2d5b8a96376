"""Streams the worker cut before a choice finished (`[DONE]` with no `finish_reason`, the simulator's
`done-without-finish`, as llama-cpp-python's server ends a request it interrupts): the client gets the
content, then an error event the SDK raises, then `[DONE]`; the request is logged as an upstream
failure, is not cached, and what was streamed is charged to the key's budget."""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Iterator, MutableMapping
from typing import Any

import httpx
import openai
import pytest
import structlog

from simulator import SimulatorThread
from tests.conftest import catalog_yaml, start_gateway
from tests.reliability.asgi_workers import Answer, answering_worker
from tests.servers import ServerThread

ADMIN = "sk-gw-admin-for-cut-stream-tests"
CUT = "done-without-finish"
BUDGET = 1_000_000


@pytest.fixture(scope="module")
def gateway(vllm_sim: SimulatorThread) -> Iterator[ServerThread]:
    """A keyed gateway (cache on, by default) in front of the simulator; `done-without-finish` is a model."""
    with start_gateway(catalog_yaml([("w", vllm_sim.url)], extra_models=(CUT,)), GATEWAY_ADMIN_KEY=ADMIN,
                       LOG_LEVEL="info") as gw:
        yield gw


def budgeted_key(gw: ServerThread) -> str:
    response = httpx.post(gw.url + "/admin/keys", json={"limits": {"token_budget": BUDGET}},
                          headers={"authorization": f"Bearer {ADMIN}"})
    assert response.status_code == 201, response.text
    return str(response.json()["secret"])


def budget_used(gw: ServerThread, secret: str) -> int:
    usage = httpx.get(gw.url + "/v1/usage", headers={"authorization": f"Bearer {secret}"}).json()
    return BUDGET - int(usage["remaining"]["budget"])


def request_line(logs: list[MutableMapping[str, Any]], request_id: str) -> MutableMapping[str, Any]:
    """The canonical log line of `request_id`, once it is written (after the response is out)."""
    deadline = time.monotonic() + 5
    while not (lines := [e for e in logs if e["event"] == "request" and e.get("request_id") == request_id]):
        assert time.monotonic() < deadline, "no log line for " + request_id
        threading.Event().wait(0.01)
    [line] = lines
    return line


def test_the_sdk_raises_after_the_content(gateway: ServerThread) -> None:
    client = openai.OpenAI(base_url=gateway.url + "/v1", api_key=budgeted_key(gateway), max_retries=0)
    pieces: list[str] = []
    with pytest.raises(openai.APIError, match="before choice 0 finished"):
        for chunk in client.chat.completions.create(model=CUT, messages=[{"role": "user", "content": "hi"}],
                                                    stream=True):
            pieces.extend(c.delta.content for c in chunk.choices if c.delta.content)
            assert all(c.finish_reason is None for c in chunk.choices)  # never a made-up finish
    assert len(pieces) == 3
    texts: list[str] = []
    with pytest.raises(openai.APIError, match="before choice 0 finished"):
        for completion in client.completions.create(model=CUT, prompt="Once upon a time", stream=True):
            texts.extend(c.text for c in completion.choices if c.text)
    assert len(texts) == 3


def test_the_error_event_is_an_upstream_error_then_done(gateway: ServerThread) -> None:
    body = {"model": CUT, "messages": [{"role": "user", "content": "hi"}], "stream": True,
            "stream_options": {"include_usage": True}}
    headers = {"authorization": f"Bearer {budgeted_key(gateway)}"}
    with httpx.stream("POST", gateway.url + "/v1/chat/completions", json=body, headers=headers) as response:
        events = [line[6:] for line in response.iter_lines() if line.startswith("data: ")]
    assert response.status_code == 200 and events[-1] == "[DONE]"
    assert json.loads(events[-2]) == {"error": {
        "message": "worker 'w' ended the stream before choice 0 finished (no finish_reason)",
        "type": "api_error", "param": None, "code": "upstream_error"}}
    assert not any("usage" in json.loads(e) and json.loads(e)["usage"] for e in events[:-2])  # none made up


def test_it_is_logged_as_a_failure_charged_what_was_streamed_and_not_cached(
        gateway: ServerThread, vllm_sim: SimulatorThread) -> None:
    secret = budgeted_key(gateway)
    tag = uuid.uuid4().hex
    prompt = f"cut me {tag}"
    body = {"model": CUT, "messages": [{"role": "user", "content": prompt}], "temperature": 0, "max_tokens": 50,
            "stream": True}
    caches = []
    with structlog.testing.capture_logs() as logs:
        for attempt in range(2):
            headers = {"authorization": f"Bearer {secret}", "x-request-id": f"cut-{attempt}-{tag}"}
            with httpx.stream("POST", gateway.url + "/v1/chat/completions", json=body, headers=headers) as response:
                caches.append(response.headers["x-gateway-cache"])
                assert response.read().rstrip().endswith(b"data: [DONE]")
        lines = [request_line(logs, f"cut-{attempt}-{tag}") for attempt in range(2)]
    assert caches == ["miss", "miss"]
    assert sum(1 for r in vllm_sim.records if prompt in json.dumps(r.body)) == 2  # the worker, both times
    for line in lines:
        assert line["error"] == "upstream_error" and line["status"] == 200
        assert line["tokens_out"] == 3 and line["tokens_counted"] is True and line["tokens_in"] > 0
    charged = sum(line["tokens_in"] + line["tokens_out"] for line in lines)
    deadline = time.monotonic() + 5  # settled as the stream ends
    while budget_used(gateway, secret) != charged:
        assert time.monotonic() < deadline, (budget_used(gateway, secret), charged)
        threading.Event().wait(0.02)


def two_choices(second_finishes: bool) -> Answer:
    """A worker's `n: 2` stream whose choice 0 finishes and choice 1 only if `second_finishes`."""

    def event(index: int, content: str, finish: str | None = None) -> bytes:
        chunk = {"id": "cmpl-2", "object": "chat.completion.chunk", "created": 1, "model": "sim-model",
                 "choices": [{"index": index, "delta": {"content": content}, "finish_reason": finish}]}
        return b"data: " + json.dumps(chunk).encode() + b"\n\n"

    pieces = [event(0, "Hel"), event(1, "Bon"), event(0, "lo", "stop"), event(1, "jour")]
    if second_finishes:
        pieces.append(event(1, "", "stop"))
    return 200, [(b"content-type", b"text/event-stream")], [*pieces, b"data: [DONE]\n\n"]


@pytest.mark.parametrize("second_finishes", [False, True])
def test_n_2_is_whole_only_when_both_choices_finish(second_finishes: bool) -> None:
    with ServerThread(answering_worker(lambda _body: two_choices(second_finishes))) as worker, \
            start_gateway(catalog_yaml([("w", worker.url)])) as gw:
        body = {"model": "chat", "messages": [{"role": "user", "content": "hi"}], "n": 2, "stream": True}
        with httpx.stream("POST", gw.url + "/v1/chat/completions", json=body) as response:
            events = [json.loads(line[6:]) for line in response.iter_lines() if line.startswith("data: {")]
    contents = [c["delta"]["content"] for e in events if "choices" in e for c in e["choices"]]
    assert contents[:4] == ["Hel", "Bon", "lo", "jour"]
    if second_finishes:
        assert not any("error" in e for e in events)
    else:
        assert events[-1]["error"]["message"] == "worker 'w' ended the stream before choice 1 finished " \
                                                 "(no finish_reason)"


def upstream_errors(gw: ServerThread, worker: str, code: str) -> float:
    for line in httpx.get(gw.url + "/metrics").text.splitlines():
        if line.startswith("llm_gateway_upstream_errors_total{") and f'worker="{worker}"' in line \
                and f'kind="{code}"' in line:
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def test_a_cut_stream_counts_as_the_workers_failure(gateway: ServerThread) -> None:
    """Dashboards see broken streams too, not only failures before the first byte."""
    before = upstream_errors(gateway, "w", "upstream_error")
    client = openai.OpenAI(base_url=gateway.url + "/v1", api_key=budgeted_key(gateway), max_retries=0)
    with pytest.raises(openai.APIError):
        for _chunk in client.chat.completions.create(model=CUT, messages=[{"role": "user", "content": "count"}],
                                                     stream=True):
            pass
    deadline = time.monotonic() + 5
    while upstream_errors(gateway, "w", "upstream_error") == before:
        assert time.monotonic() < deadline, "the cut stream was not counted"
        threading.Event().wait(0.05)
