"""Token counting with the official SDKs (anthropic's `messages.count_tokens`, openai's
`responses.input_tokens.count`) through the gateway: exact when a worker of the model can count (the
simulated vLLM's `/tokenize`, tools included), the gateway's estimate (tools included) for a model served
by Ollama or by a dead worker, never an error; `x-gateway-token-count` says which."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import anthropic
import openai
import pytest
from anthropic.types import MessageParam, ToolParam

from simulator import SimulatorConfig, SimulatorThread
from simulator.text import count_tokens, serialize_messages, serialize_tools
from testkit.loopback import free_port
from tests.conftest import SIM_MODEL, start_gateway
from tests.servers import ServerThread

HELLO: list[MessageParam] = [{"role": "user", "content": "Say hello"}]
WEATHER: ToolParam = {"name": "weather", "description": "The weather of a city, now and for the next days",
                      "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}}}


def _worker(name: str, kind: str, url: str, model: str) -> str:
    return (f"  - name: {name}\n    kind: {kind}\n    base_url: {url}\n"
            "    timeouts: {connect: 2, first_byte: 10, idle: 10, total: 60}\n"
            f"    models: [{{name: {model}, upstream_id: {SIM_MODEL}}}]\n")


def _catalog(vllm_url: str, ollama_url: str, dead_url: str) -> str:
    return ("models: [{name: chat}, {name: on-ollama}, {name: on-dead}]\nrouting: {default_model: chat}\nworkers:\n"
            + _worker("sim-a", "vllm", vllm_url + "/v1", "chat")
            + _worker("ollama-a", "ollama", ollama_url, "on-ollama")
            + _worker("dead-a", "vllm", dead_url + "/v1", "on-dead"))


@pytest.fixture(scope="module")
def ollama_sim() -> Iterator[SimulatorThread]:
    with SimulatorThread(SimulatorConfig(kind="ollama", models=(SIM_MODEL,), seed=3)) as sim:
        yield sim


@pytest.fixture(scope="module")
def gateway(vllm_sim: SimulatorThread, ollama_sim: SimulatorThread) -> Iterator[ServerThread]:
    dead = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    with start_gateway(_catalog(vllm_sim.url, ollama_sim.url, dead)) as gw:
        yield gw


@pytest.fixture
def claude(gateway: ServerThread) -> Iterator[anthropic.Anthropic]:
    with anthropic.Anthropic(base_url=gateway.url, api_key="unused", max_retries=0) as sdk:
        yield sdk


@pytest.fixture
def sdk(gateway: ServerThread) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(base_url=gateway.url + "/v1", api_key="unused", max_retries=0) as client:
        yield client


def _counted(sim: SimulatorThread) -> list[dict[str, Any]]:
    """The bodies of the `/tokenize` calls the simulated vLLM answered."""
    return [r.body for r in sim.records if r.path == "/tokenize" and r.body is not None]


def _simulator_count(body: dict[str, Any]) -> int:
    return count_tokens(serialize_messages(body["messages"]) + serialize_tools(body.get("tools")))


def test_count_tokens_is_the_workers_count_of_the_prompt(claude: anthropic.Anthropic, sim: SimulatorThread) -> None:
    raw = claude.messages.with_raw_response.count_tokens(model="chat", system="Be terse.", messages=HELLO)
    counted = raw.parse()
    [asked] = _counted(sim)
    assert asked == {"model": SIM_MODEL, "add_generation_prompt": True, "messages": [
        {"role": "system", "content": "Be terse."}, {"role": "user", "content": "Say hello"}]}
    assert counted.input_tokens == _simulator_count(asked)
    assert raw.headers["x-gateway-token-count"] == "exact"
    # What the worker will count when the message is sent:
    sent = claude.messages.create(model="chat", max_tokens=4, system="Be terse.", messages=HELLO)
    assert sent.usage.input_tokens == counted.input_tokens


def test_count_tokens_counts_the_tools(claude: anthropic.Anthropic, sim: SimulatorThread) -> None:
    plain = claude.messages.count_tokens(model="chat", messages=HELLO).input_tokens
    with_tools = claude.messages.count_tokens(model="chat", messages=HELLO, tools=[WEATHER]).input_tokens
    [_, asked] = _counted(sim)
    assert asked["tools"] == [{"type": "function", "function": {
        "name": "weather", "description": WEATHER["description"], "parameters": WEATHER["input_schema"]}}]
    assert with_tools == _simulator_count(asked)
    assert with_tools - plain >= count_tokens(serialize_tools(asked["tools"])) - 1  # ceil of the joined text


def test_input_tokens_is_the_workers_count(sdk: openai.OpenAI, sim: SimulatorThread) -> None:
    raw = sdk.responses.input_tokens.with_raw_response.count(model="chat", input="hello", instructions="Be terse")
    counted = raw.parse()
    [asked] = _counted(sim)
    assert asked["messages"] == [{"role": "system", "content": "Be terse"}, {"role": "user", "content": "hello"}]
    assert counted.object == "response.input_tokens" and counted.input_tokens == _simulator_count(asked)
    assert raw.headers["x-gateway-token-count"] == "exact"
    tool = {"type": "function", "name": "shell", "description": "Runs a command", "strict": False,
            "parameters": {"type": "object", "properties": {"command": {"type": "string"}}}}
    with_tool = sdk.responses.input_tokens.count(model="chat", input="hello", tools=[tool])  # type: ignore[list-item]
    assert "tools" in _counted(sim)[-1] and with_tool.input_tokens == _simulator_count(_counted(sim)[-1])


@pytest.mark.parametrize("model", ["on-ollama", "on-dead"], ids=["ollama-cannot-count", "dead-worker"])
def test_a_model_no_worker_can_count_gets_the_estimate_with_tools(gateway: ServerThread, claude: anthropic.Anthropic,
                                                                   sdk: openai.OpenAI, model: str) -> None:
    raw = claude.messages.with_raw_response.count_tokens(model=model, messages=HELLO)
    assert raw.status_code == 200 and raw.headers["x-gateway-token-count"] == "estimate"
    # About four characters a token (the tools' JSON as the worker would get it included), four a message.
    translated = [{"type": "function", "function": {
        "name": "weather", "description": WEATHER["description"], "parameters": WEATHER["input_schema"]}}]
    tools_json = len(json.dumps(translated, separators=(",", ":")))
    assert raw.parse().input_tokens == len("Say hello") // 4 + 4 + 1
    with_tools = claude.messages.count_tokens(model=model, messages=HELLO, tools=[WEATHER]).input_tokens
    assert with_tools == (len("Say hello") + tools_json) // 4 + 4 + 1
    responses = sdk.responses.input_tokens.with_raw_response.count(model=model, input="Say hello")
    assert responses.status_code == 200 and responses.headers["x-gateway-token-count"] == "estimate"
    assert responses.parse().input_tokens > 0
