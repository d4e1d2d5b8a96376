"""The official anthropic SDK through the gateway to a simulated vLLM: Messages, streamed and not, token
counting, tool use translated into chat completions, Anthropic's errors (broken streams included), the
routing rules, the cache and the observability every surface shares."""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Iterator
from typing import Any

import anthropic
import httpx
import pytest
import structlog
from anthropic.types import MessageParam, ToolParam

from simulator import SimulatorThread
from tests.conftest import FAULT_MODELS, SIM_MODEL, catalog_yaml, start_gateway
from tests.servers import ServerThread

HELLO: list[MessageParam] = [{"role": "user", "content": "Say hello"}]
USER_KEY = "sk-gw-user-for-messages-tests"
DETERMINISTIC = {"temperature": 0}
"""Cacheable (the SDK no longer offers `temperature` as an argument; the API still takes it)."""
MANY = 400
"""Enough tokens for the simulator to end its answer (a truncated answer is not cached)."""


@pytest.fixture(scope="module")
def gateway(vllm_sim: SimulatorThread) -> Iterator[ServerThread]:
    """The simulator as a worker of kind `openai`: Messages reach it translated to chat completions (the
    native pass-through to workers that speak Messages is tests/service/test_native_surfaces.py)."""
    text = catalog_yaml([("sim-a", vllm_sim.url)], idle=1.0, first_byte=3.0, extra_models=FAULT_MODELS,
                        kind="openai")
    with start_gateway(text) as server:
        yield server


@pytest.fixture
def client(gateway: ServerThread) -> Iterator[anthropic.Anthropic]:
    with anthropic.Anthropic(base_url=gateway.url, api_key="client-secret", max_retries=0) as sdk:
        yield sdk


def _worker_bodies(sim: SimulatorThread) -> list[dict[str, Any]]:
    return [r.body for r in sim.records if r.path == "/v1/chat/completions" and r.body is not None]


def test_create_answers_a_message(client: anthropic.Anthropic, sim: SimulatorThread) -> None:
    raw = client.messages.with_raw_response.create(model="chat", max_tokens=12, system="You are terse.",
                                                   messages=HELLO, extra_headers={"anthropic-version": "2023-06-01"})
    message = raw.parse()
    assert message.type == "message" and message.role == "assistant" and message.model == "chat"
    assert message.id.startswith("msg_") and message.content[0].type == "text" and message.content[0].text
    assert message.stop_reason in ("end_turn", "max_tokens")
    assert message.usage.input_tokens > 0 and 0 < message.usage.output_tokens <= 12
    assert (raw.headers["x-gateway-model"], raw.headers["x-gateway-worker"]) == ("chat", "sim-a")
    [body] = _worker_bodies(sim)
    assert body == {"model": SIM_MODEL, "max_tokens": 12, "messages": [
        {"role": "system", "content": "You are terse."}, {"role": "user", "content": "Say hello"}]}


def test_stream_gives_the_text_and_the_final_message(client: anthropic.Anthropic) -> None:
    with client.messages.stream(model="chat", max_tokens=10, messages=HELLO) as stream:
        text = "".join(stream.text_stream)
        final = stream.get_final_message()
    assert text and final.content[0].type == "text" and final.content[0].text == text
    assert final.stop_reason in ("end_turn", "max_tokens") and final.model == "chat"
    assert final.usage.input_tokens > 0 and final.usage.output_tokens > 0


def test_count_tokens_counts_the_prompt(client: anthropic.Anthropic, sim: SimulatorThread) -> None:
    short = client.messages.count_tokens(model="chat", messages=HELLO)
    longer = client.messages.count_tokens(model="chat", system="x" * 400, messages=HELLO)
    assert 0 < short.input_tokens < longer.input_tokens
    assert _worker_bodies(sim) == []  # nothing generated: the worker's tokenizer counted (test_token_counting.py)
    with pytest.raises(anthropic.NotFoundError) as caught:
        client.messages.count_tokens(model="nope", messages=HELLO)
    assert caught.value.body == {"type": "error", "error": {
        "type": "not_found_error", "message": "The model `nope` does not exist or you do not have access to it."}}
    with pytest.raises(anthropic.BadRequestError) as refused:
        client.messages.count_tokens(model="chat", messages=[])
    assert refused.value.body["error"]["message"].startswith("messages: ")  # type: ignore[index]


def test_tool_use_round_trip_is_translated_for_the_worker(client: anthropic.Anthropic, sim: SimulatorThread) -> None:
    tools: list[ToolParam] = [{"name": "weather", "description": "Weather of a city",
                               "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}}}]
    client.messages.create(model="chat", max_tokens=8, tools=tools, tool_choice={"type": "tool", "name": "weather"},
                           messages=[
        {"role": "user", "content": "Weather in Oslo?"},
        {"role": "assistant", "content": [{"type": "tool_use", "id": "toolu_01", "name": "weather",
                                           "input": {"city": "Oslo"}}]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_01", "content": "Rain, 4 C"},
                                     {"type": "text", "text": "Should I take an umbrella?"}]}])
    [body] = _worker_bodies(sim)
    assert body["tools"] == [{"type": "function", "function": {
        "name": "weather", "description": "Weather of a city", "parameters": tools[0]["input_schema"]}}]
    assert body["tool_choice"] == {"type": "function", "function": {"name": "weather"}}
    assert body["messages"][1:] == [
        {"role": "assistant", "content": None, "tool_calls": [
            {"id": "toolu_01", "type": "function", "function": {"name": "weather", "arguments": '{"city":"Oslo"}'}}]},
        {"role": "tool", "tool_call_id": "toolu_01", "content": "Rain, 4 C"},
        {"role": "user", "content": "Should I take an umbrella?"}]


@pytest.mark.parametrize("headers", [{}, {"Origin": "https://elsewhere.example"}], ids=["fast-path", "litestar"])
def test_errors_are_anthropics(gateway: ServerThread, headers: dict[str, str]) -> None:
    url = gateway.url + "/v1/messages"
    malformed = httpx.post(url, headers=headers, json={"model": "chat", "max_tokens": 5, "messages": [
        {"role": "user", "content": [{"type": "text", "text": "hi"}, {"type": "video", "url": "x"}]}]})
    assert malformed.status_code == 400
    assert malformed.json() == {"type": "error", "error": {
        "type": "invalid_request_error",
        "message": "messages.0.content.1.type: Input tag 'video' does not match any of the expected tags: image, "
                   "text, tool_result"}}
    missing = httpx.post(url, headers=headers, json={"model": "chat", "messages": HELLO})
    assert missing.json()["error"]["message"] == "max_tokens: Field required"
    unknown = httpx.post(url, headers=headers, json={"model": "nope", "max_tokens": 5, "messages": HELLO})
    assert unknown.status_code == 404 and unknown.json()["error"]["type"] == "not_found_error"
    garbled = httpx.post(url, headers=headers, content=b"{not json")
    assert garbled.status_code == 400 and garbled.json()["type"] == "error"
    for path in (url, url + "/count_tokens"):  # litestar's own refusals take the surface's shape too
        wrong_method = httpx.get(path, headers=headers)
        assert wrong_method.status_code == 405 and wrong_method.json()["error"]["type"] == "invalid_request_error"
    assert "param" in httpx.get(gateway.url + "/v1/chat/completions", headers=headers).json()["error"]


def test_sdk_errors(client: anthropic.Anthropic) -> None:
    with pytest.raises(anthropic.BadRequestError) as caught:
        client.messages.create(model="chat", max_tokens=5, messages=HELLO, container="container_1")
    assert caught.value.body["error"]["message"].startswith("container: ")  # type: ignore[index]
    with pytest.raises(anthropic.NotFoundError):
        client.messages.create(model="nope", max_tokens=5, messages=HELLO)


@pytest.fixture(scope="module")
def keyed(vllm_sim: SimulatorThread) -> Iterator[ServerThread]:
    with start_gateway(catalog_yaml([("w", vllm_sim.url)], kind="openai"), LLM_API_KEY=USER_KEY) as gw:
        yield gw


def test_keys_are_taken_from_x_api_key_or_bearer_and_required(keyed: ServerThread) -> None:
    with anthropic.Anthropic(base_url=keyed.url, api_key=USER_KEY, max_retries=0) as by_api_key:
        assert by_api_key.messages.create(model="chat", max_tokens=4, messages=HELLO).content
        assert by_api_key.messages.count_tokens(model="chat", messages=HELLO).input_tokens > 0
    with anthropic.Anthropic(base_url=keyed.url, auth_token=USER_KEY, api_key=None, max_retries=0) as by_token:
        assert by_token.messages.create(model="chat", max_tokens=4, messages=HELLO).content
    for path in ("/v1/messages", "/v1/messages/count_tokens"):
        refused = httpx.post(keyed.url + path, json={"model": "chat", "max_tokens": 4, "messages": HELLO})
        assert refused.status_code == 401
        assert refused.json()["type"] == "error" and refused.json()["error"]["type"] == "authentication_error"
    with anthropic.Anthropic(base_url=keyed.url, api_key="wrong", max_retries=0) as wrong, \
            pytest.raises(anthropic.AuthenticationError):
        wrong.messages.create(model="chat", max_tokens=4, messages=HELLO)


def _events(url: str, body: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    with httpx.stream("POST", url + "/v1/messages", json={**body, "stream": True}, timeout=30) as response:
        assert response.status_code == 200
        lines = [line for line in response.iter_lines() if line]
    return [(name[7:], json.loads(data[6:])) for name, data in zip(lines[::2], lines[1::2], strict=True)]


@pytest.mark.parametrize("fault", ["mid-stream-error", "drop-mid-stream", "done-without-finish"])
def test_a_worker_cut_mid_stream_ends_with_an_error_event(gateway: ServerThread, client: anthropic.Anthropic,
                                                          fault: str) -> None:
    events = _events(gateway.url, {"model": fault, "max_tokens": 32, "messages": HELLO})
    names = [name for name, _ in events]
    assert names[:2] == ["message_start", "ping"] and "content_block_delta" in names
    assert names[-1] == "error" and "message_stop" not in names and "message_delta" not in names
    assert events[-1][1]["type"] == "error" and events[-1][1]["error"]["type"] == "api_error"
    with pytest.raises(anthropic.APIStatusError), \
            client.messages.stream(model=fault, max_tokens=32, messages=HELLO) as stream:
        stream.until_done()


def test_a_routing_rule_matches_messages_text_as_it_matches_chat(gateway: ServerThread,
                                                                 client: anthropic.Anthropic) -> None:
    chat = httpx.post(gateway.url + "/v1/chat/completions",
                      json={"model": "", "messages": [{"role": "user", "content": "A QUICK tip please"}]})
    messages = client.messages.with_raw_response.create(
        model="", max_tokens=4, system="You coach.", messages=[
            {"role": "user", "content": [{"type": "text", "text": "A QUICK tip please"}]}])
    for response in (chat, messages):
        assert (response.headers["x-gateway-model"], response.headers["x-gateway-route"]) == ("quick", "quick-rule")


def test_a_cached_answer_replays_as_a_messages_stream_and_whole(client: anthropic.Anthropic,
                                                                sim: SimulatorThread) -> None:
    prompt: list[MessageParam] = [{"role": "user", "content": f"cache me {uuid.uuid4()}"}]
    asked: dict[str, Any] = {"model": "chat", "max_tokens": MANY, "messages": prompt, "extra_body": DETERMINISTIC}
    first = client.messages.with_raw_response.create(**asked)
    with client.messages.with_streaming_response.create(**asked, stream=True) as streamed:
        assert streamed.headers["x-gateway-cache"] == "hit"
        names = [line[7:] for line in streamed.iter_lines() if line.startswith("event: ")]
    with client.messages.stream(**asked) as stream:
        replayed = stream.get_final_message()
    again = client.messages.with_raw_response.create(**asked)
    assert (first.headers["x-gateway-cache"], again.headers["x-gateway-cache"]) == ("miss", "hit")
    assert names[:3] == ["message_start", "ping", "content_block_start"] and names[-1] == "message_stop"
    whole = first.parse()
    texts = [getattr(m.content[0], "text", None) for m in (whole, replayed, again.parse())]
    assert texts[0] and texts == [texts[0]] * 3
    assert replayed.stop_reason == whole.stop_reason == "end_turn"
    assert replayed.usage.output_tokens == whole.usage.output_tokens
    assert len(_worker_bodies(sim)) == 1


def test_the_log_line_and_metrics_name_the_surface(vllm_sim: SimulatorThread) -> None:
    with start_gateway(catalog_yaml([("w", vllm_sim.url)], kind="openai"), LOG_LEVEL="info") as gateway, \
            anthropic.Anthropic(base_url=gateway.url, api_key="k", max_retries=0) as client, \
            structlog.testing.capture_logs() as logs:
        client.messages.create(model="chat", max_tokens=4, messages=HELLO, extra_headers={"x-request-id": "msg-log-1"})
        deadline = time.monotonic() + 5  # the line is written once the response is out
        while not any(e.get("request_id") == "msg-log-1" and e["event"] == "request" for e in logs):
            assert time.monotonic() < deadline
            threading.Event().wait(0.01)
        metrics = httpx.get(gateway.url + "/metrics").text
    [line] = [e for e in logs if e.get("request_id") == "msg-log-1" and e["event"] == "request"]
    assert line["path"] == "/v1/messages" and line["status"] == 200 and line["tokens_out"] > 0
    assert 'llm_gateway_requests_total{endpoint="messages"' in metrics


def test_a_request_shaped_as_claude_code_sends_it(gateway: ServerThread, sim: SimulatorThread) -> None:
    """Claude Code's shape: `?beta=true`, beta and version headers, cache_control on system, blocks and
    tools, context_management and diagnostics, adaptive thinking, temperature 1, metadata.user_id,
    streamed."""
    ephemeral = {"type": "ephemeral", "scope": "global"}
    schema = {"type": "object", "properties": {"command": {"type": "string"}}, "required": ["command"],
              "additionalProperties": False, "$schema": "http://json-schema.org/draft-07/schema#"}
    body = {"model": "chat", "max_tokens": 4000, "temperature": 1, "stream": True,
            "thinking": {"budget_tokens": 0, "type": "adaptive"}, "diagnostics": {"enabled": True},
            "context_management": {"edits": [{"type": "clear_thinking_20251015", "keep": "all"}]},
            "metadata": {"user_id": "user_1_account__session_2"},
            "system": [{"type": "text", "text": "You are a coding agent.", "cache_control": ephemeral}],
            "tools": [{"name": "Bash", "description": "Run a command", "input_schema": schema,
                       "cache_control": ephemeral, "eager_input_streaming": True}],
            "messages": [{"role": "user", "content": [
                {"type": "text", "text": "<system-reminder>Be careful.</system-reminder>"},
                {"type": "text", "text": "List the files", "cache_control": ephemeral}]}]}
    headers = {"x-api-key": "k", "anthropic-version": "2023-06-01",
               "anthropic-beta": "claude-code-20250219,interleaved-thinking-2025-05-14"}
    with httpx.stream("POST", gateway.url + "/v1/messages?beta=true", json=body, headers=headers) as response:
        assert response.status_code == 200, response.read()
        names = [line[7:] for line in response.iter_lines() if line.startswith("event: ")]
    assert names[0] == "message_start" and names[-1] == "message_stop"
    [sent] = _worker_bodies(sim)
    assert sent["messages"][0] == {"role": "system", "content": "You are a coding agent."}
    assert sent["messages"][1]["content"] == "<system-reminder>Be careful.</system-reminder>\nList the files"
    assert sent["tools"][0]["function"]["parameters"] == schema and sent["user"] == "user_1_account__session_2"
    assert "cache_control" not in json.dumps(sent)


def test_leaving_a_messages_stream_closes_the_workers(gateway: ServerThread, sim: SimulatorThread) -> None:
    body = {"model": "slow", "max_tokens": 50, "stream": True, "messages": HELLO}
    with httpx.stream("POST", gateway.url + "/v1/messages", json=body) as response:
        for line in response.iter_lines():
            if line == "event: content_block_delta":
                break  # leave after the first token
    assert sim.wait_for(lambda rs: any(r.model == "slow" and r.disconnected for r in rs), timeout=5)
    [record] = [r for r in sim.records if r.model == "slow"]
    assert len(record.chunk_times) < 20  # it stopped long before its 50 tokens
