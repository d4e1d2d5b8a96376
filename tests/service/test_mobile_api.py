"""The mobile API under /api, through real gateways in front of simulated workers: chat completions at the
seed's path (openai SDK), coaching chats routed by context type, kept sessions (trimmed, streamed,
isolated between keys, shared by two `llm-gateway serve` processes on one Redis), /api/models from
what workers have, the edge-model catalog, the inference advice, and the OpenAPI schema."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
import redis
import yaml

from gateway.coaching.sessions import (
    MemorySessionStore,
    RedisSessionStore,
    SessionStore,
    message_tokens,
    session_key,
    tokens_of,
)
from gateway.shared_state.redis_client import connect_redis
from simulator import RequestRecord, SimulatorConfig, SimulatorThread
from testkit.loopback import free_port
from tests.conftest import catalog_yaml, start_gateway
from tests.servers import ServerThread

REPO = Path(__file__).resolve().parents[2]
EDGE_MODELS = REPO / "config" / "edge_models.yaml"
ADMIN = "sk-gw-admin-for-mobile-tests"
USER = "sk-gw-user-for-mobile-tests"
BUDGET = 90

COACHING = f"""
defaults: {{max_tokens: 12, temperature: 0.5, history_tokens: 400}}
session_ttl: 3600
inference: {{mode: serverPreferred, on_device_max_prompt_length: 200}}
context_types:
  goals:        # no model, no rule matches: the default model (chat)
    system_prompt: You are a goals coach.
    edge_model: tinyllama-1.1b
  reminders:    # its own model
    system_prompt: Remind briefly.
    model: quick
    edge_model: smollm-360m
    max_tokens: 6
    temperature: 0.2
  quick_tips:   # no model: the rule 'quick|reminder' matches its name
    system_prompt: One tip.
  short_memory:
    system_prompt: You remember little.
    history_tokens: {BUDGET}
  broken:       # streams two chunks, then an error event
    system_prompt: x
    model: mid-stream-error
  slow_one:     # 0.2 s a token
    system_prompt: x
    model: slow
"""
EXPECTED_ROUTES = {"goals": ("chat", "coaching:goals:default"), "reminders": ("quick", "coaching:reminders"),
                   "quick_tips": ("quick", "coaching:quick_tips:quick-rule")}


def bearer(secret: str) -> dict[str, str]:
    return {"authorization": f"Bearer {secret}"}


def user_turn(text: str) -> dict[str, str]:
    return {"role": "user", "content": text}


def chats(sim: SimulatorThread) -> list[RequestRecord]:
    return [r for r in sim.records if r.path == "/v1/chat/completions"]


def last_messages(sim: SimulatorThread) -> list[dict[str, Any]]:
    body = chats(sim)[-1].body
    assert body is not None
    return list(body["messages"])


def coach(url: str, context_type: str, messages: list[dict[str, str]], *, session_id: str | None = None,
          headers: dict[str, str] | None = None, **extra: Any) -> httpx.Response:
    body: dict[str, Any] = {"messages": messages, "context_type": context_type, **extra}
    if session_id is not None:
        body["session_id"] = session_id
    return httpx.post(url + "/api/coaching/chat", json=body, headers=headers or {}, timeout=20)


def sse_data(response: httpx.Response) -> list[str]:
    return [line[len("data: "):] for line in response.iter_lines() if line.startswith("data: ")]


def streamed_text(events: list[str]) -> str:
    parts = []
    for event in events:
        if event != "[DONE]":
            for choice in json.loads(event).get("choices") or ():
                parts.append(choice.get("delta", {}).get("content") or "")
    return "".join(parts)


@pytest.fixture(scope="module")
def coaching_file(tmp_path_factory: pytest.TempPathFactory) -> str:
    path = tmp_path_factory.mktemp("mobile") / "coaching.yaml"
    path.write_text(COACHING)
    return str(path)


def mobile_catalog(sim: SimulatorThread) -> str:
    return catalog_yaml([("sim-a", sim.url)], extra_models=("mid-stream-error", "slow"))


@pytest.fixture(scope="module")
def mobile(vllm_sim: SimulatorThread, coaching_file: str) -> Iterator[ServerThread]:
    """A gateway in open mode (loopback, no keys) with the test coaching catalog."""
    with start_gateway(mobile_catalog(vllm_sim), GATEWAY_COACHING_CONFIG=coaching_file,
                       GATEWAY_EDGE_MODELS_CONFIG=str(EDGE_MODELS)) as gw:
        yield gw


@pytest.fixture(scope="module")
def keyed(vllm_sim: SimulatorThread, coaching_file: str) -> Iterator[ServerThread]:
    with start_gateway(mobile_catalog(vllm_sim), GATEWAY_ADMIN_KEY=ADMIN, LLM_API_KEY=USER,
                       GATEWAY_COACHING_CONFIG=coaching_file, GATEWAY_EDGE_MODELS_CONFIG=str(EDGE_MODELS)) as gw:
        yield gw


def create_key(url: str) -> str:
    response = httpx.post(url + "/admin/keys", json={}, headers=bearer(ADMIN), timeout=10)
    assert response.status_code == 201, response.text
    return str(response.json()["secret"])


# --- /api/chat/completions ----------------------------------------------------------------------------

def test_chat_completions_at_the_seed_path_with_the_openai_sdk(mobile: ServerThread, sim: SimulatorThread) -> None:
    with openai.OpenAI(base_url=mobile.url + "/api", api_key="unused", max_retries=0) as client:
        raw = client.chat.completions.with_raw_response.create(
            model="quick", messages=[{"role": "user", "content": "Give me a motivation tip"}], max_tokens=10)
        completion = raw.parse()
        assert completion.choices[0].message.content
        assert raw.headers["x-gateway-model"] == "quick" and raw.headers["x-gateway-route"] == "explicit"
        body = chats(sim)[-1].body
        assert body is not None and body["model"] == "sim-model" and body["max_tokens"] == 10

        stream = client.chat.completions.create(model="chat", messages=[{"role": "user", "content": "hi"}],
                                                max_tokens=8, stream=True)
        text = "".join(chunk.choices[0].delta.content or "" for chunk in stream if chunk.choices)
    assert text
    routed = httpx.post(mobile.url + "/api/chat/completions", json={"messages": [user_turn("a quick one")]})
    assert routed.status_code == 200 and routed.headers["x-gateway-route"] == "quick-rule"


# --- /api/coaching/chat: routing, defaults, errors ------------------------------------------------------

@pytest.mark.parametrize("context_type", sorted(EXPECTED_ROUTES))
def test_each_context_type_routes_to_its_model(mobile: ServerThread, sim: SimulatorThread,
                                                context_type: str) -> None:
    response = coach(mobile.url, context_type, [user_turn("Help me build a morning routine")])
    assert response.status_code == 200, response.text
    model, route = EXPECTED_ROUTES[context_type]
    assert response.headers["x-gateway-model"] == model
    assert response.headers["x-gateway-route"] == route
    assert response.headers["x-gateway-context-type"] == context_type
    assert response.json()["object"] == "chat.completion"
    body = chats(sim)[-1].body
    assert body is not None
    system = yaml.safe_load(COACHING)["context_types"][context_type]["system_prompt"]
    assert body["messages"] == [{"role": "system", "content": system}, user_turn("Help me build a morning routine")]
    assert "context_type" not in body and "session_id" not in body
    expected = (6, 0.2) if context_type == "reminders" else (12, 0.5)  # the context's, else the defaults
    assert (body["max_tokens"], body["temperature"]) == expected


def test_request_fields_override_the_context_defaults(mobile: ServerThread, sim: SimulatorThread) -> None:
    response = coach(mobile.url, "reminders", [user_turn("water")], max_tokens=3, temperature=1.5, model="chat",
                     top_p=0.9)
    assert response.status_code == 200
    assert response.headers["x-gateway-model"] == "chat" and response.headers["x-gateway-route"] == "explicit"
    body = chats(sim)[-1].body
    assert body is not None and (body["max_tokens"], body["temperature"], body["top_p"]) == (3, 1.5, 0.9)


def test_unknown_or_missing_context_type_is_a_400_listing_the_valid_ones(mobile: ServerThread) -> None:
    for body in ({"messages": [user_turn("hi")], "context_type": "astrology"}, {"messages": [user_turn("hi")]},
                 {"messages": [user_turn("hi")], "context_type": 7}):
        response = httpx.post(mobile.url + "/api/coaching/chat", json=body)
        assert response.status_code == 400
        error = response.json()["error"]
        assert set(error) == {"message", "type", "param", "code"}
        assert error["type"] == "invalid_request_error" and error["param"] == "context_type"
        assert "broken, goals, quick_tips, reminders, short_memory, slow_one" in error["message"]
    bad_session = coach(mobile.url, "goals", [user_turn("hi")], session_id="a:b")
    assert bad_session.status_code == 400 and bad_session.json()["error"]["param"] == "session_id"
    no_messages = httpx.post(mobile.url + "/api/coaching/chat", json={"context_type": "goals"})
    assert no_messages.status_code == 400 and no_messages.json()["error"]["param"] == "messages"


# --- sessions -------------------------------------------------------------------------------------------

def test_a_session_keeps_the_conversation_and_can_be_read_and_cleared(mobile: ServerThread,
                                                                       sim: SimulatorThread) -> None:
    first = coach(mobile.url, "goals", [user_turn("I want to run 5k")], session_id="run-5k")
    assert first.status_code == 200 and first.headers["x-gateway-session"] == "run-5k"
    answer = first.json()["choices"][0]["message"]["content"]
    second = coach(mobile.url, "goals", [user_turn("By June")], session_id="run-5k")
    assert second.status_code == 200
    assert last_messages(sim) == [{"role": "system", "content": "You are a goals coach."},
                                  user_turn("I want to run 5k"), {"role": "assistant", "content": answer},
                                  user_turn("By June")]
    history = httpx.get(mobile.url + "/api/coaching/sessions/run-5k").json()
    assert history["id"] == "run-5k" and history["context_type"] == "goals"
    assert [m["role"] for m in history["messages"]] == ["user", "assistant", "user", "assistant"]
    assert history["messages"][3]["content"] == second.json()["choices"][0]["message"]["content"]
    assert history["expires_at"] - history["updated_at"] == 3600

    deleted = httpx.delete(mobile.url + "/api/coaching/sessions/run-5k")
    assert deleted.json() == {"id": "run-5k", "object": "coaching.session.deleted", "deleted": True}
    gone = httpx.get(mobile.url + "/api/coaching/sessions/run-5k")
    assert gone.status_code == 404 and gone.json()["error"]["code"] == "session_not_found"
    assert httpx.delete(mobile.url + "/api/coaching/sessions/run-5k").status_code == 404
    coach(mobile.url, "goals", [user_turn("Start over")], session_id="run-5k")
    assert last_messages(sim)[1:] == [user_turn("Start over")]  # a cleared session starts empty


def test_trimming_keeps_the_latest_turns_and_always_the_system_prompt(mobile: ServerThread,
                                                                      sim: SimulatorThread) -> None:
    said: list[dict[str, Any]] = []
    for i in range(8):
        turn = user_turn(f"turn {i}: " + "words " * 8)
        response = coach(mobile.url, "short_memory", [turn], session_id="trim")
        assert response.status_code == 200
        sent = last_messages(sim)
        assert sent[0] == {"role": "system", "content": "You remember little."}
        assert sent[-1] == turn
        kept = sent[1:-1]
        assert tokens_of(sent[1:]) <= BUDGET
        assert kept == said[len(said) - len(kept):] if kept else True  # a suffix: the latest turns
        assert not kept or kept[0]["role"] == "user"  # never an answer without its question
        said += [turn, {"role": "assistant", "content": response.json()["choices"][0]["message"]["content"]}]
    assert "turn 0" not in json.dumps(last_messages(sim))  # the oldest turns are gone ...
    assert len(last_messages(sim)) >= 4  # ... the latest are there
    stored = httpx.get(mobile.url + "/api/coaching/sessions/trim").json()["messages"]
    assert tokens_of(stored) <= BUDGET and stored == said[len(said) - len(stored):]


def test_a_streamed_turn_is_passed_through_and_kept(mobile: ServerThread, sim: SimulatorThread) -> None:
    body = {"messages": [user_turn("Remind me to stretch")], "context_type": "reminders", "session_id": "stretch",
            "stream": True}
    with httpx.stream("POST", mobile.url + "/api/coaching/chat", json=body, timeout=20) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        assert response.headers["x-gateway-model"] == "quick"
        events = sse_data(response)
    assert events[-1] == "[DONE]" and not any('"error"' in e for e in events)
    text = streamed_text(events)
    assert text
    history = httpx.get(mobile.url + "/api/coaching/sessions/stretch").json()["messages"]
    assert history == [user_turn("Remind me to stretch"), {"role": "assistant", "content": text}]
    # The next turn, not streamed, carries the streamed answer.
    coach(mobile.url, "reminders", [user_turn("And to drink water")], session_id="stretch")
    assert last_messages(sim)[1:] == [*history, user_turn("And to drink water")]


def test_a_stream_that_fails_is_not_kept(mobile: ServerThread) -> None:
    body = {"messages": [user_turn("hi")], "context_type": "broken", "session_id": "broken-one", "stream": True}
    with httpx.stream("POST", mobile.url + "/api/coaching/chat", json=body, timeout=20) as response:
        events = sse_data(response)
    assert events[-1] == "[DONE]" and "error" in json.loads(events[-2])
    assert httpx.get(mobile.url + "/api/coaching/sessions/broken-one").status_code == 404


def test_a_client_that_leaves_a_coaching_stream_frees_the_worker_and_keeps_nothing(mobile: ServerThread,
                                                                                   sim: SimulatorThread) -> None:
    body = {"messages": [user_turn("hi")], "context_type": "slow_one", "session_id": "left", "stream": True,
            "max_tokens": 50}
    with httpx.stream("POST", mobile.url + "/api/coaching/chat", json=body, timeout=20) as response:
        for line in response.iter_lines():
            if '"content"' in line:
                break  # leave after the first token
    assert sim.wait_for(lambda rs: any(r.model == "slow" and r.disconnected for r in rs), timeout=5)
    [record] = [r for r in sim.records if r.model == "slow"]
    assert len(record.chunk_times) < 20  # it stopped long before its 50 tokens
    assert httpx.get(mobile.url + "/api/coaching/sessions/left").status_code == 404


def test_a_session_is_only_reachable_with_the_key_that_made_it(keyed: ServerThread, sim: SimulatorThread) -> None:
    alice, bob = create_key(keyed.url), create_key(keyed.url)
    made = coach(keyed.url, "goals", [user_turn("Alice's secret goal")], session_id="shared-name",
                 headers=bearer(alice))
    assert made.status_code == 200
    assert httpx.get(keyed.url + "/api/coaching/sessions/shared-name", headers=bearer(bob)).status_code == 404
    assert httpx.delete(keyed.url + "/api/coaching/sessions/shared-name", headers=bearer(bob)).status_code == 404
    coach(keyed.url, "goals", [user_turn("Bob's goal")], session_id="shared-name", headers=bearer(bob))
    assert "Alice" not in json.dumps(last_messages(sim))  # the same id is another session for Bob
    mine = httpx.get(keyed.url + "/api/coaching/sessions/shared-name", headers=bearer(alice)).json()
    assert mine["messages"][0] == user_turn("Alice's secret goal") and len(mine["messages"]) == 2


@pytest.fixture
def two_replicas(vllm_sim: SimulatorThread, redis_url: str, tmp_path: Path,
                 coaching_file: str) -> Iterator[list[str]]:
    """Two `llm-gateway serve` processes sharing one Redis."""
    client = redis.Redis.from_url(redis_url)
    client.flushdb()
    client.close()
    catalog = tmp_path / "models.yaml"
    catalog.write_text(mobile_catalog(vllm_sim))
    urls, processes = [], []
    try:
        for _ in range(2):
            port = free_port()
            env = {**os.environ, "GATEWAY_PORT": str(port), "REDIS_URL": redis_url, "GATEWAY_ADMIN_KEY": ADMIN,
                   "LOG_LEVEL": "warning",
                   "GATEWAY_COACHING_CONFIG": coaching_file, "GATEWAY_EDGE_MODELS_CONFIG": str(EDGE_MODELS)}
            processes.append(subprocess.Popen(
                [sys.executable, "-m", "gateway", "serve", "--no-local-workers", "--config", str(catalog)],
                env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
            urls.append(f"http://127.0.0.1:{port}")
        deadline = time.monotonic() + 30
        for url in urls:
            while True:
                try:
                    if httpx.get(url + "/api/inference-config", headers=bearer(ADMIN), timeout=1).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                assert time.monotonic() < deadline, "a replica did not start"
                threading.Event().wait(0.1)
        yield urls
    finally:
        for process in processes:
            process.send_signal(signal.SIGTERM)
        for process in processes:
            process.wait(timeout=15)


def test_sessions_persist_across_two_gateway_processes(two_replicas: list[str], sim: SimulatorThread,
                                                       redis_url: str) -> None:
    first, second = two_replicas
    key = create_key(first)
    one = coach(first, "goals", [user_turn("Plan my week")], session_id="week", headers=bearer(key))
    assert one.status_code == 200
    answer = one.json()["choices"][0]["message"]["content"]
    two = coach(second, "goals", [user_turn("Add yoga")], session_id="week", headers=bearer(key))
    assert two.status_code == 200
    assert last_messages(sim)[1:] == [user_turn("Plan my week"), {"role": "assistant", "content": answer},
                                      user_turn("Add yoga")]
    history = httpx.get(first + "/api/coaching/sessions/week", headers=bearer(key)).json()
    assert len(history["messages"]) == 4
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    try:
        [name] = client.keys("llmgw:session:*")
        assert isinstance(name, str) and name.endswith(":week")
        assert 3_500_000 < client.pttl(name) <= 3_600_000  # session_ttl, refreshed by the last turn
    finally:
        client.close()
    assert httpx.delete(second + "/api/coaching/sessions/week", headers=bearer(key)).status_code == 200
    assert httpx.get(first + "/api/coaching/sessions/week", headers=bearer(key)).status_code == 404


# --- /api/models, /api/edge-models, /api/inference-config ----------------------------------------------

@pytest.fixture(scope="module")
def ollama_sim() -> Iterator[SimulatorThread]:
    with SimulatorThread(SimulatorConfig(kind="ollama", models=("llama3.2:3b",), seed=3)) as sim:
        yield sim


def test_api_models_lists_what_workers_have_with_sizes(vllm_sim: SimulatorThread,
                                                       ollama_sim: SimulatorThread) -> None:
    catalog = f"""
models: [{{name: chat}}, {{name: "llama3.2:3b"}}, {{name: not-pulled}}, {{name: no-worker}}]
routing: {{default_model: chat}}
workers:
  - {{name: gpu, kind: vllm, base_url: "{vllm_sim.url}/v1", models: [{{name: chat, upstream_id: sim-model}}]}}
  - {{name: cpu, kind: ollama, base_url: "{ollama_sim.url}", models: ["llama3.2:3b", not-pulled]}}
"""
    with start_gateway(catalog) as gw:  # the default coaching catalog: its models are not all here (a warning)
        response = httpx.get(gw.url + "/api/models")
    assert response.status_code == 200
    assert response.json() == {"models": [{"id": "chat", "name": "chat", "size": None},
                                          {"id": "llama3.2:3b", "name": "llama3.2:3b", "size": 270_000_000}]}


def test_api_models_shows_only_the_models_a_key_may_use(keyed: ServerThread) -> None:
    response = httpx.post(keyed.url + "/admin/keys", json={"models": ["quick"]}, headers=bearer(ADMIN))
    secret = response.json()["secret"]
    listed = httpx.get(keyed.url + "/api/models", headers=bearer(secret)).json()
    assert listed == {"models": [{"id": "quick", "name": "quick", "size": None}]}
    everything = httpx.get(keyed.url + "/api/models", headers=bearer(USER)).json()["models"]
    assert [m["id"] for m in everything] == ["chat", "quick", "mid-stream-error", "slow"]


def test_edge_models_serves_the_catalog_file_as_written(mobile: ServerThread) -> None:
    response = httpx.get(mobile.url + "/api/edge-models")
    assert response.status_code == 200
    assert response.json() == yaml.safe_load(EDGE_MODELS.read_text())
    assert response.json()["defaults"] == {"ios": "tinyllama-1.1b", "android": "tinyllama-1.1b",
                                           "low_memory": "smollm-360m"}


def test_inference_config_advises_the_app(mobile: ServerThread) -> None:
    advice = httpx.get(mobile.url + "/api/inference-config").json()
    assert advice["mode"] == "serverPreferred" and advice["on_device_max_prompt_length"] == 200
    assert advice["modes"] == ["serverOnly", "onDeviceOnly", "onDevicePreferred", "serverPreferred", "auto"]
    assert advice["edge_defaults"]["low_memory"] == "smollm-360m"
    assert advice["context_types"]["reminders"] == {"server_model": "quick", "edge_model": "smollm-360m",
                                                    "on_device": True}
    assert advice["context_types"]["quick_tips"] == {"server_model": "quick", "edge_model": None,
                                                     "on_device": False}
    assert advice["context_types"]["goals"]["server_model"] == "chat"


# --- keys, schema ---------------------------------------------------------------------------------------

API_ROUTES = [("POST", "/api/chat/completions", {"messages": [user_turn("hi")]}),
              ("POST", "/api/coaching/chat", {"messages": [user_turn("hi")], "context_type": "goals"}),
              ("GET", "/api/coaching/sessions/x", None), ("DELETE", "/api/coaching/sessions/x", None),
              ("GET", "/api/models", None), ("GET", "/api/edge-models", None), ("GET", "/api/inference-config", None)]


@pytest.mark.parametrize(("method", "path", "body"), API_ROUTES)
def test_every_api_route_needs_a_key(keyed: ServerThread, method: str, path: str, body: object) -> None:
    refused = httpx.request(method, keyed.url + path, json=body)
    assert refused.status_code == 401 and refused.json()["error"]["code"] == "missing_api_key"
    accepted = httpx.request(method, keyed.url + path, json=body, headers=bearer(USER), timeout=20)
    assert accepted.status_code in (200, 404), accepted.text  # 404: no such session


def test_the_openapi_schema_covers_v1_and_api(mobile: ServerThread) -> None:
    schema = httpx.get(mobile.url + "/schema/openapi.json").json()
    paths = schema["paths"]
    for method, path, _ in API_ROUTES:
        template = path.replace("/sessions/x", "/sessions/{session_id}")
        operation = paths[template][method.lower()]
        assert operation["summary"] and operation["tags"] == ["mobile"]
    assert "/v1/chat/completions" in paths and "/v1/models" in paths
    body = paths["/api/coaching/chat"]["post"]["requestBody"]["content"]["application/json"]
    assert body["schema"]["required"] == ["messages", "context_type"]


# --- the session stores, memory and Redis ------------------------------------------------------------

StoreFactory = Callable[..., SessionStore]


@pytest.fixture(params=["memory", "redis"])
async def session_stores(request: pytest.FixtureRequest) -> AsyncIterator[StoreFactory]:
    made: list[SessionStore] = []

    def make(clock: Callable[[], float] = time.time) -> SessionStore:
        if request.param == "memory":
            store: SessionStore = MemorySessionStore(max_sessions=3, clock=clock)
        else:
            url = request.getfixturevalue("redis_url")
            store = RedisSessionStore(connect_redis(url, command_timeout_s=5.0), prefix="llmgw-test:", clock=clock)
        made.append(store)
        return store

    if request.param == "redis":
        client = redis.Redis.from_url(request.getfixturevalue("redis_url"))
        client.flushdb()
        client.close()
    yield make
    for store in made:
        await store.close()


async def test_stores_append_trim_expire_and_delete(session_stores: StoreFactory) -> None:
    store = session_stores()
    key = session_key("key:key_a", "s")
    assert await store.get(key) is None
    turn = [user_turn("x" * 40), {"role": "assistant", "content": "y" * 40}]
    for _ in range(5):
        session = await store.append(key, turn, context_type="goals", budget_tokens=3 * message_tokens(turn[0]),
                                     ttl_s=60)
    assert session.messages == turn  # 3 messages fit: the leading answer is dropped, one whole turn stays
    stored = await store.get(key)
    assert stored is not None and stored.messages == turn and stored.context_type == "goals"
    assert await store.get(session_key("key:key_b", "s")) is None
    assert await store.delete(key) and not await store.delete(key)
    assert await store.get(key) is None


async def test_stores_expire_sessions_after_their_ttl(session_stores: StoreFactory) -> None:
    store = session_stores()
    await store.append("key:k:short", [user_turn("hi")], context_type="goals", budget_tokens=100, ttl_s=0.2)
    assert await store.get("key:k:short") is not None
    await asyncio.sleep(0.3)
    assert await store.get("key:k:short") is None


async def test_concurrent_turns_are_all_kept(session_stores: StoreFactory) -> None:
    stores = [session_stores(), session_stores()]  # two replicas (memory: two handles of one process)
    if isinstance(stores[0], MemorySessionStore):
        stores = [stores[0], stores[0]]
    await asyncio.gather(*(stores[i % 2].append("key:k:busy", [user_turn(f"m{i}")], context_type="goals",
                                                budget_tokens=10_000, ttl_s=60) for i in range(8)))
    session = await stores[0].get("key:k:busy")
    assert session is not None
    assert sorted(m["content"] for m in session.messages) == sorted(f"m{i}" for i in range(8))
