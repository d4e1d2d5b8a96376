"""How the cache replays what it stored (gateway.cache.answers): a stored stream as JSON or as a stream,
a stored whole answer as a stream; nothing of the answer (reasoning included) is lost on the way."""

from __future__ import annotations

import json
from typing import Any

from gateway.cache.answers import CachedAnswer, as_json, as_sse
from gateway.upstream.stream_folding import gather_sse

HEAD = {"id": "chatcmpl-w", "object": "chat.completion.chunk", "created": 1, "model": "m"}
USAGE = {"prompt_tokens": 5, "completion_tokens": 3, "total_tokens": 8}
THOUGHT_CHUNKS = [
    {**HEAD, "choices": [{"index": 0, "delta": {"role": "assistant", "reasoning_content": "Six "}}]},
    {**HEAD, "choices": [{"index": 0, "delta": {"reasoning_content": "times seven."}}]},
    {**HEAD, "choices": [{"index": 0, "delta": {"content": "42"}}]},
    {**HEAD, "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]},
    {**HEAD, "choices": [], "usage": USAGE},
]
MESSAGE = {"role": "assistant", "content": "42", "reasoning_content": "Six times seven."}


def stored_stream() -> CachedAnswer:
    return CachedAnswer("chat/completions", chunks=[json.dumps(chunk).encode() for chunk in THOUGHT_CHUNKS])


def replayed(events: list[bytes]) -> dict[str, Any]:
    gathered = gather_sse("chat/completions", events)
    assert gathered.completed and gathered.error is None
    return gathered.answer()


def test_a_stored_stream_keeps_its_reasoning_as_json() -> None:
    answer = json.loads(as_json(stored_stream()))
    assert answer["choices"] == [{"index": 0, "message": MESSAGE, "logprobs": None, "finish_reason": "stop"}]
    assert answer["usage"] == USAGE and answer["id"] != "chatcmpl-w"  # a fresh id


def test_a_stored_stream_keeps_its_reasoning_as_a_stream() -> None:
    events = as_sse(stored_stream(), include_usage=True)
    chunks = [json.loads(event[6:]) for event in events[:-1]]
    assert [chunk["choices"] for chunk in chunks] == [chunk["choices"] for chunk in THOUGHT_CHUNKS]  # as stored
    assert replayed(events)["choices"][0]["message"] == MESSAGE


def test_a_stored_whole_answer_keeps_its_reasoning_as_a_stream() -> None:
    whole = {"id": "chatcmpl-w", "object": "chat.completion", "created": 1, "model": "m", "system_fingerprint": "fp",
             "choices": [{"index": 0, "message": {**MESSAGE, "refusal": None, "tool_calls": []},
                          "logprobs": None, "finish_reason": "stop"}], "usage": USAGE}
    events = as_sse(CachedAnswer("chat/completions", body=json.dumps(whole).encode()), include_usage=True)
    answer = replayed(events)
    assert answer["choices"] == [{"index": 0, "message": MESSAGE, "logprobs": None, "finish_reason": "stop"}]
    assert (answer["system_fingerprint"], answer["usage"]) == ("fp", USAGE)


def test_a_stored_whole_answer_with_tool_calls_and_logprobs_folds_back_the_same() -> None:
    logprobs = {"content": [{"token": "x", "logprob": -0.1, "bytes": [120], "top_logprobs": []}], "refusal": None}
    calls = [{"id": "call_1", "type": "function", "function": {"name": "f", "arguments": "{}"}}]
    choice = {"index": 0, "message": {"role": "assistant", "content": None, "tool_calls": calls},
              "logprobs": logprobs, "finish_reason": "tool_calls"}
    whole = {"id": "c", "object": "chat.completion", "created": 1, "model": "m", "choices": [choice]}
    events = as_sse(CachedAnswer("chat/completions", body=json.dumps(whole).encode()), include_usage=False)
    assert replayed(events)["choices"] == [choice]
