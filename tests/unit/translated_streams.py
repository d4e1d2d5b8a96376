"""Chat completions streams as the relay yields them (vLLM's shapes: a role chunk, content or tool call
pieces, the finish chunk, the usage chunk, `[DONE]`), for the translated surfaces' byte-identity tests
(`test_translated_stream_bytes`), and the normalization that makes their output comparable across runs
(the ids and times a translation makes up)."""

from __future__ import annotations

import hashlib
import re
from typing import Any

import msgspec

DONE = b"data: [DONE]\n\n"
_IDS = re.compile(rb'"(resp|msg|fc|call|toolu)_[0-9A-Za-z]+"')
_TIMES = re.compile(rb'"created_at":\d+')


def event(payload: dict[str, Any]) -> bytes:
    return b"data: " + msgspec.json.encode(payload) + b"\n\n"


def chunk(delta: dict[str, Any] | None = None, finish: str | None = None, **extra: Any) -> bytes:
    choice: dict[str, Any] = {"index": 0, "delta": delta or {}, "logprobs": None, "finish_reason": finish, **extra}
    return event({"id": "chatcmpl-7f3a", "object": "chat.completion.chunk", "created": 1733500000,
                  "model": "sim-model", "choices": [choice]})


def usage(prompt: int, completion: int) -> bytes:
    return event({"id": "chatcmpl-7f3a", "object": "chat.completion.chunk", "created": 1733500000,
                  "model": "sim-model", "choices": [],
                  "usage": {"prompt_tokens": prompt, "completion_tokens": completion,
                            "total_tokens": prompt + completion}})


ROLE = chunk({"role": "assistant", "content": ""})
TEXTS = ["Hel", 'lo "quoted"', "\n\tand \\ back", "é ✓ 😀", "<b>&amp;</b>", " \u2028 end"]
CALL_A = {"index": 0, "id": "call_a", "type": "function", "function": {"name": "get_weather", "arguments": ""}}
CALL_B = {"index": 1, "id": "call_b", "type": "function", "function": {"name": "get_time", "arguments": "{}"}}
ERROR = event({"error": {"message": "worker 'w' broke off the stream (ServerDisconnectedError)",
                         "type": "api_error", "param": None, "code": "worker_unreachable"}})

STREAMS: dict[str, list[bytes]] = {
    "text": [ROLE, *(chunk({"content": text}) for text in TEXTS), chunk({}, "stop", stop_reason=None),
             usage(12, 6), DONE],
    "stop-sequence": [ROLE, chunk({"content": "one"}), chunk({"content": " two"}), chunk({}, "stop", stop_reason="END"),
                      usage(5, 2), DONE],
    "tools": [ROLE, chunk({"content": "Checking"}), chunk({"content": " both."}), chunk({"tool_calls": [CALL_A]}),
              chunk({"tool_calls": [{"index": 0, "function": {"arguments": '{"city": '}}]}),
              chunk({"tool_calls": [{"index": 0, "function": {"arguments": '"Paris"}'}}]}),
              chunk({"tool_calls": [CALL_B]}), chunk({}, "tool_calls"), usage(30, 9), DONE],
    "thinking": [ROLE, chunk({"reasoning_content": "Six times"}), chunk({"reasoning_content": " seven."}),
                 chunk({"content": "42"}), chunk({}, "stop"), usage(9, 4), DONE],
    "length": [ROLE, chunk({"content": "Hel"}), chunk({"content": "lo"}, "length"), usage(3, 2), DONE],
    "no-usage": [ROLE, chunk({"content": "Hi"}), chunk({}, "stop"), DONE],
    "error": [ROLE, chunk({"content": "Hi"}), ERROR, DONE],
    "cut": [ROLE, chunk({"content": "Hi"}), chunk({"content": " there"})],
}

RESPONSES_BODY = {"model": "m", "input": "Weather?", "instructions": "Be terse", "max_output_tokens": 64,
                  "store": False, "stream": True, "metadata": {"k": "v"}}
MESSAGES_BODIES = {
    "plain": {"model": "claude-like", "max_tokens": 64, "stream": True, "stop_sequences": ["END"],
              "messages": [{"role": "user", "content": "Weather?"}]},
    "thinking": {"model": "claude-like", "max_tokens": 64, "stream": True, "thinking": {"type": "enabled"},
                 "messages": [{"role": "user", "content": "6*7?"}]},
}


def normalized(out: bytes) -> bytes:
    """`out` with the ids and times a translation makes up (random or the clock's) replaced by fixed ones."""
    return _TIMES.sub(b'"created_at":0', _IDS.sub(rb'"\1_ID"', out))


def digest(out: bytes) -> str:
    return hashlib.sha256(normalized(out)).hexdigest()[:16]
