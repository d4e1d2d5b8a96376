"""Which choices of a stream finished: a `[DONE]` with a choice still open is a stream the worker cut."""

from __future__ import annotations

from typing import Any

import pytest

from gateway.upstream.stream_choices import ChoiceTracker, cut_message, has_content


def chat_chunk(index: int, content: str | None = None, finish: str | None = None) -> dict[str, Any]:
    delta = {} if content is None else {"content": content}
    return {"object": "chat.completion.chunk", "choices": [{"index": index, "delta": delta, "finish_reason": finish}]}


def test_two_choices_one_finished_leaves_the_other_open() -> None:
    tracker = ChoiceTracker()
    assert tracker.read(chat_chunk(0, "Hel")) and tracker.read(chat_chunk(1, "Bon"))
    assert not tracker.read(chat_chunk(0, finish="stop"))
    assert tracker.read(chat_chunk(1, "jour"))
    assert tracker.unfinished() == [1]
    assert tracker.read(chat_chunk(1, "!", finish="length"))
    assert tracker.unfinished() == []


def test_a_role_chunk_alone_opens_its_choice() -> None:
    """llama-cpp-python's interrupted request: the role chunk, then `[DONE]`."""
    tracker = ChoiceTracker()
    role = {"choices": [{"index": 0, "delta": {"role": "assistant"}, "finish_reason": None}]}
    assert not tracker.read(role)
    assert tracker.unfinished() == [0]


def test_chunks_without_choices_open_nothing() -> None:
    tracker = ChoiceTracker()
    assert not tracker.read({"choices": [], "usage": {"prompt_tokens": 1}})
    assert not tracker.read({"id": "x"})
    assert tracker.unfinished() == []


def test_a_chunk_after_the_finish_does_not_open_the_choice_again() -> None:
    tracker = ChoiceTracker()
    tracker.read(chat_chunk(0, "a", finish="stop"))
    tracker.read(chat_chunk(0))
    assert tracker.unfinished() == []


def test_completions_chunks_and_several_choices_in_one_chunk() -> None:
    tracker = ChoiceTracker()
    both = {"object": "text_completion", "choices": [{"index": 0, "text": "a", "finish_reason": None},
                                                     {"index": 1, "text": "", "finish_reason": None}]}
    assert tracker.read(both)
    assert tracker.unfinished() == [0, 1]
    assert not tracker.read({"choices": [{"index": 1, "text": "", "finish_reason": "stop"}]})
    assert tracker.unfinished() == [0]
    assert tracker.read({"choices": [{"text": "b", "finish_reason": "stop"}]})  # no index: choice 0
    assert tracker.unfinished() == []


@pytest.mark.parametrize("delta", [{"tool_calls": [{"index": 0}]}, {"reasoning_content": "hm"}])
def test_content_is_text_reasoning_or_tool_calls(delta: dict[str, Any]) -> None:
    chunk = {"choices": [{"index": 0, "delta": delta, "finish_reason": None}]}
    assert ChoiceTracker().read(chunk) and has_content(chunk)
    assert not has_content({"choices": [{"index": 0, "delta": {"role": "assistant"}}]})


def test_a_chunk_that_is_not_openai_raises_as_has_content_does() -> None:
    for chunk in ({"choices": ["text"]}, {"choices": 3}):
        with pytest.raises((AttributeError, TypeError)):
            ChoiceTracker().read(chunk)
        with pytest.raises((AttributeError, TypeError)):
            has_content(chunk)


def test_the_message_names_the_open_choices() -> None:
    assert cut_message("w", [0]) == "worker 'w' ended the stream before choice 0 finished (no finish_reason)"
    assert cut_message("w", [0, 2]) == "worker 'w' ended the stream before choices 0, 2 finished (no finish_reason)"
