"""The relays' shared state (`gateway.upstream.sse_stream_state`): a stream fed in pieces comes out whole,
counted and captured; what fails it fails it."""

from __future__ import annotations

from typing import Any

import msgspec
import pytest

from gateway.errors import UpstreamError
from gateway.upstream.sse_stream_state import DONE, SseStreamState

ID = '"id":"chatcmpl-1","object":"chat.completion.chunk","created":1,"model":"m"'


def chunk(delta: str, finish: str = "null", index: int = 0, extra: str = "") -> bytes:
    return ("{" + ID + f',"choices":[{{"index":{index},"delta":{delta},"logprobs":null,'
            f'"finish_reason":{finish}}}]{extra}}}').encode()


PLAIN = chunk('{"content":"Hello"}')


def events(out: bytes) -> list[Any]:
    return [msgspec.json.decode(e[6:]) if e != b"data: [DONE]" else "[DONE]" for e in out.split(b"\n\n") if e]


def stream(*payloads: bytes) -> bytes:
    return b"".join(b"data: " + p + b"\n\n" for p in payloads) + b"data: [DONE]\n\n"


def relayed(data: bytes, *, pieces: int = 1, usage: bool = False) -> tuple[bytes, SseStreamState]:
    state = SseStreamState("w", client_wants_usage=usage, prompt_tokens_estimate=3, on_first=None, capture=[])
    size = -(-len(data) // pieces)
    out = b"".join(state.feed(data[i:i + size]) for i in range(0, len(data), size))
    return out + state.end(), state


def test_a_stream_fed_in_pieces_is_passed_on_counted_and_captured() -> None:
    role, finish = chunk('{"role":"assistant","content":""}'), chunk("{}", finish='"stop"')
    data = stream(role, PLAIN, PLAIN, finish)
    out, state = relayed(data, pieces=7, usage=True)
    assert out.startswith(data[: -len(DONE)]) and out.endswith(DONE)
    outcome = state.outcome
    assert (outcome.chunks, outcome.content_chunks, outcome.completed) == (4, 2, True)
    assert state.capture == [role, PLAIN, PLAIN, finish]
    assert events(out)[-2]["usage"] == {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5}
    assert outcome.last["choices"][0]["finish_reason"] == "stop"


def test_with_two_choices_every_chunk_is_decoded_and_an_unfinished_one_fails_the_stream() -> None:
    data = stream(chunk('{"content":"a"}'), chunk('{"content":"b"}', index=1), chunk('{"content":"a"}'),
                  chunk("{}", finish='"stop"'))
    state = SseStreamState("w", client_wants_usage=False, prompt_tokens_estimate=3, on_first=None, capture=None)
    state.feed(data)
    with pytest.raises(UpstreamError, match="choice 1"):
        state.end()


def test_an_error_chunk_keeps_the_events_before_it_pending_for_the_error_event() -> None:
    state = SseStreamState("w", client_wants_usage=False, prompt_tokens_estimate=3, on_first=None, capture=None)
    state.feed(b"data: " + chunk('{"role":"assistant","content":""}') + b"\n\n")
    with pytest.raises(Exception, match="boom"):
        state.feed(b"data: " + PLAIN + b"\n\ndata: {\"error\":{\"message\":\"boom\"}}\n\n")
    assert state.pending == b"data: " + PLAIN + b"\n\n"
