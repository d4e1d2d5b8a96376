"""Interaction capture against a real gateway and the simulated vLLM worker: what is captured equals
what the client saw (redacted), nothing is captured without an opt-in, feedback attaches to the
caller's own tenant only, and the fine-tuning sets exported from it parse and count right.

Captures are read once the gateway has stopped: shutting down writes everything queued."""

from __future__ import annotations

import argparse
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from gateway.capture.redaction import EMAIL, PHONE, Redactor
from gateway.capture.store import read_records
from gateway.cli import dataset as dataset_cli
from simulator import SimulatorConfig, SimulatorThread
from tests.conftest import FAULT_MODELS, SIM_MODEL, catalog_yaml, start_gateway
from tests.servers import ServerThread

ADMIN = "sk-gw-capture-admin-0123456789"
PII_ANSWER = "Sure: write to coach@example.com or call +1 (555) 123-4567 today."


@pytest.fixture(scope="module")
def pii_sim() -> Iterator[SimulatorThread]:
    """A worker whose every answer holds an e-mail address and a phone number."""
    config = SimulatorConfig(kind="vllm", models=(SIM_MODEL,), seed=3, response_text=PII_ANSWER)
    with SimulatorThread(config) as sim:
        yield sim


def gateway_for(sim: SimulatorThread, directory: Path, extra_models: tuple[str, ...] = FAULT_MODELS) -> ServerThread:
    text = catalog_yaml([("sim-a", sim.url)], idle=1.0, first_byte=3.0, extra_models=extra_models)
    return start_gateway(text, GATEWAY_ADMIN_KEY=ADMIN, GATEWAY_CAPTURE_DIR=str(directory))


def new_key(gw: ServerThread, **metadata: str) -> str:
    response = httpx.post(gw.url + "/admin/keys", json={"metadata": metadata},
                          headers={"Authorization": f"Bearer {ADMIN}"})
    assert response.status_code == 201, response.text
    return str(response.json()["secret"])


def chat(gw: ServerThread, key: str, content: str, **extra: Any) -> httpx.Response:
    body = {"model": "chat", "messages": [{"role": "user", "content": content}], **extra}
    return httpx.post(gw.url + "/v1/chat/completions", json=body, timeout=20,
                      headers={"Authorization": f"Bearer {key}"} if key else {})


def stream_chat(gw: ServerThread, key: str, content: str, *, model: str = "chat", **extra: Any
                ) -> tuple[httpx.Response, list[dict[str, Any]]]:
    body = {"model": model, "messages": [{"role": "user", "content": content}], "stream": True, **extra}
    with httpx.stream("POST", gw.url + "/v1/chat/completions", json=body, timeout=20,
                      headers={"Authorization": f"Bearer {key}"}) as response:
        data = [line[len("data: "):] for line in response.iter_lines() if line.startswith("data: ")]
    assert data[-1] == "[DONE]"
    return response, [json.loads(d) for d in data[:-1]]


def feedback(gw: ServerThread, key: str, request_id: str, rating: int, **extra: Any) -> httpx.Response:
    return httpx.post(gw.url + "/v1/feedback", json={"request_id": request_id, "rating": rating, **extra},
                      headers={"Authorization": f"Bearer {key}"})


def interactions(directory: Path) -> list[dict[str, Any]]:
    return [r for r in read_records(directory) if r["type"] == "interaction"]


def test_a_whole_answer_is_captured_as_the_client_saw_it_redacted(pii_sim: SimulatorThread, tmp_path: Path) -> None:
    with gateway_for(pii_sim, tmp_path) as gw:
        key = new_key(gw, team="coaching", capture="true")
        response = chat(gw, key, "I am jane.doe@example.org, phone 020 7946 0958. Any tip?", temperature=0.3)
        assert response.status_code == 200
        seen = response.json()
    assert seen["choices"][0]["message"]["content"] == PII_ANSWER  # the client gets the answer as it is
    [captured] = interactions(tmp_path)
    assert captured["response"] == Redactor().scrub(seen)
    assert captured["response"]["choices"][0]["message"]["content"] == \
        f"Sure: write to {EMAIL} or call {PHONE} today."
    assert captured["request"] == {"messages": [{"role": "user", "content": f"I am {EMAIL}, phone {PHONE}. Any tip?"}],
                                   "temperature": 0.3}
    assert captured["request_id"] == response.headers["x-request-id"]
    assert (captured["model"], captured["worker"], captured["tenant"], captured["stream"]) == \
        ("chat", "sim-a", "coaching", False)
    assert captured["key_id"].startswith("key_") and captured["endpoint"] == "chat/completions"
    assert captured["prompt_tokens"] == seen["usage"]["prompt_tokens"]
    assert captured["completion_tokens"] == seen["usage"]["completion_tokens"]
    assert captured["finish_reason"] == "stop" and captured["error"] is None and captured["latency_ms"] > 0
    assert captured["timestamp"].endswith("Z")


@pytest.mark.parametrize("usage", [False, True])
def test_a_stream_is_captured_as_the_client_saw_it(vllm_sim: SimulatorThread, tmp_path: Path, usage: bool) -> None:
    extra: dict[str, Any] = {"stream_options": {"include_usage": True}} if usage else {}
    with gateway_for(vllm_sim, tmp_path) as gw:
        key = new_key(gw, capture="true")
        response, chunks = stream_chat(gw, key, "Tell me about mornings", max_tokens=12, **extra)
    content = "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks if c["choices"])
    finish = [c["choices"][0]["finish_reason"] for c in chunks if c["choices"] and c["choices"][0]["finish_reason"]]
    [captured] = interactions(tmp_path)
    assert captured["request_id"] == response.headers["x-request-id"] and captured["stream"] is True
    answer = captured["response"]
    assert answer["choices"][0]["message"] == {"role": "assistant", "content": content}
    assert captured["finish_reason"] == answer["choices"][0]["finish_reason"] == finish[-1]
    assert answer["id"] == chunks[0]["id"] and answer["model"] == chunks[0]["model"]
    assert captured["completion_tokens"] == 12 if finish[-1] == "length" else captured["completion_tokens"] > 0
    if usage:
        assert answer["usage"] == chunks[-1]["usage"]
        assert captured["prompt_tokens"] == chunks[-1]["usage"]["prompt_tokens"]
    else:
        assert "usage" not in answer and captured["prompt_tokens"] > 0  # counted by the gateway
    assert captured["ttft_ms"] is not None and captured["error"] is None


@pytest.mark.parametrize("fault", ["mid-stream-error", "drop-mid-stream"])
def test_a_stream_that_failed_is_captured_with_its_error(vllm_sim: SimulatorThread, tmp_path: Path,
                                                         fault: str) -> None:
    with gateway_for(vllm_sim, tmp_path) as gw:
        key = new_key(gw, capture="true")
        _, chunks = stream_chat(gw, key, "hi", model=fault)
    [captured] = interactions(tmp_path)
    assert captured["error"] == chunks[-1]["error"]
    assert captured["response"]["choices"][0]["message"]["content"] == "".join(
        c["choices"][0]["delta"].get("content") or "" for c in chunks[:-1] if c.get("choices"))


def test_a_stream_the_client_left_is_not_captured(tmp_path: Path) -> None:
    config = SimulatorConfig(kind="vllm", models=(SIM_MODEL,), itl_s=0.05, response_text=" ".join(["word"] * 400))
    with SimulatorThread(config) as sim, gateway_for(sim, tmp_path) as gw:
        key = new_key(gw, capture="true")
        body = {"model": "chat", "messages": [{"role": "user", "content": "hi"}], "stream": True}
        with httpx.stream("POST", gw.url + "/v1/chat/completions", json=body,
                          headers={"Authorization": f"Bearer {key}"}) as response:
            for line in response.iter_lines():
                if line.startswith("data: "):
                    break  # leave after the first event
        # the capture's pass-through hands the disconnect on: the worker stops generating
        assert sim.wait_for(lambda rs: any(r.disconnected for r in rs), timeout=5)
        chat(gw, key, "and now a whole one")  # the capture still works after that
    assert [r["request"]["messages"][0]["content"] for r in interactions(tmp_path)] == ["and now a whole one"]


def test_nothing_is_captured_without_an_opt_in(vllm_sim: SimulatorThread, tmp_path: Path) -> None:
    with gateway_for(vllm_sim, tmp_path / "captures") as gw:
        for key in (new_key(gw), new_key(gw, team="t", capture="false"), ADMIN):
            assert chat(gw, key, "hello").status_code == 200
            stream_chat(gw, key, "hello")
            request_id = chat(gw, key, "again").headers["x-request-id"]
            assert feedback(gw, key, request_id, 5).status_code == 404
        embedding = httpx.post(gw.url + "/v1/embeddings", json={"model": "chat", "input": "x"},
                               headers={"Authorization": f"Bearer {new_key(gw, capture='true')}"})
        assert embedding.status_code == 200  # opted in, but embeddings are never captured
    assert not (tmp_path / "captures").exists()


def test_anonymous_callers_are_not_captured_in_open_mode(vllm_sim: SimulatorThread, tmp_path: Path) -> None:
    text = catalog_yaml([("sim-a", vllm_sim.url)])
    with start_gateway(text, GATEWAY_CAPTURE_DIR=str(tmp_path)) as gw:
        assert chat(gw, "", "hello").status_code == 200  # no key: anonymous
    assert list(read_records(tmp_path)) == []


def test_a_route_or_model_can_opt_in(vllm_sim: SimulatorThread, tmp_path: Path) -> None:
    text = (catalog_yaml([("sim-a", vllm_sim.url)])
            .replace("name: quick-rule}", "name: quick-rule, capture: true}")
            .replace("  - name: chat\n", "  - name: chat\n  - name: chat-kept\n    capture: true\n", 1)
            .replace("      - {name: quick, upstream_id: sim-model}", "      - {name: quick, upstream_id: sim-model}\n"
                     "      - {name: chat-kept, upstream_id: sim-model}"))
    with start_gateway(text, GATEWAY_ADMIN_KEY=ADMIN, GATEWAY_CAPTURE_DIR=str(tmp_path)) as gw:
        key, refusing = new_key(gw), new_key(gw, capture="false")
        for who in (key, refusing):
            assert chat(gw, who, "a quick reminder please", model=None).status_code == 200  # the rule
            assert chat(gw, who, "hello", model="chat-kept").status_code == 200  # the model
            assert chat(gw, who, "hello").status_code == 200  # neither
    assert sorted((r["route"], r["model"]) for r in interactions(tmp_path)) == [
        ("explicit", "chat-kept"), ("quick-rule", "quick")]


def test_feedback_attaches_to_the_callers_own_interactions(pii_sim: SimulatorThread, tmp_path: Path) -> None:
    with gateway_for(pii_sim, tmp_path) as gw:
        mine, teammate, stranger = new_key(gw, team="a", capture="true"), new_key(gw, team="a"), new_key(gw, team="b")
        request_id = chat(gw, mine, "Any tip?").headers["x-request-id"]
        _, chunks = stream_chat(gw, mine, "Any streamed tip?")
        response = feedback(gw, mine, request_id, 5, label="helpful", comment="mail me at me@example.com")
        assert response.status_code == 201
        assert response.json() | {"created": None} == {"object": "feedback", "request_id": request_id, "rating": 5,
                                                      "label": "helpful", "created": None}
        assert feedback(gw, teammate, request_id, 4).status_code == 201  # the same tenant
        refused = feedback(gw, stranger, request_id, 1)
        assert refused.status_code == 404 and refused.json()["error"]["code"] == "interaction_not_found"
        assert feedback(gw, mine, "req_unknown", 1).status_code == 404
        assert feedback(gw, mine, request_id, 1000).status_code == 400
        assert feedback(gw, mine, request_id, 3, surprise=True).status_code == 400
        assert httpx.post(gw.url + "/v1/feedback", json={"request_id": request_id, "rating": 1}).status_code == 401
    records = list(read_records(tmp_path))
    rated = [(r["request_id"], r["rating"], r["comment"]) for r in records if r["type"] == "feedback"]
    assert rated == [(request_id, 5, f"mail me at {EMAIL}"), (request_id, 4, None)]
    assert len(chunks) > 0 and len(interactions(tmp_path)) == 2


def test_feedback_finds_interactions_another_gateway_captured(vllm_sim: SimulatorThread, tmp_path: Path) -> None:
    with gateway_for(vllm_sim, tmp_path) as first:
        key = new_key(first, team="shared", capture="true")
        request_id = chat(first, key, "hello").headers["x-request-id"]
    with gateway_for(vllm_sim, tmp_path) as second:  # a new process: its index is empty, the files are read
        other = new_key(second, team="shared")
        assert feedback(second, other, request_id, 2).status_code == 201
        assert feedback(second, new_key(second, team="else"), request_id, 2).status_code == 404
    assert [r["rating"] for r in read_records(tmp_path) if r["type"] == "feedback"] == [2]


def export(directory: Path, fmt: str, out: Path, *extra: str) -> int:
    parser = argparse.ArgumentParser()
    dataset_cli.add_arguments(parser)
    args = parser.parse_args(["export", "--dir", str(directory), "--format", fmt, "--out", str(out), *extra])
    return dataset_cli.run(args)


def test_exports_of_what_was_captured(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    captures = tmp_path / "captures"
    config = SimulatorConfig(kind="vllm", models=(SIM_MODEL, "other-model"), seed=11)
    with SimulatorThread(config) as sim, gateway_for(sim, captures, extra_models=("other-model",)) as gw:
        key = new_key(gw, team="t", capture="true")
        first = chat(gw, key, "Give me a tip", model="chat", max_tokens=64)  # (not cut: finish_reason stop)
        second = chat(gw, key, "Give me a tip", model="other-model", max_tokens=64)
        third = chat(gw, key, "Tell me a joke", max_tokens=64)
        assert {first.status_code, second.status_code, third.status_code} == {200}
        for response, rating, label in ((first, 5, "helpful"), (second, 2, "vague"), (third, 4, "helpful")):
            assert feedback(gw, key, response.headers["x-request-id"], rating, label=label).status_code == 201
    answers = [r.json()["choices"][0]["message"]["content"] for r in (first, second, third)]
    assert answers[0] != answers[1]

    chat_set = tmp_path / "chat.jsonl"
    assert export(captures, "chat-jsonl", chat_set, "--min-rating", "4") == 0
    examples = [json.loads(line) for line in chat_set.read_text().splitlines()]
    assert examples == [
        {"messages": [{"role": "user", "content": "Give me a tip"}, {"role": "assistant", "content": answers[0]}]},
        {"messages": [{"role": "user", "content": "Tell me a joke"}, {"role": "assistant", "content": answers[2]}]}]
    report = capsys.readouterr().out
    assert "interactions: 3 (chat/completions 3), errors 0, rated 3" in report
    assert "by rating: 5: 1, 4: 1, 2: 1" in report and "by label: helpful: 2, vague: 1" in report
    assert "skipped: below min rating 1" in report and "wrote 2 chat-jsonl example(s)" in report

    preference_set = tmp_path / "preference.jsonl"
    assert export(captures, "preference-jsonl", preference_set) == 0
    [pair] = [json.loads(line) for line in preference_set.read_text().splitlines()]
    assert pair == {"prompt": [{"role": "user", "content": "Give me a tip"}],
                    "chosen": [{"role": "assistant", "content": answers[0]}],
                    "rejected": [{"role": "assistant", "content": answers[1]}]}
