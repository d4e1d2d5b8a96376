"""End to end: the anthropic SDK's Messages calls answered by the embedded llama.cpp worker (SmolLM2-135M
behind `llama-server`), translated into chat completions by the gateway."""

from __future__ import annotations

from collections.abc import Iterator

import anthropic
import pytest
from anthropic.types import MessageParam

from gateway.workers.local_processes import LocalWorkerSupervisor
from routing.catalog import parse_catalog
from testkit.loopback import free_port
from tests.conftest import start_gateway
from tests.e2e.test_local_worker import CATALOG

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def client() -> Iterator[anthropic.Anthropic]:
    text = CATALOG.format(port=free_port())
    supervisor = LocalWorkerSupervisor(list(parse_catalog(text).workers))
    supervisor.start_in_thread()
    try:
        with start_gateway(text) as gateway, \
                anthropic.Anthropic(base_url=gateway.url, api_key="unused", max_retries=2) as sdk:
            yield sdk
    finally:
        supervisor.stop_thread()


def test_create_with_the_real_model(client: anthropic.Anthropic) -> None:
    message = client.messages.create(model="smollm2", max_tokens=24, system="Answer briefly.",
                                     messages=[{"role": "user", "content": "What is the capital of France?"}])
    assert message.model == "smollm2" and message.content[0].type == "text" and message.content[0].text.strip()
    assert message.stop_reason in ("end_turn", "max_tokens")
    assert message.usage.input_tokens > 0 and 0 < message.usage.output_tokens <= 24


def test_stream_with_the_real_model(client: anthropic.Anthropic) -> None:
    with client.messages.stream(model="smollm2", max_tokens=12,
                                messages=[{"role": "user", "content": "Say hello."}]) as stream:
        events = list(stream)
        kinds = [event.type for event in events]
        # llama-server leaves message_start out now and then under load: the gateway makes it (messages_native).
        assert "message_start" in kinds, (kinds, stream.response.headers)
        text = "".join(event.delta.text for event in events
                       if event.type == "content_block_delta" and event.delta.type == "text_delta")
        final = stream.get_final_message()
    assert text.strip() and final.content[0].type == "text" and final.content[0].text == text
    assert final.usage.input_tokens > 0 and 0 < final.usage.output_tokens <= 12


def test_count_tokens_and_errors_with_the_real_model(client: anthropic.Anthropic) -> None:
    assert client.messages.count_tokens(model="smollm2", messages=[{"role": "user", "content": "Hi"}]).input_tokens
    with pytest.raises(anthropic.NotFoundError):
        client.messages.create(model="claude-sonnet-4-5", max_tokens=4, messages=[{"role": "user", "content": "Hi"}])


def test_count_tokens_is_what_the_real_worker_counts_when_the_message_is_sent(client: anthropic.Anthropic) -> None:
    """llama-server counts (its chat template, then its tokenizer): the count is the prompt's tokens as
    the same worker reports them for the message itself (sent natively: Anthropic's usage counts the
    tokens read from the worker's cache apart)."""
    messages: list[MessageParam] = [{"role": "user", "content": "What is the capital of Norway?"}]
    raw = client.messages.with_raw_response.count_tokens(model="smollm2", system="Answer in one word.",
                                                          messages=messages)
    assert raw.headers["x-gateway-token-count"] == "exact"
    sent = client.messages.create(model="smollm2", max_tokens=1, system="Answer in one word.", messages=messages)
    prompt = sent.usage.input_tokens + (sent.usage.cache_read_input_tokens or 0)
    assert raw.parse().input_tokens == prompt > 0


def test_a_prompt_beyond_the_workers_context_is_the_clients_400(client: anthropic.Anthropic) -> None:
    with pytest.raises(anthropic.BadRequestError) as caught:
        client.messages.create(model="smollm2", max_tokens=8,
                               messages=[{"role": "user", "content": "tell me more " * 2000}])
    assert caught.value.body["type"] == "error"  # type: ignore[index]
