"""End to end: what `make run` serves. A real `llm-gateway serve` process with the shipped catalog
(config/models.yaml, only its local workers' ports moved to free ones) starts its two llama-server
workers (SmolLM2: chat with parallel slots, and embeddings), and the official openai SDK uses it as a
client would: several streams and calls at once, today's request shapes, embeddings, readiness."""

from __future__ import annotations

import asyncio
import json
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

from testkit.loopback import free_port

pytestmark = pytest.mark.e2e

SHIPPED_CATALOG = Path(__file__).resolve().parents[2] / "config" / "models.yaml"
STARTUP_S = 120


def catalog_on_free_ports(target: Path) -> None:
    text = SHIPPED_CATALOG.read_text()
    text, moved = re.subn(r"(?m)^(\s+port:\s*)80\d\d\b", lambda m: f"{m.group(1)}{free_port()}", text)
    assert moved == 2, "the shipped catalog has two local workers"
    target.write_text(text)


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    folder = tmp_path_factory.mktemp("stack")
    catalog, log = folder / "models.yaml", folder / "gateway.log"
    catalog_on_free_ports(catalog)
    port = free_port()
    with log.open("wb") as output:
        process = subprocess.Popen([sys.executable, "-m", "gateway", "serve", "--config", str(catalog),
                                    "--port", str(port)], stdout=output, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until_live(url, process, log)
        yield url
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def wait_until_live(url: str, process: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + STARTUP_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"llm-gateway serve exited with {process.returncode}:\n{log.read_text()[-3000:]}")
        try:
            if httpx.get(url + "/livez", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        threading.Event().wait(0.2)
    pytest.fail(f"llm-gateway serve was not live within {STARTUP_S} s")


def test_the_stack_is_ready_once_it_is_up(stack: str) -> None:
    """Every model the catalog lists has a worker (the required `nomic-embed-text` included): ready."""
    deadline = time.monotonic() + 30  # the first health checks of the workers
    while (status := httpx.get(stack + "/readyz", timeout=5).status_code) != 200 and time.monotonic() < deadline:
        threading.Event().wait(0.5)
    assert status == 200, httpx.get(stack + "/readyz", timeout=5).text


async def test_eight_streams_at_once_each_finish(stack: str) -> None:
    async with openai.AsyncOpenAI(base_url=stack + "/v1", api_key="unused", max_retries=0) as client:
        async def stream(n: int) -> tuple[str, str | None]:
            text, finish = "", None
            chunks = await client.chat.completions.create(
                model="mistral", max_tokens=16, stream=True,
                messages=[{"role": "user", "content": f"Count from {n} to {n + 5}."}])
            async for chunk in chunks:
                if chunk.choices:
                    text += chunk.choices[0].delta.content or ""
                    finish = chunk.choices[0].finish_reason or finish
            return text, finish

        results = await asyncio.gather(*(stream(n) for n in range(8)))
    assert all(text and finish in ("stop", "length") for text, finish in results), results


async def test_eight_calls_at_once_each_finish(stack: str) -> None:
    async with openai.AsyncOpenAI(base_url=stack + "/v1", api_key="unused", max_retries=0) as client:
        answers = await asyncio.gather(*(client.chat.completions.create(
            model="mistral", max_tokens=16, messages=[{"role": "user", "content": f"Name a colour, {n}."}])
            for n in range(8)))
    assert all(a.choices[0].message.content and a.choices[0].finish_reason in ("stop", "length") for a in answers)


def test_content_parts_and_max_completion_tokens(stack: str) -> None:
    with openai.OpenAI(base_url=stack + "/v1", api_key="unused", max_retries=0) as client:
        answer = client.chat.completions.create(
            model="mistral", max_completion_tokens=5, temperature=0,
            messages=[{"role": "system", "content": [{"type": "text", "text": "Be brief."}]},
                      {"role": "user", "content": [{"type": "text", "text": "Say hello"},
                                                   {"type": "text", "text": "to Paris."}]}])
    assert answer.choices[0].message.content
    assert answer.usage is not None and 0 < answer.usage.completion_tokens <= 5


def test_json_object_response_format(stack: str) -> None:
    with openai.OpenAI(base_url=stack + "/v1", api_key="unused", max_retries=0) as client:
        answer = client.chat.completions.create(
            model="mistral", max_tokens=60, temperature=0, response_format={"type": "json_object"},
            messages=[{"role": "user", "content": "Give a JSON object with a field `city` set to Paris."}])
    content = answer.choices[0].message.content or ""
    assert content.lstrip().startswith("{")
    if answer.choices[0].finish_reason == "stop":  # a whole answer is valid JSON (the worker's grammar)
        assert isinstance(json.loads(content), dict)


WEATHER_TOOL: Any = {"type": "function", "function": {
    "name": "get_weather", "description": "The weather in a city",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}
TOOL_HISTORY: list[Any] = [  # what an agent sends after one call of the tool
    {"role": "user", "content": "What is the weather in Rome?"},
    {"role": "assistant", "content": None, "tool_calls": [
        {"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": '{"city": "Rome"}'}}]},
    {"role": "tool", "tool_call_id": "call_1", "content": "Sunny, 24 C"},
    {"role": "user", "content": "And in Paris?"}]


def test_tools_and_a_tool_call_history(stack: str) -> None:
    """Tools reach the model (listed in its prompt by the shipped chatml-tools template, so the prompt is
    longer with them), a conversation with an earlier tool call and its result is read, and any call the
    model makes comes back as OpenAI's `tool_calls` (SmolLM2-135M rarely makes one: not asserted)."""
    with openai.OpenAI(base_url=stack + "/v1", api_key="unused", max_retries=0) as client:
        with_tools = client.chat.completions.create(model="mistral", max_tokens=24, temperature=0,
                                                    tools=[WEATHER_TOOL], messages=TOOL_HISTORY)
        without = client.chat.completions.create(model="mistral", max_tokens=1, temperature=0,
                                                 messages=TOOL_HISTORY)
    choice = with_tools.choices[0]
    assert choice.finish_reason in ("stop", "length", "tool_calls")
    assert with_tools.usage is not None and without.usage is not None
    assert with_tools.usage.prompt_tokens > without.usage.prompt_tokens + 30  # the tool's description
    for call in choice.message.tool_calls or []:
        assert call.type == "function" and call.function.name == "get_weather"
        assert isinstance(json.loads(call.function.arguments), dict)


def test_embeddings_with_the_sdks_default_encoding(stack: str) -> None:
    with openai.OpenAI(base_url=stack + "/v1", api_key="unused", max_retries=0) as client:
        # The SDK asks for base64 unless told otherwise, and decodes it.
        vectors = client.embeddings.create(model="nomic-embed-text", input=["a habit", "a goal"])
    assert [len(item.embedding) for item in vectors.data] == [576, 576]
    assert vectors.data[0].embedding != vectors.data[1].embedding
    assert vectors.usage.prompt_tokens > 0
