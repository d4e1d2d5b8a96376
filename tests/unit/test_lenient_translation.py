"""Translating a request without the fields its translation cannot carry (for the pipeline), keeping the
first refusal (for a model that must translate it)."""

from __future__ import annotations

from typing import Any

import pytest

from gateway.errors import InvalidRequest, Untranslatable
from gateway.surfaces.lenient_translation import translated_leniently
from gateway.surfaces.messages_checks import check_messages_request
from gateway.surfaces.messages_requests import messages_to_chat
from gateway.surfaces.responses_request import chat_body


def test_a_carried_request_is_translated_with_no_refusal() -> None:
    chat, refusal = translated_leniently(chat_body, {"model": "m", "input": "Hi"})
    assert refusal is None and chat["messages"] == [{"role": "user", "content": "Hi"}]


def test_each_field_it_cannot_carry_is_left_out_and_the_first_kept() -> None:
    body: dict[str, Any] = {"model": "m", "reasoning": {"effort": "high"}, "top_logprobs": 3, "input": [
        {"type": "reasoning", "summary": []}, {"role": "user", "content": [
            {"type": "input_text", "text": "Hi"}, {"type": "input_file", "file_id": "f"}]}]}
    chat, refusal = translated_leniently(chat_body, body)
    assert refusal is not None and refusal.param == "top_logprobs"
    assert chat["messages"] == [{"role": "user", "content": "Hi"}]
    assert body["reasoning"] == {"effort": "high"} and len(body["input"]) == 2  # the client's body untouched


def test_anthropic_paths_leave_out_the_block() -> None:
    def translate(body: dict[str, Any]) -> dict[str, Any]:
        check_messages_request(body)
        return messages_to_chat(body)

    body = {"model": "m", "max_tokens": 8, "messages": [{"role": "user", "content": [
        {"type": "text", "text": "Hi"}, {"type": "document", "source": {}}]}]}
    chat, refusal = translated_leniently(translate, body)
    assert refusal is not None and refusal.param == "messages.0.content.1.type"
    assert chat["messages"] == [{"role": "user", "content": "Hi"}]


def test_a_stripped_request_that_no_longer_holds_is_refused_with_the_first_refusal() -> None:
    with pytest.raises(Untranslatable) as refused:
        translated_leniently(chat_body, {"model": "m", "input": [{"type": "reasoning", "summary": []}]})
    assert refused.value.param == "input[0].type"  # without it, `input` would be empty


def test_a_malformed_request_is_refused_as_ever() -> None:
    with pytest.raises(InvalidRequest) as refused:
        translated_leniently(chat_body, {"model": "m", "input": "Hi", "max_output_tokens": 0})
    assert not isinstance(refused.value, Untranslatable) and refused.value.param == "max_output_tokens"
