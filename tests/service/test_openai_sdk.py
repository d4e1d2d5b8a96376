"""The official openai SDK, sync and async, streaming and not, through the gateway to a simulated vLLM."""

from __future__ import annotations

from collections.abc import Iterator

import openai
import pytest
from openai.types.chat import ChatCompletionMessageParam, ChatCompletionToolParam

from simulator import SimulatorThread
from tests.conftest import SIM_MODEL
from tests.servers import ServerThread

MESSAGES: list[ChatCompletionMessageParam] = [
    {"role": "system", "content": "You are terse."}, {"role": "user", "content": "Say hello"}]


@pytest.fixture
def sdk(gateway: ServerThread) -> Iterator[openai.OpenAI]:
    """The sync client, closed after the test (left open, its socket is closed by the garbage collector,
    with a ResourceWarning, during whichever test is running then)."""
    with openai.OpenAI(base_url=gateway.url + "/v1", api_key="client-secret", max_retries=0) as client:
        yield client


def test_chat_non_streaming(sdk: openai.OpenAI, sim: SimulatorThread) -> None:
    raw = sdk.chat.completions.with_raw_response.create(model="chat", messages=MESSAGES)
    completion = raw.parse()
    assert completion.choices[0].message.content
    assert completion.choices[0].finish_reason in ("stop", "length")
    assert completion.usage is not None and completion.usage.total_tokens > 0
    assert raw.headers["x-gateway-model"] == "chat"
    assert raw.headers["x-gateway-route"] == "explicit"
    assert raw.headers["x-gateway-worker"] == "sim-a"
    [record] = [r for r in sim.records if r.path == "/v1/chat/completions"]
    assert record.body is not None and record.body["model"] == SIM_MODEL  # rewritten to the worker's id


def test_unused_fields_reach_the_worker_untouched(sdk: openai.OpenAI, sim: SimulatorThread) -> None:
    tools: list[ChatCompletionToolParam] = [
        {"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}]
    sdk.chat.completions.create(
        model="chat", messages=MESSAGES, tools=tools, response_format={"type": "json_object"}, seed=42,
        logprobs=True, top_logprobs=2, extra_body={"top_k": 5, "vendor_extra": {"nested": [1, 2]}})
    [record] = [r for r in sim.records if r.path == "/v1/chat/completions"]
    assert record.body is not None
    assert record.body["tools"] == tools
    assert record.body["response_format"] == {"type": "json_object"}
    assert record.body["seed"] == 42 and record.body["logprobs"] is True and record.body["top_logprobs"] == 2
    assert record.body["top_k"] == 5 and record.body["vendor_extra"] == {"nested": [1, 2]}
    assert record.body["messages"] == MESSAGES


def test_request_id_round_trip_and_client_key_not_forwarded(sdk: openai.OpenAI, sim: SimulatorThread) -> None:
    raw = sdk.chat.completions.with_raw_response.create(
        model="chat", messages=MESSAGES, extra_headers={"X-Request-Id": "trace-123"})
    assert raw.headers["x-request-id"] == "trace-123"
    [record] = [r for r in sim.records if r.path == "/v1/chat/completions"]
    assert record.headers["x-request-id"] == "trace-123"
    assert "authorization" not in record.headers
    assert "client-secret" not in repr(record.headers)


def test_request_id_generated_when_absent(sdk: openai.OpenAI) -> None:
    raw = sdk.chat.completions.with_raw_response.create(model="chat", messages=MESSAGES)
    assert raw.headers["x-request-id"].startswith("req_")
    assert raw.parse()._request_id == raw.headers["x-request-id"]


def test_chat_streaming_sync(sdk: openai.OpenAI) -> None:
    chunks = list(sdk.chat.completions.create(model="chat", messages=MESSAGES, stream=True))
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text
    assert chunks[-1].choices[0].finish_reason in ("stop", "length")
    assert all(c.usage is None for c in chunks)  # the client did not ask for usage


def test_chat_streaming_with_usage(sdk: openai.OpenAI) -> None:
    chunks = list(sdk.chat.completions.create(
        model="chat", messages=MESSAGES, stream=True, stream_options={"include_usage": True}))
    assert chunks[-1].choices == [] and chunks[-1].usage is not None
    content_chunks = [c for c in chunks if c.choices and c.choices[0].delta.content]
    assert chunks[-1].usage.completion_tokens == len(content_chunks)


async def test_async_client_streaming_and_not(gateway: ServerThread) -> None:
    async_client = openai.AsyncOpenAI(base_url=gateway.url + "/v1", api_key="k", max_retries=0)
    completion = await async_client.chat.completions.create(model="chat", messages=MESSAGES)
    assert completion.choices[0].message.content
    stream = await async_client.chat.completions.create(model="chat", messages=MESSAGES, stream=True)
    parts = [chunk.choices[0].delta.content or "" async for chunk in stream if chunk.choices]
    assert "".join(parts)
    await async_client.close()


def test_routing_without_model_uses_rules_then_default(sdk: openai.OpenAI) -> None:
    quick = sdk.chat.completions.with_raw_response.create(
        model="", messages=[{"role": "user", "content": "A QUICK tip please"}])
    assert quick.headers["x-gateway-model"] == "quick" and quick.headers["x-gateway-route"] == "quick-rule"
    default = sdk.chat.completions.with_raw_response.create(
        model="", messages=[{"role": "user", "content": "Tell me about the sea"}])
    assert default.headers["x-gateway-model"] == "chat" and default.headers["x-gateway-route"] == "default"


def test_completions_and_embeddings(sdk: openai.OpenAI) -> None:
    completion = sdk.completions.create(model="chat", prompt="Once upon a time", max_tokens=5)
    assert completion.choices[0].text
    streamed = list(sdk.completions.create(model="chat", prompt="Once", max_tokens=5, stream=True))
    assert "".join(s.choices[0].text for s in streamed if s.choices)
    embedding = sdk.embeddings.create(model="chat", input=["a", "b"])
    assert len(embedding.data) == 2 and embedding.data[0].embedding


def test_models_list_and_retrieve(sdk: openai.OpenAI) -> None:
    ids = [m.id for m in sdk.models.list()]
    assert "chat" in ids and "quick" in ids
    assert sdk.models.retrieve("chat").id == "chat"
    with pytest.raises(openai.NotFoundError) as caught:
        sdk.models.retrieve("nope")
    assert caught.value.code == "model_not_found"
