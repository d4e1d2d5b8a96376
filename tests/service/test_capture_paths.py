"""Interaction capture through the mobile paths, against a real gateway and the simulated vLLM worker:
`/api/chat/completions` and `/api/coaching/chat` enter the same inference handler as `/v1/*`, so an
opted-in key (or rule) captures them, whole and streamed, the record naming the path it came by, and
nothing is captured without an opt-in. A coaching turn is captured as the model saw it (system prompt,
kept history, new messages) and its session is still kept.

Captures are read once the gateway has stopped: shutting down writes everything queued."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import pytest

from gateway.capture.store import read_records
from simulator import SimulatorThread
from tests.conftest import catalog_yaml, start_gateway
from tests.servers import ServerThread

ADMIN = "sk-gw-capture-paths-admin-0123"
COACHING = """
defaults: {max_tokens: 12, temperature: 0.5, history_tokens: 400}
context_types:
  goals:        # no rule matches its name: the default model (chat)
    system_prompt: You are a goals coach.
  quick_tips:   # the rule 'quick|reminder' matches its name
    system_prompt: One tip.
"""
QUESTION = "Help me build a morning routine"
PATHS = ("/api/chat/completions", "/api/coaching/chat")


def gateway_for(sim: SimulatorThread, captures: Path, *, rule_captures: bool = False) -> ServerThread:
    coaching = captures.parent / "coaching.yaml"
    coaching.write_text(COACHING)
    text = catalog_yaml([("sim-a", sim.url)])
    if rule_captures:
        text = text.replace("name: quick-rule}", "name: quick-rule, capture: true}")
    return start_gateway(text, GATEWAY_ADMIN_KEY=ADMIN, GATEWAY_CAPTURE_DIR=str(captures),
                         GATEWAY_COACHING_CONFIG=str(coaching))


def new_key(gw: ServerThread, **metadata: str) -> str:
    response = httpx.post(gw.url + "/admin/keys", json={"metadata": metadata},
                          headers={"Authorization": f"Bearer {ADMIN}"})
    assert response.status_code == 201, response.text
    return str(response.json()["secret"])


def ask(gw: ServerThread, path: str, key: str, content: str = QUESTION, *, stream: bool = False,
        context_type: str = "goals", session_id: str | None = None) -> tuple[httpx.Response, str]:
    """POST one question to `path`; the response and the answer's text as the client saw it."""
    body: dict[str, Any] = {"messages": [{"role": "user", "content": content}], "stream": stream}
    if path == "/api/coaching/chat":
        body["context_type"] = context_type
        if session_id is not None:
            body["session_id"] = session_id
    headers = {"Authorization": f"Bearer {key}"}
    with httpx.stream("POST", gw.url + path, json=body, headers=headers, timeout=20) as response:
        response.read()
    assert response.status_code == 200, response.text
    if not stream:
        return response, str(response.json()["choices"][0]["message"]["content"])
    data = [line[len("data: "):] for line in response.text.splitlines() if line.startswith("data: ")]
    assert data[-1] == "[DONE]"
    chunks = [json.loads(d) for d in data[:-1]]
    return response, "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks if c["choices"])


def interactions(directory: Path) -> list[dict[str, Any]]:
    return [r for r in read_records(directory) if r["type"] == "interaction"]


@pytest.mark.parametrize("stream", [False, True])
@pytest.mark.parametrize("path", PATHS)
def test_an_opted_in_key_is_captured_on_each_mobile_path(vllm_sim: SimulatorThread, tmp_path: Path, path: str,
                                                         stream: bool) -> None:
    captures = tmp_path / "captures"
    with gateway_for(vllm_sim, captures) as gw:
        key = new_key(gw, team="coaching", capture="true")
        response, answer = ask(gw, path, key, stream=stream, session_id="mornings")
        rated = httpx.post(gw.url + "/v1/feedback", json={"request_id": response.headers["x-request-id"], "rating": 5},
                           headers={"Authorization": f"Bearer {key}"})
        assert rated.status_code == 201  # the interaction is there to rate
        if path == "/api/coaching/chat":  # the turn still keeps its session
            session = httpx.get(gw.url + "/api/coaching/sessions/mornings", headers={"Authorization": f"Bearer {key}"})
            assert [m["content"] for m in session.json()["messages"]] == [QUESTION, answer]
    [captured] = interactions(captures)
    assert (captured["path"], captured["endpoint"], captured["stream"]) == (path, "chat/completions", stream)
    assert captured["request_id"] == response.headers["x-request-id"]
    assert (captured["model"], captured["route"]) == ("chat", response.headers["x-gateway-route"])
    assert captured["tenant"] == "coaching" and captured["error"] is None
    assert captured["response"]["choices"][0]["message"]["content"] == answer
    question = {"role": "user", "content": QUESTION}
    if path == "/api/coaching/chat":  # as the model saw it: the context's system prompt first
        assert captured["route"] == "coaching:goals:default"
        assert captured["request"]["messages"] == [{"role": "system", "content": "You are a goals coach."}, question]
        assert captured["request"]["max_tokens"] == 12 and "context_type" not in captured["request"]
    else:
        assert captured["request"]["messages"] == [question]


@pytest.mark.parametrize("path", PATHS)
def test_nothing_is_captured_on_the_mobile_paths_without_an_opt_in(vllm_sim: SimulatorThread, tmp_path: Path,
                                                                   path: str) -> None:
    captures = tmp_path / "captures"
    with gateway_for(vllm_sim, captures) as gw:
        for key in (new_key(gw), new_key(gw, team="t", capture="false"), ADMIN):
            for stream in (False, True):
                ask(gw, path, key, stream=stream, session_id="kept")
    assert not captures.exists()


@pytest.mark.parametrize("path", PATHS)
def test_a_routing_rule_opts_the_mobile_paths_in_unless_the_key_opts_out(vllm_sim: SimulatorThread,
                                                                          tmp_path: Path, path: str) -> None:
    captures = tmp_path / "captures"
    with gateway_for(vllm_sim, captures, rule_captures=True) as gw:
        for key in (new_key(gw, team="in"), new_key(gw, team="out", capture="false")):
            ask(gw, path, key, "a quick tip please", context_type="quick_tips")  # routed by the rule
            ask(gw, path, key, stream=True)  # the default model: no rule, nothing opts in
    [captured] = interactions(captures)
    assert captured["tenant"] == "in" and captured["model"] == "quick" and captured["path"] == path
    expected_route = "coaching:quick_tips:quick-rule" if path == "/api/coaching/chat" else "quick-rule"
    assert captured["route"] == expected_route
