"""The simulated workers speak the OpenAI Responses API (`POST /v1/responses`), as the official SDK sees it.

vLLM mode: plain and streamed answers, `max_output_tokens` cuts (vLLM's `incomplete` status), function
tools, fault errors and a failure event mid-stream. Ollama mode: its compatibility layer's answers.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import openai
import pytest
from openai.types.responses import FunctionToolParam, ResponseFunctionToolCall

from simulator import RequestRecord, SimulatorConfig, SimulatorKind, SimulatorThread

MODEL = "sim-model"
WEATHER: FunctionToolParam = {
    "type": "function",
    "name": "get_weather",
    "description": "The weather in a city.",
    "strict": True,
    "parameters": {
        "type": "object",
        "properties": {"city": {"type": "string"}, "days": {"type": "integer"}, "unit": {"enum": ["c", "f"]}},
        "required": ["city", "days", "unit"],
    },
}
CLOCK: FunctionToolParam = {"type": "function", "name": "get_time", "strict": False, "parameters": {}}


def config(kind: SimulatorKind) -> SimulatorConfig:
    """Replies of 8 to 24 tokens, never cut unless a request asks for fewer."""
    return SimulatorConfig(kind=kind, models=(MODEL,), seed=7, default_max_tokens=64)


@pytest.fixture(params=["vllm", "ollama"])
def sim(request: pytest.FixtureRequest) -> Iterator[SimulatorThread]:
    with SimulatorThread(config(request.param)) as simulator:
        yield simulator


@pytest.fixture
def vllm() -> Iterator[SimulatorThread]:
    with SimulatorThread(config("vllm")) as simulator:
        yield simulator


@pytest.fixture
def client(sim: SimulatorThread) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(base_url=sim.url + "/v1", api_key="unused", max_retries=0, timeout=5) as sdk:
        yield sdk


@pytest.fixture
def vllm_client(vllm: SimulatorThread) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(base_url=vllm.url + "/v1", api_key="unused", max_retries=0, timeout=5) as sdk:
        yield sdk


def responses_records(sim: SimulatorThread) -> list[RequestRecord]:
    return [record for record in sim.records if record.path == "/v1/responses"]


def sse_events(text: str) -> list[tuple[str, dict[str, Any]]]:
    """(event type, data) of each SSE event of a body with `event:` lines."""
    events = []
    for block in text.strip().split("\n\n"):
        lines = dict(line.split(": ", 1) for line in block.splitlines())
        events.append((lines["event"], json.loads(lines["data"])))
    return events


def test_create_answers_text_with_usage(sim: SimulatorThread, client: openai.OpenAI) -> None:
    response = client.responses.create(model=MODEL, input="hello there", instructions="Be brief.")
    assert response.id.startswith("resp_") and response.object == "response" and response.model == MODEL
    assert response.status == "completed" and response.output_text and response.instructions == "Be brief."
    [record] = responses_records(sim)
    assert response.usage is not None
    assert response.usage.input_tokens == record.prompt_tokens > 0
    assert response.usage.output_tokens == record.completion_tokens == len(response.output_text.split())
    assert response.usage.total_tokens == record.prompt_tokens + record.completion_tokens


def test_the_same_conversation_gets_the_same_prompt_as_chat(vllm_client: openai.OpenAI) -> None:
    chat = vllm_client.chat.completions.create(
        model=MODEL, messages=[{"role": "system", "content": "Be brief."}, {"role": "user", "content": "hello"}]
    )
    response = vllm_client.responses.create(model=MODEL, instructions="Be brief.", input="hello")
    assert response.output_text == chat.choices[0].message.content
    assert response.usage is not None and chat.usage is not None
    assert response.usage.input_tokens == chat.usage.prompt_tokens


def test_max_output_tokens_cut_is_incomplete_on_vllm_only(sim: SimulatorThread, client: openai.OpenAI) -> None:
    response = client.responses.create(model=MODEL, input="hello there", max_output_tokens=3)
    assert response.usage is not None and response.usage.output_tokens == 3
    if sim.config.kind == "vllm":
        assert response.status == "incomplete"
        assert response.incomplete_details is not None and response.incomplete_details.reason == "max_output_tokens"
    else:  # Ollama's layer reports every answer as completed
        assert response.status == "completed" and response.incomplete_details is None


def test_stream_sends_the_responses_events(sim: SimulatorThread, client: openai.OpenAI) -> None:
    whole = client.responses.create(model=MODEL, input="hello there")
    with client.responses.stream(model=MODEL, input="hello there") as stream:
        kinds = [event.type for event in stream]
        final = stream.get_final_response()
    deltas = len(whole.output_text.split())
    assert kinds == [
        "response.created", "response.in_progress", "response.output_item.added", "response.content_part.added",
        *["response.output_text.delta"] * deltas,
        "response.output_text.done", "response.content_part.done", "response.output_item.done", "response.completed",
    ]  # fmt: skip
    assert final.output_text == whole.output_text and final.status == "completed"
    record = responses_records(sim)[-1]
    assert record.stream and record.status == 200


def test_stream_wire_format_names_each_event_and_numbers_it(vllm: SimulatorThread) -> None:
    body = {"model": MODEL, "input": "hello there", "stream": True, "max_output_tokens": 2}
    response = httpx.post(vllm.url + "/v1/responses", json=body, timeout=5)
    assert response.headers["content-type"].startswith("text/event-stream") and "[DONE]" not in response.text
    events = sse_events(response.text)
    assert all(kind == data["type"] for kind, data in events)
    assert [data["sequence_number"] for _, data in events] == list(range(len(events)))
    last = events[-1][1]["response"]  # vLLM ends a cut answer with response.completed, status incomplete
    assert events[-1][0] == "response.completed" and last["status"] == "incomplete"
    assert last["usage"]["output_tokens"] == 2 and last["output"][0]["content"][0]["text"]


def test_required_tool_choice_calls_the_first_tool(sim: SimulatorThread, client: openai.OpenAI) -> None:
    response = client.responses.create(model=MODEL, input="weather?", tools=[WEATHER, CLOCK], tool_choice="required")
    [call] = response.output
    assert isinstance(call, ResponseFunctionToolCall) and call.name == "get_weather"
    assert json.loads(call.arguments) == {"city": "x", "days": 1, "unit": "c"}
    assert call.call_id.startswith("call_") and call.status == "completed"
    assert response.usage is not None and response.usage.output_tokens == responses_records(sim)[-1].completion_tokens


def test_named_tool_choice_calls_that_tool_streamed(sim: SimulatorThread, client: openai.OpenAI) -> None:
    choice: Any = {"type": "function", "name": "get_time"}
    with client.responses.stream(model=MODEL, input="time?", tools=[WEATHER, CLOCK], tool_choice=choice) as stream:
        events = list(stream)
        final = stream.get_final_response()
    deltas = [event.delta for event in events if event.type == "response.function_call_arguments.delta"]
    [done] = [event for event in events if event.type == "response.function_call_arguments.done"]
    assert "".join(deltas) == done.arguments == "{}"
    [call] = final.output
    assert isinstance(call, ResponseFunctionToolCall) and call.name == "get_time" and call.arguments == "{}"


def test_vllm_streams_arguments_piece_by_piece(vllm: SimulatorThread, vllm_client: openai.OpenAI) -> None:
    events = list(vllm_client.responses.create(model="tool-call", input="weather?", tools=[WEATHER], stream=True))
    deltas = [event.delta for event in events if event.type == "response.function_call_arguments.delta"]
    assert len(deltas) == responses_records(vllm)[-1].completion_tokens > 1
    assert json.loads("".join(deltas)) == {"city": "x", "days": 1, "unit": "c"}


def test_function_call_output_gets_a_text_answer(sim: SimulatorThread, client: openai.OpenAI) -> None:
    first = client.responses.create(model=MODEL, input="weather?", tools=[WEATHER], tool_choice="required")
    [call] = first.output
    assert isinstance(call, ResponseFunctionToolCall)
    history: Any = [
        {"role": "user", "content": "weather?"},
        {"type": "function_call", "call_id": call.call_id, "name": call.name, "arguments": call.arguments},
        {"type": "function_call_output", "call_id": call.call_id, "output": "sunny"},
    ]
    second = client.responses.create(model=MODEL, input=history, tools=[WEATHER], tool_choice="required")
    assert second.output_text and second.output[0].type == "message"


def test_error_faults_use_each_servers_error_shape(sim: SimulatorThread, client: openai.OpenAI) -> None:
    with pytest.raises(openai.RateLimitError) as limited:
        client.responses.create(model="error-429", input="hello")
    with pytest.raises(openai.NotFoundError) as missing:
        client.responses.create(model="no-such-model", input="hello")
    if sim.config.kind == "vllm":
        assert limited.value.body == {"message": "Simulated error (fault error-429).",
                                      "type": "TooManyRequestsError", "param": None, "code": 429}  # fmt: skip
    else:
        assert limited.value.body == {"message": "simulated error (fault error-429)", "type": "api_error",
                                      "param": None, "code": None}  # fmt: skip
    assert isinstance(missing.value.body, dict) and "no-such-model" in missing.value.body["message"]


def test_missing_input_is_a_400(sim: SimulatorThread) -> None:
    response = httpx.post(sim.url + "/v1/responses", json={"model": MODEL}, timeout=5)
    assert response.status_code == 400 and "input" in response.json()["error"]["message"]


def test_mid_stream_error_is_an_error_event_on_vllm_and_a_silent_end_on_ollama(
    sim: SimulatorThread, client: openai.OpenAI
) -> None:
    events = list(client.responses.create(model="mid-stream-error", input="hello there", stream=True))
    deltas = [event for event in events if event.type == "response.output_text.delta"]
    assert len(deltas) == 2 and events[-1].type != "response.completed"
    if sim.config.kind == "vllm":
        assert events[-1].type == "error" and events[-1].sequence_number == len(events) - 1
    else:
        assert events[-1].type == "response.output_text.delta"


def test_no_done_leaves_out_the_completed_event(sim: SimulatorThread, client: openai.OpenAI) -> None:
    events = list(client.responses.create(model="no-done", input="hello there", stream=True))
    assert "response.completed" not in [event.type for event in events]
