"""The response cache (figures 7 and 8): tenant-safe, replays streams, coalesces identical misses,
never stores failures, honours Cache-Control."""

from __future__ import annotations

import asyncio
import json
import signal
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from simulator import SimulatorConfig, SimulatorThread
from testkit.figures import record_figure
from tests.conftest import SIM_MODEL, catalog_yaml, start_gateway
from tests.reliability.asgi_workers import Answer, answering_worker
from tests.servers import ServerThread, gateway_processes

ADMIN = "sk-gw-admin-for-cache-tests"


def chat(text: str, **extra: object) -> dict[str, object]:
    return {"model": "chat", "messages": [{"role": "user", "content": text}], "temperature": 0, "max_tokens": 64,
            **extra}


def worker_calls(sim: SimulatorThread, text: str) -> int:
    return sum(1 for r in sim.records if r.path == "/v1/chat/completions" and text in json.dumps(r.body))


def content_of(response: httpx.Response) -> str:
    return str(response.json()["choices"][0]["message"]["content"])


def streamed(url: str, body: dict[str, object], **headers: str) -> tuple[httpx.Response, list[dict[str, object]]]:
    with httpx.stream("POST", url + "/v1/chat/completions", json={**body, "stream": True}, headers=headers) as r:
        events = [json.loads(line[6:]) for line in r.iter_lines() if line.startswith("data: {")]
    return r, events


def text_of(events: list[dict[str, object]]) -> str:
    return "".join(c["delta"].get("content") or "" for e in events for c in e["choices"])  # type: ignore[attr-defined]


@pytest.fixture(scope="module")
def cached(vllm_sim: SimulatorThread) -> Iterator[ServerThread]:
    tips_worker = (f"  - name: tips\n    kind: vllm\n    base_url: {vllm_sim.url}/v1\n"
                   f"    models: [{{name: tips, upstream_id: {SIM_MODEL}}}]\n")
    text = catalog_yaml([("w", vllm_sim.url)], extra_models=("drop-mid-stream", "error-500"),
                        tail=tips_worker).replace("  - name: quick\n", "  - name: quick\n  - name: tips\n") \
        .replace("routes:\n", "routes:\n    - {pattern: 'daily tip', model: tips, name: daily-tips, "
                 "cache: {enabled: true, ttl: 3600}}\n")
    with start_gateway(text, GATEWAY_ADMIN_KEY=ADMIN) as gw:
        yield gw


def key(gw: ServerThread, **spec: object) -> dict[str, str]:
    response = httpx.post(gw.url + "/admin/keys", json=spec, headers={"authorization": f"Bearer {ADMIN}"})
    assert response.status_code == 201, response.text
    return {"authorization": f"Bearer {response.json()['secret']}"}


def test_a_deterministic_request_is_answered_once(cached: ServerThread, vllm_sim: SimulatorThread) -> None:
    team = key(cached)
    prompt = f"cache me {uuid.uuid4()}"
    first = httpx.post(cached.url + "/v1/chat/completions", json=chat(prompt), headers=team)
    second = httpx.post(cached.url + "/v1/chat/completions", json=chat(prompt), headers=team)
    assert (first.headers["x-gateway-cache"], second.headers["x-gateway-cache"]) == ("miss", "hit")
    assert content_of(first) == content_of(second) and first.json()["id"] != second.json()["id"]
    assert second.json()["usage"] == first.json()["usage"]
    assert worker_calls(vllm_sim, prompt) == 1


def test_other_requests_are_not_cached(cached: ServerThread, vllm_sim: SimulatorThread) -> None:
    team = key(cached)
    prompt = f"creative {uuid.uuid4()}"
    body = {**chat(prompt), "temperature": 0.8}
    assert [httpx.post(cached.url + "/v1/chat/completions", json=body, headers=team).headers["x-gateway-cache"]
            for _ in range(2)] == ["bypass", "bypass"]
    assert worker_calls(vllm_sim, prompt) == 2
    seeded = {**body, "seed": 7}
    assert [httpx.post(cached.url + "/v1/chat/completions", json=seeded, headers=team).headers["x-gateway-cache"]
            for _ in range(2)] == ["miss", "hit"]


def test_a_route_can_opt_in(cached: ServerThread, vllm_sim: SimulatorThread) -> None:
    team = key(cached)
    body = {"messages": [{"role": "user", "content": f"my daily tip {uuid.uuid4()}"}], "temperature": 0.9,
            "max_tokens": 64}
    results = [httpx.post(cached.url + "/v1/chat/completions", json=body, headers=team) for _ in range(2)]
    assert [r.headers["x-gateway-cache"] for r in results] == ["miss", "hit"]
    assert results[1].headers["x-gateway-route"] == "daily-tips"


@pytest.mark.figure(7)
def test_tenants_never_see_each_others_answers(cached: ServerThread, vllm_sim: SimulatorThread) -> None:
    alpha1, alpha2 = key(cached, metadata={"team": "alpha"}), key(cached, metadata={"team": "alpha"})
    beta = key(cached, metadata={"team": "beta"})
    prompt = f"tenant {uuid.uuid4()}"
    assert httpx.post(cached.url + "/v1/chat/completions", json=chat(prompt), headers=alpha1) \
        .headers["x-gateway-cache"] == "miss"
    other_team = httpx.post(cached.url + "/v1/chat/completions", json=chat(prompt), headers=beta)
    record_figure(7, "another tenant's identical request served from the cache", other_team.headers["x-gateway-cache"],
                  threshold="miss (never a cross-tenant hit)", met=other_team.headers["x-gateway-cache"] == "miss")
    assert other_team.headers["x-gateway-cache"] == "miss"  # another team: its own entry
    assert httpx.post(cached.url + "/v1/chat/completions", json=chat(prompt), headers=alpha2) \
        .headers["x-gateway-cache"] == "hit"  # the same team shares
    assert worker_calls(vllm_sim, prompt) == 2


def test_streams_are_stored_and_replayed_either_way(cached: ServerThread, vllm_sim: SimulatorThread) -> None:
    team = key(cached)
    prompt = f"stream {uuid.uuid4()}"
    first, events = streamed(cached.url, chat(prompt, stream_options={"include_usage": True}), **team)
    assert first.headers["x-gateway-cache"] == "miss"
    again, replayed = streamed(cached.url, chat(prompt, stream_options={"include_usage": True}), **team)
    assert again.headers["x-gateway-cache"] == "hit"
    strip = [{k: v for k, v in e.items() if k not in ("id", "created")} for e in events]
    assert [{k: v for k, v in e.items() if k not in ("id", "created")} for e in replayed] == strip  # byte-equal
    whole = httpx.post(cached.url + "/v1/chat/completions", json=chat(prompt), headers=team)
    assert whole.headers["x-gateway-cache"] == "hit" and content_of(whole) == text_of(events)
    _, without_usage = streamed(cached.url, chat(prompt), **team)
    assert all(e["choices"] for e in without_usage)  # no usage chunk when not asked for
    # And the reverse: a stored whole answer serves a stream.
    other = f"whole first {uuid.uuid4()}"
    stored = httpx.post(cached.url + "/v1/chat/completions", json=chat(other), headers=team)
    hit, chunks = streamed(cached.url, chat(other), **team)
    assert hit.headers["x-gateway-cache"] == "hit" and text_of(chunks) == content_of(stored)
    assert worker_calls(vllm_sim, prompt) == 1 and worker_calls(vllm_sim, other) == 1


def thinking_worker_answer(raw: bytes) -> Answer:
    """A reasoning model's worker: its stream carries `reasoning_content` before the content; a whole answer
    (which the test never needs: the cache serves those) says so."""
    if not json.loads(raw).get("stream"):
        body = {"id": "w", "object": "chat.completion", "created": 1, "model": SIM_MODEL, "choices": [
            {"index": 0, "message": {"role": "assistant", "content": "asked the worker"}, "finish_reason": "stop"}]}
        return 200, [(b"content-type", b"application/json")], [json.dumps(body).encode()]
    head = {"id": "chatcmpl-w", "object": "chat.completion.chunk", "created": 1, "model": SIM_MODEL}
    deltas = [{"role": "assistant", "reasoning_content": "Six "}, {"reasoning_content": "times seven."},
              {"content": "42"}]
    chunks = [{**head, "choices": [{"index": 0, "delta": d, "finish_reason": None}]} for d in deltas]
    chunks += [{**head, "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]},
               {**head, "choices": [], "usage": {"prompt_tokens": 5, "completion_tokens": 3, "total_tokens": 8}}]
    events = [b"data: " + json.dumps(chunk).encode() + b"\n\n" for chunk in chunks] + [b"data: [DONE]\n\n"]
    return 200, [(b"content-type", b"text/event-stream")], events


def test_a_cached_stream_replays_its_reasoning_as_json_and_as_a_stream() -> None:
    with ServerThread(answering_worker(thinking_worker_answer)) as worker, \
            start_gateway(catalog_yaml([("thinker", worker.url)])) as gw:
        body = chat(f"think {uuid.uuid4()}")
        first, _ = streamed(gw.url, body)
        assert first.headers["x-gateway-cache"] == "miss"
        whole = httpx.post(gw.url + "/v1/chat/completions", json=body)
        assert whole.headers["x-gateway-cache"] == "hit"
        assert whole.json()["choices"][0]["message"] == {"role": "assistant", "content": "42",
                                                         "reasoning_content": "Six times seven."}
        again, events = streamed(gw.url, body)
        assert again.headers["x-gateway-cache"] == "hit"
        deltas = [c["delta"] for e in events for c in e["choices"]]  # type: ignore[attr-defined]
        assert "".join(d.get("reasoning_content") or "" for d in deltas) == "Six times seven."
        assert "".join(d.get("content") or "" for d in deltas) == "42"


@pytest.mark.figure(8)
def test_failures_and_cut_answers_leave_no_entry(cached: ServerThread, vllm_sim: SimulatorThread) -> None:
    team = key(cached)
    cut = f"cut {uuid.uuid4()}"
    for _ in range(2):
        streamed(cached.url, {**chat(cut), "model": "drop-mid-stream"}, **team)
    calls = sum(1 for r in vllm_sim.records if cut in json.dumps(r.body))
    record_figure(8, "upstream calls for a cut stream asked twice", calls, threshold="2 (no entry left)",
                  met=calls == 2)
    assert calls == 2
    failing = f"fail {uuid.uuid4()}"
    for _ in range(2):
        httpx.post(cached.url + "/v1/chat/completions", json={**chat(failing), "model": "error-500"}, headers=team)
    assert sum(1 for r in vllm_sim.records if failing in json.dumps(r.body)) == 2
    short = f"short {uuid.uuid4()}"
    for _ in range(2):
        httpx.post(cached.url + "/v1/chat/completions", json=chat(short, max_tokens=1), headers=team)
    assert worker_calls(vllm_sim, short) == 2  # finish_reason "length" is not stored


@pytest.mark.figure(7)
def test_cache_control(cached: ServerThread, vllm_sim: SimulatorThread) -> None:
    team = key(cached)
    prompt = f"control {uuid.uuid4()}"

    def post(**extra: str) -> httpx.Response:
        return httpx.post(cached.url + "/v1/chat/completions", json=chat(prompt), headers={**team, **extra})

    seen = [post(**{"cache-control": "no-store"}).headers["x-gateway-cache"], post().headers["x-gateway-cache"],
            post().headers["x-gateway-cache"], post(**{"cache-control": "no-cache"}).headers["x-gateway-cache"]]
    record_figure(7, "no-store, then plain twice, then no-cache", " / ".join(seen),
                  threshold="miss / miss / hit / bypass", met=seen == ["miss", "miss", "hit", "bypass"])
    assert seen == ["miss", "miss", "hit", "bypass"]  # no-store stored nothing; no-cache skipped the entry
    assert worker_calls(vllm_sim, prompt) == 3
    locked = key(cached, cache_control=False)  # this key may not bypass the cache
    prompt2 = f"locked {uuid.uuid4()}"
    for expected in ("miss", "hit"):
        response = httpx.post(cached.url + "/v1/chat/completions", json=chat(prompt2),
                              headers={**locked, "cache-control": "no-cache, no-store"})
        assert response.headers["x-gateway-cache"] == expected


@pytest.mark.figure(8)
def test_a_cold_burst_reaches_the_worker_once() -> None:
    config = SimulatorConfig(kind="vllm", models=(SIM_MODEL,), ttft_overhead_s=0.3)
    with SimulatorThread(config) as slow, start_gateway(catalog_yaml([("w", slow.url)])) as gw:
        prompt = f"burst {uuid.uuid4()}"

        async def burst() -> list[httpx.Response]:
            async with httpx.AsyncClient(timeout=30, limits=httpx.Limits(max_connections=100)) as client:
                return list(await asyncio.gather(*(
                    client.post(gw.url + "/v1/chat/completions", json=chat(prompt)) for _ in range(100))))

        responses = asyncio.run(burst())
        assert all(r.status_code == 200 for r in responses)
        assert len({content_of(r) for r in responses}) == 1
        results = [r.headers["x-gateway-cache"] for r in responses]
        record_figure(8, "upstream calls for 100 identical requests on a cold cache", worker_calls(slow, prompt),
                      threshold="1", met=worker_calls(slow, prompt) == 1)
        assert results.count("miss") == 1 and results.count("coalesced") + results.count("hit") == 99
        assert worker_calls(slow, prompt) == 1


def test_coalescing_across_two_gateway_processes(redis_url: str, tmp_path: Path) -> None:
    config = SimulatorConfig(kind="vllm", models=(SIM_MODEL,), ttft_overhead_s=0.5)
    with SimulatorThread(config) as slow:
        catalog = tmp_path / "models.yaml"
        catalog.write_text(catalog_yaml([("w", slow.url)]))
        with gateway_processes(catalog, {"REDIS_URL": redis_url}, count=2, stop_signal=signal.SIGINT) as started:
            urls = [url for url, _process in started]
            prompt = f"two replicas {uuid.uuid4()}"

            async def burst() -> list[httpx.Response]:
                async with httpx.AsyncClient(timeout=30) as client:
                    return list(await asyncio.gather(*(
                        client.post(urls[i % 2] + "/v1/chat/completions", json=chat(prompt)) for i in range(40))))

            responses = asyncio.run(burst())
            assert all(r.status_code == 200 for r in responses)
            assert worker_calls(slow, prompt) == 1


def test_every_redis_cache_key_has_a_ttl_and_entries_are_bounded(vllm_sim: SimulatorThread, redis_url: str) -> None:
    import redis

    with start_gateway(catalog_yaml([("w", vllm_sim.url)]), REDIS_URL=redis_url,
                       GATEWAY_CACHE_MAX_ENTRY_BYTES="200") as gw:
        prompt = f"bounded {uuid.uuid4()}"
        for _ in range(2):
            httpx.post(gw.url + "/v1/chat/completions", json=chat(prompt))
        assert worker_calls(vllm_sim, prompt) == 2  # too large for a 200-byte entry: not stored
    with start_gateway(catalog_yaml([("w", vllm_sim.url)]), REDIS_URL=redis_url) as gw:
        stored = f"stored {uuid.uuid4()}"
        for _ in range(2):
            httpx.post(gw.url + "/v1/chat/completions", json=chat(stored))
        assert worker_calls(vllm_sim, stored) == 1
    client = redis.Redis.from_url(redis_url)
    names = list(client.scan_iter(match="llmgw:cache:*"))
    assert names and all(client.pttl(name) > 0 for name in names)
    client.close()
