"""The one stream folder (gateway.upstream.stream_folding): a stream's chunks folded into the answer a
non-streaming request would have got, and the gateway's SSE read as a client reads it."""

from __future__ import annotations

import json
from typing import Any

from gateway.upstream.stream_folding import StreamFolder, StreamGatherer, gather_sse

HEAD = {"id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 7, "model": "m"}
USAGE = {"prompt_tokens": 3, "completion_tokens": 4, "total_tokens": 7}


def sse(*payloads: object) -> list[bytes]:
    return [b"data: " + (p if isinstance(p, bytes) else json.dumps(p).encode()) + b"\n\n" for p in payloads]


def chunk(*choices: dict[str, Any], **fields: Any) -> dict[str, Any]:
    return {**HEAD, "choices": list(choices), **fields}


def delta(index: int = 0, finish_reason: str | None = None, **fields: Any) -> dict[str, Any]:
    return {"index": index, "delta": fields, "logprobs": None, "finish_reason": finish_reason}


def fold(endpoint: str, *chunks: dict[str, Any]) -> dict[str, Any]:
    folder = StreamFolder(endpoint)
    for one in chunks:
        folder.add(one)
    return folder.answer()


def test_a_chat_stream_folds_into_one_answer() -> None:
    events = sse(
        chunk(delta(role="assistant", content="")),
        chunk(delta(content="Hel")),
        chunk(delta(content="lo", reasoning_content="think")),
        chunk(delta(tool_calls=[{"index": 0, "id": "call_1", "type": "function",
                                 "function": {"name": "get_", "arguments": "{\"a\""}}])),
        chunk(delta(tool_calls=[{"index": 0, "function": {"name": "weather", "arguments": ": 1}"}}])),
        chunk(delta(finish_reason="tool_calls")),
        chunk(usage=USAGE),
        b"[DONE]")
    folded = gather_sse("chat/completions", events)
    assert folded.completed and folded.error is None
    assert folded.answer() == {
        "id": "chatcmpl-1", "object": "chat.completion", "created": 7, "model": "m",
        "choices": [{"index": 0, "logprobs": None, "finish_reason": "tool_calls", "message": {
            "role": "assistant", "content": "Hello", "reasoning_content": "think",
            "tool_calls": [{"id": "call_1", "type": "function",
                            "function": {"name": "get_weather", "arguments": "{\"a\": 1}"}}]}}],
        "usage": USAGE}


def test_a_plain_answer_folds_to_a_plain_message() -> None:
    answer = fold("chat/completions", chunk(delta(role="assistant", content="")), chunk(delta(content="Hi")),
                  chunk(delta(finish_reason="stop"), system_fingerprint="fp_1"))
    assert answer["choices"] == [{"index": 0, "message": {"role": "assistant", "content": "Hi"}, "logprobs": None,
                                  "finish_reason": "stop"}]
    assert answer["system_fingerprint"] == "fp_1" and "usage" not in answer


def test_reasoning_alone_then_content() -> None:
    answer = fold("chat/completions", chunk(delta(role="assistant", reasoning_content="Let me ")),
                  chunk(delta(reasoning_content="think.")), chunk(delta(content="42")),
                  chunk(delta(finish_reason="stop")))
    assert answer["choices"][0]["message"] == {"role": "assistant", "content": "42",
                                               "reasoning_content": "Let me think."}


def test_interleaved_tool_calls_merge_by_index() -> None:
    answer = fold("chat/completions",
                  chunk(delta(role="assistant", content="", tool_calls=[
                      {"index": 0, "id": "a", "type": "function", "function": {"name": "one", "arguments": ""}},
                      {"index": 1, "id": "b", "type": "function", "function": {"name": "two", "arguments": "{"}}])),
                  chunk(delta(tool_calls=[{"index": 1, "function": {"arguments": "}"}}])),
                  chunk(delta(tool_calls=[{"index": 0, "function": {"arguments": "{}"}}])),
                  chunk(delta(finish_reason="tool_calls")))
    message = answer["choices"][0]["message"]
    assert message["content"] is None  # a tool-call answer has no content, as a non-streaming one
    assert [(c["id"], c["function"]["name"], c["function"]["arguments"]) for c in message["tool_calls"]] == [
        ("a", "one", "{}"), ("b", "two", "{}")]


def test_whole_tool_calls_without_indices_keep_their_places() -> None:
    answer = fold("chat/completions", chunk(delta(tool_calls=[
        {"id": "a", "function": {"name": "one", "arguments": "{}"}},
        {"id": "b", "function": {"name": "two", "arguments": "{}"}}])))
    assert [c["id"] for c in answer["choices"][0]["message"]["tool_calls"]] == ["a", "b"]


def test_a_refusal() -> None:
    answer = fold("chat/completions", chunk(delta(role="assistant", content="", refusal="I can")),
                  chunk(delta(refusal="not.")), chunk(delta(finish_reason="stop")))
    assert answer["choices"][0]["message"] == {"role": "assistant", "content": None, "refusal": "I cannot."}


def test_several_choices_fold_by_index_in_any_order() -> None:
    answer = fold("chat/completions", chunk(delta(1, content="B"), delta(0, content="A")),
                  chunk(delta(0, content="a")), chunk(delta(1, content="b", finish_reason="length")),
                  chunk(delta(0, finish_reason="stop")))
    assert [(c["index"], c["message"]["content"], c["finish_reason"]) for c in answer["choices"]] == [
        (0, "Aa", "stop"), (1, "Bb", "length")]


def test_logprobs_are_concatenated() -> None:
    def token(text: str) -> dict[str, Any]:
        return {"token": text, "logprob": -0.5, "bytes": list(text.encode()), "top_logprobs": []}

    first, second = (chunk({**delta(content=t), "logprobs": {"content": [token(t)], "refusal": None}}) for t in "ab")
    answer = fold("chat/completions", first, second)
    assert answer["choices"][0]["logprobs"] == {"content": [token("a"), token("b")], "refusal": None}
    completions = fold("completions",
                       {"id": "cmpl-1", "choices": [{"index": 0, "text": "x", "logprobs": {
                           "tokens": ["x"], "token_logprobs": [-1.0], "top_logprobs": [None], "text_offset": [0]}}]},
                       {"id": "cmpl-1", "choices": [{"index": 0, "text": "y", "finish_reason": "stop", "logprobs": {
                           "tokens": ["y"], "token_logprobs": [-2.0], "top_logprobs": [None], "text_offset": [1]}}]})
    assert completions["choices"] == [{"index": 0, "text": "xy", "finish_reason": "stop", "logprobs": {
        "tokens": ["x", "y"], "token_logprobs": [-1.0, -2.0], "top_logprobs": [None, None], "text_offset": [0, 1]}}]


def test_a_usage_only_last_chunk_and_the_head_of_the_first() -> None:
    answer = fold("completions", {"id": "cmpl-1", "created": 1, "model": "m", "choices": [{"index": 0, "text": "x"}]},
                  {"id": "cmpl-other", "created": 2, "model": "m", "choices": [], "usage": USAGE})
    assert (answer["id"], answer["object"], answer["created"], answer["usage"]) == (
        "cmpl-1", "text_completion", 1, USAGE)


def test_a_completions_stream_with_an_error_event() -> None:
    events = sse({"id": "cmpl-1", "choices": [{"index": 0, "text": "Once"}]},
                 {"id": "cmpl-1", "choices": [{"index": 0, "text": " upon"}]},
                 {"error": {"message": "worker broke off", "type": "api_error", "param": None, "code": "x"}},
                 b"[DONE]")
    folded = gather_sse("completions", [b"".join(events)])  # several events in one item are fine too
    assert folded.completed
    assert folded.answer()["choices"] == [{"index": 0, "text": "Once upon", "logprobs": None, "finish_reason": None}]
    assert folded.error == {"message": "worker broke off", "type": "api_error", "param": None, "code": "x"}


def test_the_gatherer_gives_the_text_as_it_comes_and_stops_at_done() -> None:
    stream = b"".join(sse(chunk(delta(role="assistant", content="")), chunk(delta(content="Hel")),
                          chunk(delta(content="lo")), b"[DONE]", chunk(delta(content="after the end"))))
    gathered = StreamGatherer("chat/completions")
    texts = [gathered.feed(stream[i:i + 10]) for i in range(0, len(stream), 10)]
    assert "".join(texts) == "Hello" and gathered.end() == ""
    assert gathered.completed and gathered.error is None
    assert gathered.answer()["choices"][0]["message"]["content"] == "Hello"


def test_a_chunk_that_is_not_json_is_an_error_and_no_done_is_not_completed() -> None:
    gathered = gather_sse("chat/completions", sse(chunk(delta(content="a")), b"{not json"))
    assert not gathered.completed
    assert gathered.error == {"message": "the stream carried a malformed stream chunk"}
    assert gathered.folder.usage is None
