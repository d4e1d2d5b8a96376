"""Native first: Anthropic Messages and OpenAI Responses requests go as the client sent them to workers that
serve those surfaces (the simulator in vLLM and Ollama modes), with the official SDKs as clients; only a
model with no such worker left gets the translation to chat completions."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import anthropic
import openai
import pytest
from anthropic.types import MessageParam, ToolParam

from simulator import SimulatorConfig, SimulatorThread
from testkit.loopback import free_port
from tests.conftest import FAULT_MODELS, SIM_MODEL, catalog_yaml, start_gateway
from tests.servers import ServerThread

HELLO: list[MessageParam] = [{"role": "user", "content": "Say hello"}]
BETA = "interleaved-thinking-2025-05-14"


@pytest.fixture(scope="module")
def gateway(vllm_sim: SimulatorThread) -> Iterator[ServerThread]:
    """The simulator as a vLLM worker (it serves both surfaces natively); fault models of their name."""
    text = catalog_yaml([("sim-a", vllm_sim.url)], idle=1.0, first_byte=3.0,
                        extra_models=(*FAULT_MODELS, "tool-call"))
    with start_gateway(text) as server:
        yield server


@pytest.fixture
def claude(gateway: ServerThread) -> Iterator[anthropic.Anthropic]:
    with anthropic.Anthropic(base_url=gateway.url, api_key="client-secret", max_retries=0) as sdk:
        yield sdk


@pytest.fixture
def oai(gateway: ServerThread) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(base_url=gateway.url + "/v1", api_key="client-secret", max_retries=0) as sdk:
        yield sdk


def _records(sim: SimulatorThread, path: str) -> list[Any]:
    return [r for r in sim.records if r.path == path]


# --- Anthropic Messages -----------------------------------------------------------------------------------


def test_a_message_goes_to_the_worker_as_it_came(claude: anthropic.Anthropic, sim: SimulatorThread) -> None:
    raw = claude.messages.with_raw_response.create(
        model="chat", max_tokens=12, system="You are terse.", messages=HELLO,
        extra_headers={"anthropic-version": "2023-06-01", "anthropic-beta": BETA})
    message = raw.parse()
    assert message.model == "chat" and message.content[0].type == "text" and message.content[0].text
    assert message.usage.input_tokens > 0 and 0 < message.usage.output_tokens <= 12
    assert raw.headers["x-gateway-worker"] == "sim-a"
    assert _records(sim, "/v1/chat/completions") == []
    [record] = _records(sim, "/v1/messages")
    assert record.body == {"model": SIM_MODEL, "max_tokens": 12, "system": "You are terse.", "messages": HELLO}
    assert record.headers["anthropic-version"] == "2023-06-01" and record.headers["anthropic-beta"] == BETA
    assert "x-api-key" not in record.headers and "client-secret" not in str(record.headers)


def test_a_streamed_message_is_relayed_with_its_events(claude: anthropic.Anthropic, sim: SimulatorThread) -> None:
    with claude.messages.stream(model="chat", max_tokens=10, messages=HELLO) as stream:
        kinds = [event.type for event in stream]
        final = stream.get_final_message()
    assert kinds[0] == "message_start" and kinds[-1] == "message_stop" and "content_block_delta" in kinds
    assert final.model == "chat" and final.content[0].type == "text" and final.content[0].text
    assert final.usage.output_tokens > 0
    [record] = _records(sim, "/v1/messages")
    assert record.stream and record.body is not None and record.body["stream"] is True


def test_a_tool_use_round_trip_natively(claude: anthropic.Anthropic, sim: SimulatorThread) -> None:
    tools: list[ToolParam] = [{"name": "weather", "description": "Weather of a city",
                               "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}}}]
    first = claude.messages.create(model="tool-call", max_tokens=64, tools=tools, messages=[
        {"role": "user", "content": "Weather in Paris?"}])
    [use] = [block for block in first.content if block.type == "tool_use"]
    assert first.stop_reason == "tool_use" and use.name == "weather"
    second = claude.messages.create(model="tool-call", max_tokens=64, tools=tools, messages=[
        {"role": "user", "content": "Weather in Paris?"}, {"role": "assistant", "content": first.content},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": use.id, "content": "Sunny"}]}])
    assert second.content
    last = _records(sim, "/v1/messages")[-1].body
    assert last["messages"][2]["content"][0] == {"type": "tool_result", "tool_use_id": use.id, "content": "Sunny"}


@pytest.mark.parametrize("fault", ["mid-stream-error", "drop-mid-stream", "stall-after-3"])
def test_a_native_stream_cut_ends_with_an_anthropic_error_event(claude: anthropic.Anthropic, fault: str) -> None:
    with pytest.raises(anthropic.APIStatusError) as caught, \
            claude.messages.stream(model=fault, max_tokens=40, messages=HELLO) as stream:
        for _ in stream:
            pass
    assert caught.value.body["type"] == "error"  # type: ignore[index]


def test_a_worker_refusal_is_an_anthropic_error(claude: anthropic.Anthropic) -> None:
    with pytest.raises(anthropic.BadRequestError) as caught:
        claude.messages.create(model="error-400", max_tokens=8, messages=HELLO)
    assert caught.value.body["type"] == "error"  # type: ignore[index]


# --- OpenAI Responses -------------------------------------------------------------------------------------


def test_a_response_chain_goes_natively_and_stays_the_gateways(oai: openai.OpenAI, sim: SimulatorThread) -> None:
    first = oai.responses.create(model="chat", input="Say hello", instructions="Be brief", max_output_tokens=16)
    assert first.model == "chat" and first.output_text and first.usage is not None
    second = oai.responses.create(model="chat", input="And again", previous_response_id=first.id,
                                  max_output_tokens=16)
    assert second.previous_response_id == first.id and second.id != first.id
    one, two = (r.body for r in _records(sim, "/v1/responses"))
    assert one["store"] is False and one["input"] == "Say hello" and one["model"] == SIM_MODEL
    assert "previous_response_id" not in two and "instructions" not in two  # instructions do not carry over
    assert two["input"] == [{"type": "message", "role": "user", "content": "Say hello"},
                            {"type": "message", "role": "assistant", "content": first.output_text},
                            {"role": "user", "content": "And again"}]
    assert oai.responses.retrieve(second.id).output_text == second.output_text
    oai.responses.delete(first.id)
    with pytest.raises(openai.NotFoundError):
        oai.responses.retrieve(first.id)
    assert _records(sim, "/v1/chat/completions") == []


def test_a_streamed_response_is_relayed_and_stored(oai: openai.OpenAI, sim: SimulatorThread) -> None:
    with oai.responses.stream(model="chat", input="Say hello", max_output_tokens=16) as stream:
        deltas = [e.delta for e in stream if e.type == "response.output_text.delta"]
        final = stream.get_final_response()
    assert deltas and final.output_text == "".join(deltas) and final.model == "chat"
    assert oai.responses.retrieve(final.id).output_text == final.output_text
    [record] = _records(sim, "/v1/responses")
    assert record.stream


def test_a_native_responses_stream_cut_ends_with_response_failed(oai: openai.OpenAI) -> None:
    events = list(oai.responses.create(model="drop-mid-stream", input="Say hello", max_output_tokens=40,
                                       stream=True))
    assert events[-1].type == "response.failed"
    assert events[-1].response.status == "failed"


def test_a_function_tool_natively(oai: openai.OpenAI, sim: SimulatorThread) -> None:
    tool = {"type": "function", "name": "weather", "description": "Weather of a city",
            "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}
    first = oai.responses.create(model="tool-call", input="Weather in Paris?", tools=[tool])  # type: ignore[list-item]
    [call] = [item for item in first.output if item.type == "function_call"]
    second = oai.responses.create(model="tool-call", previous_response_id=first.id, tools=[tool],  # type: ignore[list-item]
                                  input=[{"type": "function_call_output", "call_id": call.call_id, "output": "Sunny"}])
    assert second.status in ("completed", "incomplete")  # the simulator writes until its default limit
    sent = _records(sim, "/v1/responses")[-1].body["input"]
    assert sent[1] == {"type": "function_call", "call_id": call.call_id, "name": "weather",
                       "arguments": call.arguments}
    assert sent[-1] == {"type": "function_call_output", "call_id": call.call_id, "output": "Sunny"}


# --- native first, translation when no native worker is left ---------------------------------------------


def test_translation_when_the_native_workers_are_down(vllm_sim: SimulatorThread) -> None:
    dead = f"http://127.0.0.1:{free_port()}"
    text = catalog_yaml([("down", dead)]).replace("workers:\n", "workers:\n" + _openai_worker(vllm_sim.url), 1)
    with start_gateway(text) as gw, anthropic.Anthropic(base_url=gw.url, api_key="x", max_retries=0) as sdk:
        vllm_sim.reset()
        raw = sdk.messages.with_raw_response.create(model="chat", max_tokens=8, messages=HELLO)
        assert raw.parse().content[0].type == "text" and raw.headers["x-gateway-worker"] == "translating"
        assert raw.headers["x-gateway-attempts"] == "2"  # the native worker first
        assert _records(vllm_sim, "/v1/chat/completions") and not _records(vllm_sim, "/v1/messages")


def _openai_worker(url: str) -> str:
    return (f"  - name: translating\n    kind: openai\n    base_url: {url}/v1\n"
            f"    models:\n      - {{name: chat, upstream_id: {SIM_MODEL}}}\n")


# --- Ollama serves both natively -------------------------------------------------------------------------


@pytest.fixture(scope="module")
def ollama_gateway() -> Iterator[tuple[SimulatorThread, ServerThread]]:
    with SimulatorThread(SimulatorConfig(kind="ollama", models=("llama3.2:3b",), seed=3)) as ollama:
        text = ("models:\n  - name: chat\nrouting:\n  default_model: chat\nworkers:\n  - name: o\n    kind: ollama\n"
                f"    base_url: {ollama.url}\n    models:\n      - {{name: chat, upstream_id: 'llama3.2:3b'}}\n")
        with start_gateway(text) as gw:
            yield ollama, gw


def test_ollama_serves_messages_and_responses_natively(ollama_gateway: tuple[SimulatorThread, ServerThread]) -> None:
    ollama, gw = ollama_gateway
    with anthropic.Anthropic(base_url=gw.url, api_key="x", max_retries=0) as claude, \
            openai.OpenAI(base_url=gw.url + "/v1", api_key="x", max_retries=0) as oai:
        with claude.messages.stream(model="chat", max_tokens=8, messages=HELLO) as stream:
            assert stream.get_final_message().model == "chat"
        with oai.responses.stream(model="chat", input="Say hello", max_output_tokens=8) as events:
            assert events.get_final_response().model == "chat"
    assert {r.path for r in ollama.records} == {"/v1/messages", "/v1/responses"}


# --- what the translation cannot carry goes to native workers -------------------------------------------


def test_fields_the_translation_cannot_carry_reach_a_native_worker(oai: openai.OpenAI, claude: anthropic.Anthropic,
                                                                   sim: SimulatorThread) -> None:
    answer = oai.responses.create(model="chat", input="Say hello", max_output_tokens=16,
                                  reasoning={"effort": "high"}, include=["message.output_text.logprobs"])
    assert answer.output_text
    sent = _records(sim, "/v1/responses")[-1].body
    assert sent["reasoning"] == {"effort": "high"} and sent["include"] == ["message.output_text.logprobs"]
    cited: Any = [{"role": "user", "content": [{"type": "text", "text": "Say hello", "citations": [
        {"type": "char_location", "cited_text": "x", "document_index": 0, "start_char_index": 0,
         "end_char_index": 1}]}]}]
    assert claude.messages.create(model="chat", max_tokens=8, messages=cited).content
    assert _records(sim, "/v1/messages")[-1].body["messages"][0]["content"][0]["citations"]


def test_they_are_refused_naming_the_field_when_the_model_must_be_translated(vllm_sim: SimulatorThread) -> None:
    with start_gateway(catalog_yaml([("t", vllm_sim.url)], kind="openai")) as gw, \
            openai.OpenAI(base_url=gw.url + "/v1", api_key="x", max_retries=0) as sdk:
        with pytest.raises(openai.BadRequestError) as refused:
            sdk.responses.create(model="chat", input="Say hello", reasoning={"effort": "high"})
        assert refused.value.body["param"] == "reasoning.effort"  # type: ignore[index]


def test_a_model_with_both_kinds_sends_them_only_to_the_native_one(vllm_sim: SimulatorThread) -> None:
    text = catalog_yaml([("n", vllm_sim.url)]).replace("workers:\n", "workers:\n" + _openai_worker(vllm_sim.url), 1)
    with start_gateway(text) as gw, openai.OpenAI(base_url=gw.url + "/v1", api_key="x", max_retries=0) as sdk:
        vllm_sim.reset()
        for _ in range(4):
            raw = sdk.responses.with_raw_response.create(model="chat", input="Hi", reasoning={"effort": "low"},
                                                         max_output_tokens=8)
            assert raw.headers["x-gateway-worker"] == "n"
        assert len(_records(vllm_sim, "/v1/responses")) == 4 and not _records(vllm_sim, "/v1/chat/completions")
