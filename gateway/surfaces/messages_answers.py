"""A chat completions answer (what every worker gives, and what the cache and capture keep) as Anthropic's
message, and the gateway's errors as Anthropic's error object: the pieces the Messages surface's whole
answers and streams (`messages_stream`) share.

    finish_reason   stop → end_turn (stop_sequence when the worker says which of `stop_sequences` ended
                    it: vLLM's `stop_reason`), length → max_tokens, tool_calls → tool_use,
                    content_filter → refusal
    tool call       a `tool_use` block; `input` is the parsed arguments, or, when a worker wrote
                    arguments that are not a JSON object, {"invalid_json_arguments": "<their text>"}
                    (the client's tool then fails visibly rather than the whole answer)
    usage           prompt_tokens → input_tokens, completion_tokens → output_tokens
    reasoning       a worker's `reasoning_content` (or `reasoning`) as a first `thinking` block (its
                    `signature` empty: no worker signs), when the request enabled `thinking`
"""

from __future__ import annotations

import secrets
from typing import Any

import msgspec

from gateway.errors import GatewayError

Body = dict[str, Any]
_decode = msgspec.json.Decoder().decode
_encode = msgspec.json.Encoder().encode

INVALID_ARGUMENTS = "invalid_json_arguments"
"""The key a tool call's `input` holds a worker's arguments under when they are not a JSON object."""

_STOP_REASONS = {"stop": "end_turn", "length": "max_tokens", "tool_calls": "tool_use", "function_call": "tool_use",
                 "content_filter": "refusal"}
_ERROR_TYPES = {400: "invalid_request_error", 401: "authentication_error", 403: "permission_error",
                404: "not_found_error", 413: "request_too_large", 429: "rate_limit_error",
                503: "overloaded_error", 504: "timeout_error", 529: "overloaded_error"}


def anthropic_error(status: int, message: str) -> Body:
    """Anthropic's error object for an error of HTTP `status`."""
    kind = _ERROR_TYPES.get(status) or ("api_error" if status >= 500 else "invalid_request_error")
    return {"type": "error", "error": {"type": kind, "message": message}}


def error_of(error: GatewayError) -> Body:
    return anthropic_error(error.status_code(), error.message)


def message_id(worker_id: object) -> str:
    """An Anthropic message id (`msg_…`) from the worker's answer id, or a fresh one."""
    if isinstance(worker_id, str) and worker_id:
        return "msg_" + worker_id.removeprefix("chatcmpl-")
    return "msg_" + secrets.token_hex(12)


def stop_reason(finish_reason: object, matched: object, stop_sequences: object) -> tuple[str | None, str | None]:
    """(stop_reason, stop_sequence) for a choice that ended with `finish_reason`; `matched` is what the
    worker says stopped it (vLLM's `stop_reason`: the stop string, a token id, or null)."""
    if finish_reason is None:
        return None, None
    if finish_reason == "stop" and isinstance(matched, str) and isinstance(stop_sequences, list) \
            and matched in stop_sequences:
        return "stop_sequence", matched
    return _STOP_REASONS.get(str(finish_reason), "end_turn"), None


def tool_input(arguments: object) -> Body:
    """A tool call's arguments (JSON text) as a `tool_use` block's `input` object."""
    if not isinstance(arguments, str):
        return {INVALID_ARGUMENTS: arguments} if arguments else {}
    if not arguments.strip():
        return {}
    try:
        value = _decode(arguments)
    except msgspec.DecodeError:
        return {INVALID_ARGUMENTS: arguments}
    return value if isinstance(value, dict) else {INVALID_ARGUMENTS: arguments}


def usage_of(usage: object) -> Body:
    usage = usage if isinstance(usage, dict) else {}
    return {"input_tokens": usage.get("prompt_tokens") or 0, "output_tokens": usage.get("completion_tokens") or 0}


def reasoning_of(message: Body) -> object:
    """The reasoning text of a chat message or delta (`reasoning_content`, vLLM's newer `reasoning`)."""
    return message.get("reasoning_content") or message.get("reasoning")


def encode_message(answer: bytes, model: str, stop_sequences: object, *, thinking: bool) -> bytes:
    """The whole chat completions `answer` as Anthropic's message (`model`: what the client asked for;
    `thinking`: the client enabled it, so the worker's reasoning is returned)."""
    chat = _decode(answer)
    choices = chat.get("choices") or [{}]
    choice = choices[0]
    message = choice.get("message") or {}
    content: list[Body] = []
    reasoning = reasoning_of(message) if thinking else None
    if isinstance(reasoning, str):
        content.append({"type": "thinking", "thinking": reasoning, "signature": ""})
    text = message.get("content")
    if isinstance(text, str) and text:
        content.append({"type": "text", "text": text})
    for call in message.get("tool_calls") or ():
        function = call.get("function") or {}
        content.append({"type": "tool_use", "id": call.get("id") or "toolu_" + secrets.token_hex(12),
                        "name": function.get("name", ""), "input": tool_input(function.get("arguments"))})
    reason, sequence = stop_reason(choice.get("finish_reason"), choice.get("stop_reason"), stop_sequences)
    return _encode({"id": message_id(chat.get("id")), "type": "message", "role": "assistant", "model": model,
                    "content": content, "stop_reason": reason, "stop_sequence": sequence,
                    "usage": usage_of(chat.get("usage"))})
